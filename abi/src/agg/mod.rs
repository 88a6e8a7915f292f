//! Aggregations for plugins, bpftrace's map functions: `count()`, `sum()`, `min()`, `max()`,
//! `avg()`, `stats()`, `hist()` and `lhist()` on keyed maps, printed as bpftrace prints them.
//!
//! ```
//! use wasmprobe_abi::agg::{Count, Hist};
//!
//! let mut calls: Count<i64> = Count::new("@calls"); // @calls[args.id] = count()
//! let mut usecs: Hist = Hist::new("@usecs"); //         @usecs = hist(...)
//! calls.inc(0);
//! calls.inc(0);
//! calls.inc(1);
//! usecs.record((), 3);
//! assert_eq!(calls.text(), "@calls[1]: 1\n@calls[0]: 2\n");
//! assert_eq!(usecs.text().lines().nth(1), Some(format!("[2, 4)                 1 |{}|", "@".repeat(52))).as_deref());
//! ```
//!
//! Each aggregation is an [`AggMap`] (an open-addressing map laid out for Wasm: see [`map`])
//! from a [`Key`] (an integer, a fixed-width [`Str`], `()` for a map of one value, or a tuple
//! of these) to a small value. An update is a hash (one multiply), a probe and an add. The
//! code is the same for the host and the plugin: the delivery benchmark runs it natively and
//! inside Wasm over the same records.
//!
//! The text ([`Count::text`] and so on) is bpftrace's: `@name[key]: value` per key, sorted by
//! value ascending (ties by key); `@name: value` when the key is `()`; tuple keys printed
//! `@name[a, b]`; `stats()` as `count C, average A, total T`; histograms as `@name[key]:` and
//! then one line per bucket, `[low, high)` left in 16 columns, the count right in 8, and a bar
//! of up to 52 `@`. bpftrace ends each histogram with an empty line; here an empty line
//! separates the histograms of a keyed map, so that the text does not end with one.

pub mod map;

pub use map::{AggMap, Key, Str};

use std::fmt::Write;

/// How many log2 buckets [`Hist`] keeps: negatives, 0, 1, then one per power of two to 2^63.
pub const HIST_BUCKETS: usize = 66;

/// bpftrace's log2 bucket of `v`: 0 for negatives, 1 for 0, 2 for 1, then `2 + log2(v)`.
#[inline(always)]
pub fn log2_bucket(v: i64) -> usize {
    if v < 0 {
        0
    } else {
        log2_bucket_u64(v as u64)
    }
}

/// [`log2_bucket`] of an unsigned value (2^63 and over go to the last bucket, not to 0).
#[inline(always)]
pub fn log2_bucket_u64(v: u64) -> usize {
    // 1 for 0, else 2 + floor(log2(v)) = 65 - leading zeros.
    if v == 0 {
        1
    } else {
        65 - v.leading_zeros() as usize
    }
}

/// A value of a scalar aggregation: how it is updated, sorted and printed.
pub trait Value: Copy + Default {
    /// What sorts the entries when printed (ascending).
    fn order(&self) -> i128;
    /// Writes the value as bpftrace prints it after `@name[key]: `.
    fn write(&self, out: &mut String);
}

/// `count()`: how many times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountValue(pub u64);

/// `sum(v)`: the total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SumValue(pub i64);

/// `min(v)`: the smallest value seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinValue(pub i64);

/// `max(v)`: the largest value seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaxValue(pub i64);

/// `avg(v)` and `stats(v)`: the count and the total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeanValue {
    /// Values recorded.
    pub count: u64,
    /// Their sum.
    pub total: i64,
}

impl MeanValue {
    /// The integer average, `total / count` truncated toward zero (0 when empty), as bpftrace.
    pub fn average(&self) -> i64 {
        if self.count == 0 {
            0
        } else {
            self.total / self.count as i64
        }
    }
}

/// The scalar values print as their number and sort by it.
macro_rules! scalar_value {
    ($($t:ty),*) => {$(
        impl Value for $t {
            fn order(&self) -> i128 {
                self.0 as i128
            }
            fn write(&self, out: &mut String) {
                let _ = write!(out, "{}", self.0);
            }
        }
    )*};
}

scalar_value!(CountValue, SumValue, MinValue, MaxValue);

/// `avg()`'s value: printed as the average.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AvgValue(pub MeanValue);

/// `stats()`'s value: printed as `count C, average A, total T`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsValue(pub MeanValue);

impl Value for AvgValue {
    fn order(&self) -> i128 {
        self.0.average() as i128
    }
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{}", self.0.average());
    }
}

impl Value for StatsValue {
    fn order(&self) -> i128 {
        self.0.average() as i128
    }
    fn write(&self, out: &mut String) {
        let m = self.0;
        let _ = write!(out, "count {}, average {}, total {}", m.count, m.average(), m.total);
    }
}

/// A keyed map of scalar values: [`Count`], [`Sum`], [`Min`], [`Max`], [`Avg`], [`Stats`].
#[derive(Clone)]
pub struct Agg<K: Key, V: Value> {
    name: String,
    map: AggMap<K, V>,
}

/// `@name[key] = count()`.
pub type Count<K = ()> = Agg<K, CountValue>;
/// `@name[key] = sum(v)`.
pub type Sum<K = ()> = Agg<K, SumValue>;
/// `@name[key] = min(v)`.
pub type Min<K = ()> = Agg<K, MinValue>;
/// `@name[key] = max(v)`.
pub type Max<K = ()> = Agg<K, MaxValue>;
/// `@name[key] = avg(v)`.
pub type Avg<K = ()> = Agg<K, AvgValue>;
/// `@name[key] = stats(v)`.
pub type Stats<K = ()> = Agg<K, StatsValue>;

impl<K: Key, V: Value> Agg<K, V> {
    /// An empty map printed as `name` (bpftrace's names start with `@`: `"@calls"`).
    pub fn new(name: &str) -> Self {
        Agg { name: name.to_string(), map: AggMap::new() }
    }

    /// The name it prints with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The underlying map (every key and its value).
    pub fn map(&self) -> &AggMap<K, V> {
        &self.map
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Forgets every key (bpftrace's `clear()`), keeping the memory.
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// The entries, leaving the map empty (e.g. a batch's deltas, handed on and forgotten).
    pub fn drain(&mut self) -> Vec<(K, V)> {
        self.map.drain()
    }

    /// The entries in print order: by value ascending, ties by key.
    pub fn sorted(&self) -> Vec<(K, V)> {
        let mut v = self.map.sorted();
        v.sort_by_key(|e| e.1.order());
        v
    }

    /// The entries by value descending (ties by key), at most `n`: a "top N" table.
    pub fn top(&self, n: usize) -> Vec<(K, V)> {
        let mut v = self.map.sorted();
        v.sort_by_key(|e| std::cmp::Reverse(e.1.order()));
        v.truncate(n);
        v
    }

    /// The text bpftrace prints for this map, one `\n`-terminated line per key.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (k, v) in self.sorted() {
            write_name(&mut out, &self.name, &k);
            out.push_str(": ");
            v.write(&mut out);
            out.push('\n');
        }
        out
    }
}

/// An empty map named `@` (bpftrace's name for a map without one).
impl<K: Key, V: Value> Default for Agg<K, V> {
    fn default() -> Self {
        Agg::new("@")
    }
}

fn write_name<K: Key>(out: &mut String, name: &str, key: &K) {
    out.push_str(name);
    if !K::is_unit() {
        out.push('[');
        key.write_key(out);
        out.push(']');
    }
}

impl<K: Key> Agg<K, CountValue> {
    /// Counts one for `key`.
    #[inline(always)]
    pub fn inc(&mut self, key: K) {
        self.map.entry(key).0 += 1;
    }

    /// Counts `n` for `key`.
    #[inline(always)]
    pub fn add(&mut self, key: K, n: u64) {
        self.map.entry(key).0 += n;
    }

    /// Counts one for `key`, saying whether it is the first (to note something about a new
    /// key once, such as a pid's command name).
    #[inline(always)]
    pub fn inc_new(&mut self, key: K) -> bool {
        let (v, new) = self.map.entry_new(key);
        v.0 += 1;
        new
    }

    /// The count of `key` (0 if never counted).
    pub fn get(&self, key: K) -> u64 {
        self.map.get(&key).map_or(0, |v| v.0)
    }
}

impl<K: Key> Agg<K, SumValue> {
    /// Adds `v` to `key`'s sum.
    #[inline(always)]
    pub fn add(&mut self, key: K, v: i64) {
        let s = self.map.entry(key);
        s.0 = s.0.wrapping_add(v);
    }

    /// The sum of `key` (0 if never added to).
    pub fn get(&self, key: K) -> i64 {
        self.map.get(&key).map_or(0, |v| v.0)
    }
}

impl<K: Key> Agg<K, MinValue> {
    /// Keeps `v` if it is `key`'s smallest yet.
    #[inline(always)]
    pub fn record(&mut self, key: K, v: i64) {
        let (s, new) = self.map.entry_new(key);
        if new || v < s.0 {
            s.0 = v;
        }
    }

    /// The minimum of `key`, if any value was recorded.
    pub fn get(&self, key: K) -> Option<i64> {
        self.map.get(&key).map(|v| v.0)
    }
}

impl<K: Key> Agg<K, MaxValue> {
    /// Keeps `v` if it is `key`'s largest yet.
    #[inline(always)]
    pub fn record(&mut self, key: K, v: i64) {
        let (s, new) = self.map.entry_new(key);
        if new || v > s.0 {
            s.0 = v;
        }
    }

    /// The maximum of `key`, if any value was recorded.
    pub fn get(&self, key: K) -> Option<i64> {
        self.map.get(&key).map(|v| v.0)
    }
}

/// `avg()` and `stats()` keep the same count and total; only their printing differs.
pub trait Mean: Value {
    /// The count and total.
    fn mean(&mut self) -> &mut MeanValue;
    /// The count and total, by value.
    fn get(&self) -> MeanValue;
}

impl Mean for AvgValue {
    fn mean(&mut self) -> &mut MeanValue {
        &mut self.0
    }
    fn get(&self) -> MeanValue {
        self.0
    }
}

impl Mean for StatsValue {
    fn mean(&mut self) -> &mut MeanValue {
        &mut self.0
    }
    fn get(&self) -> MeanValue {
        self.0
    }
}

impl<K: Key, V: Mean> Agg<K, V> {
    /// Records `v` for `key`'s average (or statistics).
    #[inline(always)]
    pub fn record(&mut self, key: K, v: i64) {
        let m = self.map.entry(key).mean();
        m.count += 1;
        m.total = m.total.wrapping_add(v);
    }

    /// The count and total of `key`.
    pub fn get(&self, key: K) -> Option<MeanValue> {
        self.map.get(&key).map(Mean::get)
    }
}

mod hist;

pub use hist::{Hist, HistRow, Lhist};

#[cfg(test)]
mod tests;
