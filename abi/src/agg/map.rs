//! [`AggMap`]: the hash map under every aggregation, laid out for the code Cranelift makes.
//!
//! Why not std's `HashMap` (hashbrown): its probe loads a 16-byte group of control bytes and
//! matches it with SIMD (or with 64-bit bit tricks where SIMD is off, as on wasm32), then
//! walks the match bits: a dozen dependent instructions before the key is even compared.
//! LLVM schedules that well natively; Cranelift, compiling the same Wasm, keeps every step
//! and adds the linear-memory bounds work, and the delivery benchmark measured a keyed count
//! ~10x its native cost inside Wasm. Here a probe is one multiply (the Fx hash), a shift,
//! one load of the key and one compare: a table of `(key, value)` slots with linear probing,
//! a power-of-two capacity, at most half full, and no control bytes at all. An empty slot is
//! one whose key is `K::default()` (0, the empty string); the entry of that key itself lives
//! outside the table, in a field of its own. Keys are small and fixed width ([`Key`]), values
//! `Copy`: nothing to drop, nothing to hash twice.
//!
//! Host-owned maps (a WIT resource updated in bulk per batch) were the other way considered,
//! and not built: the guest would still write each key (and value) into a buffer per event, a
//! store and a bounds check inside Wasm, and the host would copy the buffer and do the update
//! natively. The delivery benchmark (`cargo bench -p wasmprobe --bench plugin_delivery`)
//! puts this map's update at 1.0-1.3 ns per event inside Wasm (its keyed count, 2.6-2.9 ns
//! of work, less its histogram, 1.5-1.7 ns, which reads the same field), the native update at
//! under 0.5 ns: the most a host map could save is about a nanosecond per event, before the
//! batch's copy and the calls, for a second contract every SDK (Rust, Python, JS) must follow.

use crate::fxhash::FxHasher;
use std::hash::Hasher;

/// A key of an aggregation: small, fixed width, compared and hashed by value.
///
/// `Default` is the key that marks an empty slot; it is still a valid key (kept aside).
/// Implemented for the integer types, `()` (a map with one entry, bpftrace's `@x = count()`),
/// [`Str`] (a fixed-width string such as a comm) and tuples of up to four keys.
pub trait Key: Copy + Eq + Ord + Default {
    /// The 64-bit hash of the key (the Fx hash of its words: its high bits are well mixed).
    fn hash64(&self) -> u64;

    /// Writes the key as bpftrace prints it between the brackets of `@name[...]`.
    fn write_key(&self, out: &mut String);

    /// Whether the type has a single value (`()`): printed as `@name`, without brackets.
    fn is_unit() -> bool {
        false
    }
}

macro_rules! int_key {
    ($($t:ty),*) => {$(
        impl Key for $t {
            #[inline(always)]
            fn hash64(&self) -> u64 {
                let mut h = FxHasher::default();
                h.write_u64(*self as u64);
                h.finish()
            }

            fn write_key(&self, out: &mut String) {
                use std::fmt::Write;
                let _ = write!(out, "{self}");
            }
        }
    )*};
}

int_key!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

impl Key for () {
    #[inline(always)]
    fn hash64(&self) -> u64 {
        0
    }

    fn write_key(&self, _: &mut String) {}

    fn is_unit() -> bool {
        true
    }
}

impl Key for bool {
    #[inline(always)]
    fn hash64(&self) -> u64 {
        (*self as u64).hash64()
    }

    fn write_key(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
}

/// A string key of at most `N` bytes, stored inline (e.g. `Str<16>` for a task's comm, as the
/// kernel keeps it): longer strings are cut at `N` bytes, and at a NUL.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Str<const N: usize>(pub [u8; N]);

impl<const N: usize> Default for Str<N> {
    fn default() -> Self {
        Str([0; N])
    }
}

impl<const N: usize> Str<N> {
    /// The first `N` bytes of `s` (up to a NUL).
    pub fn new(s: &str) -> Self {
        Str::from_bytes(s.as_bytes())
    }

    /// The first `N` bytes of `b` (up to a NUL).
    pub fn from_bytes(b: &[u8]) -> Self {
        let mut a = [0; N];
        let b = &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())];
        let n = b.len().min(N);
        a[..n].copy_from_slice(&b[..n]);
        Str(a)
    }

    /// The text, up to the first NUL (lossily decoded if cut inside a character).
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        let end = self.0.iter().position(|&c| c == 0).unwrap_or(N);
        String::from_utf8_lossy(&self.0[..end])
    }
}

impl<const N: usize> std::fmt::Debug for Str<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl<const N: usize> std::fmt::Display for Str<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str())
    }
}

impl<const N: usize> From<&str> for Str<N> {
    fn from(s: &str) -> Self {
        Str::new(s)
    }
}

impl<const N: usize> Key for Str<N> {
    #[inline]
    fn hash64(&self) -> u64 {
        let mut h = FxHasher::default();
        h.write(&self.0);
        h.finish()
    }

    fn write_key(&self, out: &mut String) {
        out.push_str(&self.as_str());
    }
}

macro_rules! tuple_key {
    ($($n:tt $t:ident),+) => {
        impl<$($t: Key),+> Key for ($($t,)+) {
            #[inline(always)]
            fn hash64(&self) -> u64 {
                let mut h = FxHasher::default();
                $(h.write_u64(self.$n.hash64());)+
                h.finish()
            }

            fn write_key(&self, out: &mut String) {
                $(
                    if $n > 0 {
                        out.push_str(", ");
                    }
                    self.$n.write_key(out);
                )+
            }
        }
    };
}

tuple_key!(0 A);
tuple_key!(0 A, 1 B);
tuple_key!(0 A, 1 B, 2 C);
tuple_key!(0 A, 1 B, 2 C, 3 D);

/// The smallest table (slots); it doubles when it would be more than half full.
const MIN_SLOTS: usize = 16;

/// An open-addressing hash map from [`Key`]s to `Copy` values (see the module documentation).
#[derive(Clone)]
pub struct AggMap<K: Key, V: Copy + Default> {
    slots: Vec<(K, V)>,
    /// `64 - log2(slots.len())`: the hash's top bits index the table.
    shift: u32,
    /// Entries in `slots` (not counting `zero`).
    len: usize,
    /// The entry of the key `K::default()`, which marks empty slots in the table.
    zero: Option<(K, V)>,
}

impl<K: Key, V: Copy + Default> Default for AggMap<K, V> {
    fn default() -> Self {
        AggMap::new()
    }
}

impl<K: Key + std::fmt::Debug, V: Copy + Default + std::fmt::Debug> std::fmt::Debug for AggMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Key, V: Copy + Default> AggMap<K, V> {
    /// An empty map (it allocates on the first insert).
    pub fn new() -> Self {
        AggMap { slots: Vec::new(), shift: 64, len: 0, zero: None }
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.len + self.zero.is_some() as usize
    }

    /// Whether the map has no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of `key`, if present.
    #[inline]
    pub fn get(&self, key: &K) -> Option<&V> {
        if *key == K::default() {
            return self.zero.as_ref().map(|z| &z.1);
        }
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = (key.hash64() >> self.shift) as usize;
        loop {
            let s = &self.slots[i];
            if s.0 == *key {
                return Some(&s.1);
            }
            if s.0 == K::default() {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// The value of `key`, inserted as `V::default()` if absent: the update of an
    /// aggregation (`*map.entry(k) += 1`).
    #[inline(always)]
    pub fn entry(&mut self, key: K) -> &mut V {
        self.entry_new(key).0
    }

    /// Like [`AggMap::entry`], also saying whether `key` was just inserted.
    #[inline(always)]
    pub fn entry_new(&mut self, key: K) -> (&mut V, bool) {
        if key == K::default() {
            let new = self.zero.is_none();
            return (&mut self.zero.get_or_insert_with(|| (K::default(), V::default())).1, new);
        }
        // The table is never full (at most half), so the probe ends. An empty table has no
        // slots: `get` then misses at once and `insert` grows it.
        let mask = self.slots.len().wrapping_sub(1);
        // `shift` is 64 for the empty table: `wrapping_shr` makes that no shift, an index
        // past the (empty) table.
        let mut i = key.hash64().wrapping_shr(self.shift) as usize;
        while let Some(s) = self.slots.get(i) {
            if s.0 == key {
                return (&mut self.slots[i].1, false);
            }
            if s.0 == K::default() {
                break;
            }
            i = (i + 1) & mask;
        }
        (self.insert(key), true)
    }

    /// Inserts absent `key` with `V::default()` (growing the table first if it would be more
    /// than half full) and returns its value.
    #[cold]
    #[inline(never)]
    fn insert(&mut self, key: K) -> &mut V {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let i = self.place(key);
        self.len += 1;
        &mut self.slots[i].1
    }

    /// The first empty slot of `key`'s probe (the key is known to be absent).
    fn place(&mut self, key: K) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = (key.hash64() >> self.shift) as usize;
        while self.slots[i].0 != K::default() {
            i = (i + 1) & mask;
        }
        self.slots[i] = (key, V::default());
        i
    }

    fn grow(&mut self) {
        let n = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![(K::default(), V::default()); n]);
        self.shift = 64 - n.trailing_zeros();
        for (k, v) in old {
            if k != K::default() {
                let i = self.place(k);
                self.slots[i].1 = v;
            }
        }
    }

    /// The entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        let zero = self.zero.as_ref().map(|(k, v)| (k, v));
        zero.into_iter().chain(self.slots.iter().filter(|s| s.0 != K::default()).map(|(k, v)| (k, v)))
    }

    /// The entries sorted by key.
    pub fn sorted(&self) -> Vec<(K, V)> {
        let mut v: Vec<(K, V)> = self.iter().map(|(k, v)| (*k, *v)).collect();
        v.sort_unstable_by_key(|e| e.0);
        v
    }

    /// Removes every entry, keeping the table's memory (cheap when reused per batch).
    pub fn clear(&mut self) {
        if self.len > 0 {
            self.slots.fill((K::default(), V::default()));
        }
        self.len = 0;
        self.zero = None;
    }

    /// The entries, leaving the map empty (its memory kept).
    pub fn drain(&mut self) -> Vec<(K, V)> {
        let v: Vec<(K, V)> = self.iter().map(|(k, v)| (*k, *v)).collect();
        self.clear();
        v
    }
}
