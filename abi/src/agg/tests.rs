use super::*;
use std::collections::HashMap;

#[test]
fn the_map_agrees_with_std_through_growth_and_the_default_key() {
    let mut m: AggMap<i64, u64> = AggMap::new();
    let mut want: HashMap<i64, u64> = HashMap::new();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for n in 0..50_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Small keys (many repeats), 0 (the empty marker) and negatives.
        let k = match n % 5 {
            0 => 0,
            1 => -((x % 50) as i64),
            _ => (x % 3000) as i64,
        };
        *m.entry(k) += 1;
        *want.entry(k).or_default() += 1;
    }
    assert_eq!(m.len(), want.len());
    for (k, v) in &want {
        assert_eq!(m.get(k), Some(v), "key {k}");
    }
    assert_eq!(m.get(&123_456), None);
    let mut got: Vec<(i64, u64)> = m.iter().map(|(k, v)| (*k, *v)).collect();
    got.sort();
    let mut all: Vec<(i64, u64)> = want.into_iter().collect();
    all.sort();
    assert_eq!(got, all);
    assert_eq!(m.sorted(), all);
    let drained = m.drain();
    assert_eq!(drained.len(), all.len());
    assert!(m.is_empty() && m.get(&0).is_none() && m.get(&5).is_none());
    *m.entry(5) += 2;
    assert_eq!(m.iter().collect::<Vec<_>>(), [(&5, &2)]);
}

#[test]
fn entry_new_says_when_a_key_is_new() {
    let mut m: AggMap<(i32, i64), u8> = AggMap::new();
    assert!(m.entry_new((1, 2)).1);
    assert!(!m.entry_new((1, 2)).1);
    assert!(m.entry_new((0, 0)).1);
    assert!(!m.entry_new((0, 0)).1);
    assert_eq!(m.len(), 2);
}

#[test]
fn counts_print_like_bpftrace_sorted_by_value() {
    let mut c: Count<i64> = Count::new("@calls");
    for (k, n) in [(3, 5), (0, 2), (1, 9), (2, 2)] {
        c.add(k, n);
    }
    assert_eq!(c.text(), "@calls[0]: 2\n@calls[2]: 2\n@calls[3]: 5\n@calls[1]: 9\n");
    assert_eq!(c.top(2), [(1, CountValue(9)), (3, CountValue(5))]);
    assert_eq!(c.get(3), 5);
    assert_eq!(c.get(42), 0);
    let mut one: Count = Count::new("@");
    one.inc(());
    one.inc(());
    assert_eq!(one.text(), "@: 2\n");
    let mut by_comm: Count<(Str<16>, i32)> = Count::new("@");
    by_comm.inc((Str::new("a-very-long-command-name"), 7));
    assert_eq!(by_comm.text(), "@[a-very-long-comm, 7]: 1\n");
}

#[test]
fn sum_min_max_avg_and_stats_print_like_bpftrace() {
    let mut s: Sum<u32> = Sum::new("@bytes");
    let mut lo: Min<u32> = Min::new("@lo");
    let mut hi: Max<u32> = Max::new("@hi");
    let mut a: Avg<u32> = Avg::new("@avg");
    let mut st: Stats<u32> = Stats::new("@st");
    for (k, v) in [(1, 10), (1, -4), (2, 7), (1, 3)] {
        s.add(k, v);
        lo.record(k, v);
        hi.record(k, v);
        a.record(k, v);
        st.record(k, v);
    }
    assert_eq!(s.text(), "@bytes[2]: 7\n@bytes[1]: 9\n");
    assert_eq!(lo.text(), "@lo[1]: -4\n@lo[2]: 7\n");
    assert_eq!(hi.text(), "@hi[2]: 7\n@hi[1]: 10\n");
    // 9 / 3 = 3; sorted by the average.
    assert_eq!(a.text(), "@avg[1]: 3\n@avg[2]: 7\n");
    assert_eq!(st.text(), "@st[1]: count 3, average 3, total 9\n@st[2]: count 1, average 7, total 7\n");
    let mut neg: Avg = Avg::new("@");
    neg.record((), -7);
    neg.record((), 0);
    assert_eq!(neg.text(), "@: -3\n", "truncated toward zero, as C++");
}

#[test]
fn log2_buckets_are_bpftraces() {
    assert_eq!(log2_bucket(-5), 0);
    assert_eq!(log2_bucket(0), 1);
    assert_eq!(log2_bucket(1), 2);
    assert_eq!(log2_bucket(2), 3);
    assert_eq!(log2_bucket(3), 3);
    assert_eq!(log2_bucket(4), 4);
    assert_eq!(log2_bucket_u64(u64::MAX), HIST_BUCKETS - 1);
}

/// The rows of the built-in openlat's test (0, 3, 3, 5 and 1500 µs), now printed by [`Hist`].
#[test]
fn hist_prints_the_rows_openlat_printed() {
    let mut h: Hist = Hist::new("@usecs");
    for us in [0, 3, 3, 5, 1500] {
        h.record((), us);
    }
    let bar = |n: usize| format!("{:<52}", "@".repeat(n));
    let mut want = vec![
        "@usecs:".to_string(),
        format!("[0]                    1 |{}|", bar(26)),
        format!("[1]                    0 |{}|", bar(0)),
        format!("[2, 4)                 2 |{}|", bar(52)),
        format!("[4, 8)                 1 |{}|", bar(26)),
    ];
    for (lo, hi) in ["8", "16", "32", "64", "128", "256", "512", "1K"].windows(2).map(|w| (w[0], w[1])) {
        want.push(format!("{:<16}{:>8} |{}|", format!("[{lo}, {hi})"), 0, bar(0)));
    }
    want.push(format!("[1K, 2K)               1 |{}|", bar(26)));
    assert_eq!(h.text().lines().collect::<Vec<_>>(), want);
    let rows = h.rows(());
    assert_eq!((rows[0].low, rows[0].high, rows[0].count), (Some(0), Some(1), 1));
    assert_eq!((rows[11].low, rows[11].high, rows[11].count), (Some(1024), Some(2048), 1));
}

#[test]
fn keyed_hists_are_separated_by_an_empty_line_and_ordered_by_total() {
    let mut h: Hist<Str<16>> = Hist::new("@ns");
    h.record("bash".into(), 1 << 20);
    h.record("bash".into(), 1 << 20);
    h.record("cat".into(), 1 << 40);
    h.record_i64("cat".into(), -1);
    h.record("ls".into(), 1);
    let full = |n| "@".repeat(n);
    let want = format!(
        "@ns[ls]:\n[1]                    1 |{}|\n\n\
         @ns[bash]:\n[1M, 2M)               2 |{}|\n\n\
         @ns[cat]:\n(..., 0)               1 |{}|\n{}",
        full(52),
        full(52),
        full(52),
        // From the negatives to 2^40: every bucket between, empty ones included.
        (1..=42)
            .map(|i| {
                let label = match i {
                    1 => "[0]".to_string(),
                    2 => "[1]".to_string(),
                    _ => format!("[{}, {})", log2_name(i - 2), log2_name(i - 1)),
                };
                let n = u64::from(i == 42);
                format!("{label:<16}{n:>8} |{:<52}|\n", full(52 * n as usize))
            })
            .collect::<String>()
    );
    assert_eq!(h.text(), want);
}

fn log2_name(p: usize) -> String {
    let s = ["", "K", "M", "G", "T"][(p / 10).min(4)];
    format!("{}{s}", 1u64 << (p - (p / 10).min(4) * 10))
}

#[test]
fn bars_are_truncated_from_float_as_bpftrace_computes_them() {
    let mut h: Hist = Hist::new("@");
    // 1/3 of 52 is 17.33: 17 @; 2/3 is 34.67: 34.
    h.record((), 1);
    h.record((), 2);
    h.record((), 2);
    h.record((), 4);
    h.record((), 4);
    h.record((), 4);
    let bars: Vec<usize> = h.text().lines().skip(1).map(|l| l.matches('@').count()).collect();
    assert_eq!(bars, [17, 34, 52]);
}

#[test]
fn lhist_prints_like_bpftrace() {
    let mut h: Lhist = Lhist::new("@ms", 0, 3072, 1024);
    for v in [-1, 5, 1024, 1500, 4000] {
        h.record((), v);
    }
    let bar = |n: usize| format!("{:<52}", "@".repeat(n));
    assert_eq!(
        h.text().lines().collect::<Vec<_>>(),
        [
            "@ms:".to_string(),
            format!("(..., 0)               1 |{}|", bar(26)),
            format!("[0, 1K)                1 |{}|", bar(26)),
            format!("[1K, 2K)               2 |{}|", bar(52)),
            format!("[2K, 3K)               0 |{}|", bar(0)),
            format!("[3K, ...)              1 |{}|", bar(26)),
        ]
    );
    let rows = h.rows(());
    assert_eq!((rows[0].low, rows[0].high), (None, Some(0)));
    assert_eq!((rows[4].low, rows[4].high), (Some(3072), None));
    let mut small: Lhist<u8> = Lhist::new("@x", 10, 20, 5);
    small.record(1, 12);
    assert_eq!(small.text(), format!("@x[1]:\n[10, 15)               1 |{}|\n", bar(52)));
}
