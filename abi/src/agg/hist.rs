//! `hist()` and `lhist()`: keyed histograms, log2 and linear, printed as bpftrace prints them.

use super::{log2_bucket, log2_bucket_u64, write_name, AggMap, Key, HIST_BUCKETS};

/// One printed row of a histogram: its bucket `[low, high)` and count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistRow {
    /// The row's label as bpftrace prints it: `[4, 8)`, `[1K, 2K)`, `[0]`, `(..., 0)`.
    pub label: String,
    /// The smallest value of the bucket; `None`: unbounded below.
    pub low: Option<i128>,
    /// One past its largest value; `None`: unbounded above.
    pub high: Option<i128>,
    /// Values in the bucket.
    pub count: u64,
}

/// `@name[key] = hist(v)`: a log2 histogram per key (`Hist` alone: one histogram).
#[derive(Clone)]
pub struct Hist<K: Key = ()> {
    name: String,
    /// Each key's index in `buckets`.
    map: AggMap<K, u32>,
    buckets: Vec<[u64; HIST_BUCKETS]>,
}

impl<K: Key> Hist<K> {
    /// An empty histogram map printed as `name` (e.g. `"@usecs"`).
    pub fn new(name: &str) -> Self {
        Hist { name: name.to_string(), map: AggMap::new(), buckets: Vec::new() }
    }

    /// The name it prints with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Records `v` in `key`'s histogram.
    #[inline(always)]
    pub fn record(&mut self, key: K, v: u64) {
        self.bump(key, log2_bucket_u64(v));
    }

    /// Records a signed `v` (negatives have a bucket of their own, `(..., 0)`).
    #[inline(always)]
    pub fn record_i64(&mut self, key: K, v: i64) {
        self.bump(key, log2_bucket(v));
    }

    #[inline(always)]
    fn bump(&mut self, key: K, bucket: usize) {
        let (slot, new) = self.map.entry_new(key);
        if new {
            *slot = self.buckets.len() as u32;
            self.buckets.push([0; HIST_BUCKETS]);
        }
        self.buckets[*slot as usize][bucket] += 1;
    }

    /// The bucket counts of `key` (see [`super::log2_bucket`] for what each holds).
    pub fn counts(&self, key: K) -> Option<&[u64; HIST_BUCKETS]> {
        self.map.get(&key).map(|&i| &self.buckets[i as usize])
    }

    /// The keys, sorted by their total count ascending (ties by key): the print order.
    pub fn keys(&self) -> Vec<K> {
        let mut keys: Vec<(u64, K)> =
            self.map.sorted().into_iter().map(|(k, i)| (self.buckets[i as usize].iter().sum(), k)).collect();
        keys.sort_by_key(|e| e.0);
        keys.into_iter().map(|e| e.1).collect()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Forgets every key, keeping the memory of the map.
    pub fn clear(&mut self) {
        self.map.clear();
        self.buckets.clear();
    }

    /// The rows bpftrace prints for `key`: from the first to the last non-empty bucket.
    pub fn rows(&self, key: K) -> Vec<HistRow> {
        let Some(counts) = self.counts(key) else { return Vec::new() };
        let pow = |p: usize| Some(1i128 << p);
        trimmed(counts)
            .map(|(i, n)| {
                let (label, low, high) = match i {
                    0 => ("(..., 0)".to_string(), None, Some(0)),
                    1 => ("[0]".to_string(), Some(0), Some(1)),
                    2 => ("[1]".to_string(), Some(1), Some(2)),
                    _ => (format!("[{}, {})", log2_label(i - 2), log2_label(i - 1)), pow(i - 2), pow(i - 1)),
                };
                HistRow { label, low, high, count: n }
            })
            .collect()
    }

    /// The text bpftrace prints: `@name[key]:` (`@name:` for one histogram), then the rows;
    /// an empty line between the histograms of different keys.
    pub fn text(&self) -> String {
        write_hists(&self.name, self.keys(), |k| self.rows(k))
    }
}

/// An empty histogram map named `@` (bpftrace's name for a map without one).
impl<K: Key> Default for Hist<K> {
    fn default() -> Self {
        Hist::new("@")
    }
}

/// `@name[key] = lhist(v, min, max, step)`: a linear histogram per key.
#[derive(Clone)]
pub struct Lhist<K: Key = ()> {
    name: String,
    min: i64,
    max: i64,
    step: i64,
    /// Buckets per key: below `min`, `(max - min) / step` steps, `max` and over.
    width: usize,
    /// Each key's index (in units of `width`) in `counts`.
    map: AggMap<K, u32>,
    counts: Vec<u64>,
}

impl<K: Key> Lhist<K> {
    /// An empty linear histogram map of buckets `[min, min + step)` .. `[max - step, max)`,
    /// plus one below `min` and one from `max` up. `step` must be positive and `max > min`.
    pub fn new(name: &str, min: i64, max: i64, step: i64) -> Self {
        assert!(step > 0 && max > min, "lhist: need step > 0 and max > min");
        let width = ((max - min) / step) as usize + 2;
        Lhist { name: name.to_string(), min, max, step, width, map: AggMap::new(), counts: Vec::new() }
    }

    /// Records `v` in `key`'s histogram.
    #[inline(always)]
    pub fn record(&mut self, key: K, v: i64) {
        let bucket = if v < self.min {
            0
        } else if v >= self.max {
            self.width - 1
        } else {
            ((v - self.min) / self.step) as usize + 1
        };
        let (slot, new) = self.map.entry_new(key);
        if new {
            *slot = (self.counts.len() / self.width) as u32;
            self.counts.resize(self.counts.len() + self.width, 0);
        }
        self.counts[*slot as usize * self.width + bucket] += 1;
    }

    /// The bucket counts of `key`: below `min`, the steps, `max` and over.
    pub fn counts(&self, key: K) -> Option<&[u64]> {
        self.map.get(&key).map(|&i| &self.counts[i as usize * self.width..(i as usize + 1) * self.width])
    }

    /// The keys, sorted by their total count ascending (ties by key): the print order.
    pub fn keys(&self) -> Vec<K> {
        let mut keys: Vec<(u64, K)> =
            self.map.sorted().into_iter().map(|(k, _)| (self.counts(k).unwrap_or(&[]).iter().sum(), k)).collect();
        keys.sort_by_key(|e| e.0);
        keys.into_iter().map(|e| e.1).collect()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The rows bpftrace prints for `key`: from the first to the last non-empty bucket.
    pub fn rows(&self, key: K) -> Vec<HistRow> {
        let Some(counts) = self.counts(key) else { return Vec::new() };
        let last = self.width - 1;
        trimmed(counts)
            .map(|(i, n)| {
                let at = |i: usize| self.min + (i as i64 - 1) * self.step;
                let (label, low, high) = if i == 0 {
                    (format!("(..., {})", lin_label(self.min)), None, Some(self.min as i128))
                } else if i == last {
                    (format!("[{}, ...)", lin_label(self.max)), Some(self.max as i128), None)
                } else {
                    let (lo, hi) = (at(i), at(i + 1));
                    (format!("[{}, {})", lin_label(lo), lin_label(hi)), Some(lo as i128), Some(hi as i128))
                };
                HistRow { label, low, high, count: n }
            })
            .collect()
    }

    /// The text bpftrace prints (as [`Hist::text`]).
    pub fn text(&self) -> String {
        write_hists(&self.name, self.keys(), |k| self.rows(k))
    }
}

/// The buckets from the first to the last non-empty one, with their index.
fn trimmed(counts: &[u64]) -> impl Iterator<Item = (usize, u64)> + '_ {
    let first = counts.iter().position(|&n| n > 0).unwrap_or(counts.len());
    let last = counts.iter().rposition(|&n| n > 0).map_or(0, |l| l + 1);
    counts.iter().copied().enumerate().take(last).skip(first)
}

/// Rows as bpftrace prints them: the label left in 16 columns, the count right in 8, a bar of
/// `@` 52 wide at most, as long as the count's share of the largest (in `float`, truncated).
/// Each key's histogram under its `@name[key]:` line, an empty line between them.
fn write_hists<K: Key>(name: &str, keys: Vec<K>, rows: impl Fn(K) -> Vec<HistRow>) -> String {
    let mut out = String::new();
    for (n, k) in keys.into_iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        write_name(&mut out, name, &k);
        out.push_str(":\n");
        write_rows(&mut out, &rows(k));
    }
    out
}

fn write_rows(out: &mut String, rows: &[HistRow]) {
    use std::fmt::Write;
    let max = rows.iter().map(|r| r.count).max().unwrap_or(0);
    for r in rows {
        let bar = (r.count as f32 / max as f32 * 52.0) as usize;
        let _ = writeln!(out, "{:<16}{:>8} |{:<52}|", r.label, r.count, "@".repeat(bar));
    }
}

/// bpftrace's label of 2^`power`: `512`, `1K`, `2M`, `4G`, `8T`.
fn log2_label(power: usize) -> String {
    let (p, suffix) = match power {
        p if p >= 40 => (p - 40, "T"),
        p if p >= 30 => (p - 30, "G"),
        p if p >= 20 => (p - 20, "M"),
        p if p >= 10 => (p - 10, "K"),
        p => (p, ""),
    };
    format!("{}{suffix}", 1u64 << p)
}

/// bpftrace's label of a linear bucket bound: `0`, `1M` and `3K` for exact multiples, else
/// the number.
fn lin_label(n: i64) -> String {
    match n {
        0 => "0".to_string(),
        n if n % (1 << 20) == 0 => format!("{}M", n / (1 << 20)),
        n if n % (1 << 10) == 0 => format!("{}K", n / (1 << 10)),
        n => n.to_string(),
    }
}
