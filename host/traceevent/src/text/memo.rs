//! [`InfoMemo`]: the info texts a report already printed, by the record bytes they came from.
//!
//! An event's info text (libtraceevent's dialect, as `trace-cmd report` prints it) is a pure
//! function of the record's bytes from the first field it reads (past the common fields,
//! nearly always), for every format but `[FAILED TO PARSE]` ones; a crafted record that points
//! a `__data_loc` word elsewhere is printed, not looked up (see
//! [`crate::format::EventFormats::info_key`]). Traces repeat themselves: the same tasks
//! switch, the same work items run, the same syscalls return the same values, and many
//! classes print one of a few thousand texts for hundreds of thousands of records. Printing
//! such a record again costs a hash and a copy instead of the interpreter's walk over the
//! print fmt.
//!
//! Bounded and self-tuning: a direct-mapped table (a collision replaces the older entry, so a
//! trace crafted to collide only costs misses), texts in one arena that is dropped whole when
//! it reaches [`ARENA_BYTES`], and a format whose records rarely repeat (pointers, timestamps,
//! paths) is printed directly for a while after a failed trial of [`TRIAL`] records, a longer
//! while after each failure in a row.
//!
//! A format is memoized only after a trial that keeps nothing but hashes (a table of
//! [`SEEN_SLOTS`] words) has seen [`PROBE_HITS`] repeats, so a format whose records never
//! repeat costs a hash a record for the trial's length, not a copy of each text into the
//! arena (and the page faults of filling it): memoizing during the trial cost the task and
//! uprobes classes some 13% of their report (tests/bench/report-classes.sh). A memoized
//! format is checked again every [`TRIAL`] records by its real hits.

use std::hash::BuildHasher as _;

use foldhash::fast::FixedState;

/// Not keyed: a trace built to collide only makes entries replace each other (misses, never
/// wrong text, since keys are compared whole).
const HASHER: FixedState = FixedState::with_seed(0x51_7c_c1_b7_27_22_0a_95);

/// Slots of the table: 2^FIRST_BITS (24 KiB) at first, four times as many each time the
/// texts kept since the last growth outnumber half the slots, up to 2^MAX_BITS (384 KiB). A
/// trace of a few hundred distinct texts (sched, irq) keeps a table that stays in the
/// first-level caches while the trace data streams past.
const FIRST_BITS: u32 = 10;
const MAX_BITS: u32 = 14;
/// The arena's limit; reaching it drops every entry (a new generation). 1 MiB holds a few
/// table-fulls of texts; each page of it costs a page fault the first time it fills (about
/// 1.2 us here), and a 4 MiB arena cost syscalls and writeback reports 5% in faults alone
/// for hits they did not get (tests/bench/report-classes.sh).
const ARENA_BYTES: usize = 1 << 20;
/// Records of a format per trial of whether memoizing it pays (probing or memoized).
const TRIAL: u32 = 1024;
/// Repeats that end a probing trial early and memoize the format (whose trials from then on
/// count real hits): few, since a format that repeats is printed directly meanwhile, and a
/// trace of many formats (syscalls') has a probing trial for each. Fewer in a whole trial
/// and the format rests.
const PROBE_HITS: u32 = 32;
/// Below a quarter of a memoized trial's records finding their text (or a probing trial's
/// [`PROBE_HITS`] finding their hash) the format's next records are printed directly: first
/// [`FIRST_REST`] of them, twice as many after each failed trial in a row, at most
/// [`LONGEST_REST`], then it is tried again (a trace's mix of records changes as it goes).
const FIRST_REST: u32 = 16 * TRIAL;
const LONGEST_REST: u32 = 1024 * TRIAL;
/// The longest key or text kept (a record is at most a page; a stack's text can be long).
const MAX_LEN: usize = 4096;
/// Hashes remembered by probing trials (a power of two, 32 KiB): four times a trial's
/// records, and they outlive a trial (a repeat is a repeat).
const SEEN_SLOTS: usize = 4096;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct InfoMemo {
    slots: Vec<Slot>,
    /// Each entry's key bytes, then its text.
    arena: Vec<u8>,
    /// Bumped when the arena is dropped: slots of an older generation are empty.
    generation: u32,
    /// By format index.
    formats: Vec<Trial>,
    /// Hashes of keys looked up by formats on trial (see [`Trial::probing`]), by their low
    /// bits (the table is indexed by the high ones). A hash of another format or an older
    /// trial found here is a repeat all the same: the format is part of the hash.
    seen: Vec<u64>,
    /// log2 of `slots.len()`.
    bits: u32,
    /// Texts kept since the table last grew.
    inserted: usize,
}

/// One memoized text: where its key and text are in the arena, and what it was for.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Slot {
    hash: u64,
    at: u32,
    key_len: u16,
    text_len: u16,
    generation: u32,
    format: u32,
}

/// Whether a format is memoized: its current trial, or how long it is printed directly.
#[derive(Debug, Clone, Copy, Default)]
struct Trial {
    lookups: u32,
    /// Lookups in this trial that found their text (memoized) or their hash (probing).
    hits: u32,
    /// Whether the trial only counts repeats, printing every record: a format starts so,
    /// and starts so again after each rest.
    probing: bool,
    /// Records left to print directly.
    resting: u32,
    /// The rest after the next failed trial (0: [`FIRST_REST`]).
    next_rest: u32,
}

/// What [`InfoMemo::probe`] found: the slot a record's bytes hash to, read early so that
/// the memory load overlaps the work done before [`InfoMemo::take`] (the table is larger
/// than the first-level caches).
#[derive(Clone, Copy)]
pub(crate) enum Probe {
    /// The format is not memoized now: print the record.
    Skip,
    /// The key's hash and a copy of its slot.
    Look { hash: u64, slot: Slot },
}

impl Default for InfoMemo {
    fn default() -> Self {
        InfoMemo {
            slots: Vec::new(),
            arena: Vec::new(),
            generation: 1,
            formats: Vec::new(),
            seen: Vec::new(),
            bits: FIRST_BITS,
            inserted: 0,
        }
    }
}

impl InfoMemo {
    /// Starts looking up `key` (the record bytes past its common fields) of the format at
    /// `format`: counts it in the format's trial and reads its slot.
    #[inline]
    pub(crate) fn probe(&mut self, format: usize, key: &[u8]) -> Probe {
        if self.formats.len() <= format {
            self.formats.resize(format + 1, Trial { probing: true, ..Trial::default() });
        }
        let trial = &mut self.formats[format];
        if trial.resting > 0 {
            trial.resting -= 1;
            return Probe::Skip;
        }
        if key.len() > MAX_LEN {
            return Probe::Skip;
        }
        let hash = HASHER.hash_one((format, key));
        if trial.probing {
            self.count_repeat(format, hash);
            return Probe::Skip;
        }
        trial.lookups += 1;
        if trial.lookups == TRIAL {
            self.end_trial(format);
        }
        if self.slots.is_empty() {
            self.slots = vec![Slot::default(); 1 << self.bits];
        }
        Probe::Look { hash, slot: self.slots[(hash >> (64 - self.bits)) as usize] }
    }

    /// A probing trial's lookup of `hash` for the format at `format`: a repeat if the hash
    /// was seen before. Memoizes the format at [`PROBE_HITS`] repeats.
    fn count_repeat(&mut self, format: usize, hash: u64) {
        if self.seen.is_empty() {
            self.seen = vec![0; SEEN_SLOTS];
        }
        let seen = &mut self.seen[hash as usize & (SEEN_SLOTS - 1)];
        let trial = &mut self.formats[format];
        trial.hits += u32::from(*seen == hash);
        *seen = hash;
        trial.lookups += 1;
        if trial.hits == PROBE_HITS {
            (trial.probing, trial.lookups, trial.hits) = (false, 0, 0);
        } else if trial.lookups == TRIAL {
            self.end_trial(format);
        }
    }

    /// Ends the format's trial: it rests, and then probes, unless memoized and hit often.
    #[cold]
    fn end_trial(&mut self, format: usize) {
        let trial = &mut self.formats[format];
        if trial.probing || trial.hits < TRIAL / 4 {
            trial.resting = trial.next_rest.max(FIRST_REST);
            trial.next_rest = (trial.resting * 2).min(LONGEST_REST);
            trial.probing = true;
        } else {
            trial.next_rest = 0;
        }
        trial.lookups = 0;
        trial.hits = 0;
    }

    /// Appends the text memoized for `key` of the format at `format` (what `probe` was
    /// given) to `out`, if there is one; returns whether there was.
    #[inline]
    pub(crate) fn take(&mut self, format: usize, hash: u64, slot: &Slot, key: &[u8], out: &mut Vec<u8>) -> bool {
        if slot.hash != hash || slot.generation != self.generation || slot.format as usize != format {
            return false;
        }
        let at = slot.at as usize;
        let text_at = at + usize::from(slot.key_len);
        if !self.arena.get(at..text_at).is_some_and(|k| same(k, key)) {
            return false;
        }
        out.extend_from_slice(&self.arena[text_at..text_at + usize::from(slot.text_len)]);
        self.formats[format].hits += 1;
        true
    }

    /// Keeps `text`, printed for `key` of the format at `format` after `take` found none;
    /// `hash` is the probe's.
    pub(crate) fn insert(&mut self, format: usize, hash: u64, key: &[u8], text: &[u8]) {
        if text.len() > MAX_LEN {
            return;
        }
        if self.arena.len() + key.len() + text.len() > ARENA_BYTES {
            self.arena.clear();
            self.generation = self.generation.wrapping_add(1).max(1);
        }
        if self.arena.capacity() == 0 {
            // Reserved whole: its pages are faulted as texts fill them, never copied by a
            // growing vector.
            self.arena.reserve_exact(ARENA_BYTES);
        }
        let at = self.arena.len();
        self.arena.extend_from_slice(key);
        self.arena.extend_from_slice(text);
        self.inserted += 1;
        if self.inserted > self.slots.len() / 2 && self.bits < MAX_BITS {
            // Grow, keeping the texts: each live slot moves to where its hash's top bits
            // now point (dropping them all made a format's trial that saw the table grow
            // miss what it had just kept, and rest).
            self.bits = (self.bits + 2).min(MAX_BITS);
            let old = std::mem::replace(&mut self.slots, vec![Slot::default(); 1 << self.bits]);
            for slot in old.into_iter().filter(|s| s.generation == self.generation) {
                self.slots[(slot.hash >> (64 - self.bits)) as usize] = slot;
            }
            self.inserted = 0;
        }
        self.slots[(hash >> (64 - self.bits)) as usize] = Slot {
            hash,
            at: at as u32,
            key_len: key.len() as u16,
            text_len: text.len() as u16,
            generation: self.generation,
            format: format as u32,
        };
    }
}

/// `a == b` for the short keys of records, compared a word at a time inline (the slice
/// comparison calls `memcmp`, whose call and dispatch cost more than the compare here).
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut a8, mut b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut diff = 0u64;
    for (x, y) in (&mut a8).zip(&mut b8) {
        diff |= u64::from_ne_bytes(x.try_into().expect("8 bytes")) ^ u64::from_ne_bytes(y.try_into().expect("8 bytes"));
    }
    let (mut ra, mut rb) = (a8.remainder(), b8.remainder());
    if ra.len() >= 4 {
        diff |= u64::from(u32::from_ne_bytes(ra[..4].try_into().expect("4 bytes")))
            ^ u64::from(u32::from_ne_bytes(rb[..4].try_into().expect("4 bytes")));
        (ra, rb) = (&ra[4..], &rb[4..]);
    }
    for (x, y) in ra.iter().zip(rb) {
        diff |= u64::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Looks `key` of `format` up; on a miss keeps `text` for it. The text found, if any,
    /// or whether the format was skipped.
    fn look(m: &mut InfoMemo, format: usize, key: &[u8], text: &[u8]) -> Result<Option<Vec<u8>>, ()> {
        let mut out = Vec::new();
        match m.probe(format, key) {
            Probe::Skip => Err(()),
            Probe::Look { hash, slot } => {
                if m.take(format, hash, &slot, key, &mut out) {
                    Ok(Some(out))
                } else {
                    m.insert(format, hash, key, text);
                    Ok(None)
                }
            }
        }
    }

    /// Passes the probing trial of `format`: lookups of one key, printed directly, until
    /// [`PROBE_HITS`] repeats.
    fn pass_trial(m: &mut InfoMemo, format: usize) {
        for _ in 0..=PROBE_HITS {
            assert_eq!(look(m, format, b"warm-up", b"-"), Err(()), "probing prints directly");
        }
    }

    #[test]
    fn a_text_comes_back_only_for_its_own_format_and_bytes() {
        let mut m = InfoMemo::default();
        for format in 3..6 {
            pass_trial(&mut m, format);
        }
        assert_eq!(look(&mut m, 3, b"abc", b"text of abc"), Ok(None), "first lookup");
        assert_eq!(look(&mut m, 3, b"abc", b"-"), Ok(Some(b"text of abc".to_vec())));
        assert_eq!(look(&mut m, 4, b"abc", b"-"), Ok(None), "another format");
        assert_eq!(look(&mut m, 3, b"abd", b"-"), Ok(None), "other bytes");
        assert_eq!(look(&mut m, 3, b"ab", b"-"), Ok(None), "a prefix");
        let long = b"0123456789abcdefXYZ";
        assert_eq!(look(&mut m, 5, long, b"long"), Ok(None));
        assert_eq!(look(&mut m, 5, b"0123456789abcdefXYz", b"-"), Ok(None), "last byte differs");
        assert_eq!(look(&mut m, 5, b"0123456789abcdeFXYZ", b"-"), Ok(None), "a word differs");
        assert_eq!(look(&mut m, 5, long, b"-"), Ok(Some(b"long".to_vec())));
    }

    #[test]
    fn same_compares_every_byte() {
        let a: Vec<u8> = (0..23).collect();
        for n in 0..a.len() {
            assert!(same(&a[..n], &a[..n]));
            for i in 0..n {
                let mut b = a[..n].to_vec();
                b[i] ^= 0x40;
                assert!(!same(&a[..n], &b), "length {n}, byte {i}");
            }
            assert!(!same(&a[..n], &a[..n + 1]));
        }
    }

    /// Looks up `key` of format 0, keeping a text on a miss; whether it was skipped.
    fn skipped(m: &mut InfoMemo, key: u32) -> bool {
        look(m, 0, &key.to_le_bytes(), b"t").is_err()
    }

    #[test]
    fn a_format_is_memoized_only_while_its_records_repeat_and_rests_longer_each_failure() {
        let mut m = InfoMemo::default();
        let mut key = 0;
        let mut next = || {
            key += 1;
            key
        };
        // Distinct bytes: the probing trial prints every record and finds no repeat, keeping
        // no text; then the format rests.
        for _ in 0..TRIAL {
            assert!(skipped(&mut m, next()));
        }
        assert!(m.arena.is_empty(), "a probing trial keeps no text");
        assert_eq!(m.formats[0].resting, FIRST_REST);
        for _ in 0..FIRST_REST {
            assert!(skipped(&mut m, next()));
        }
        // Another format has its own trial.
        assert_eq!(look(&mut m, 1, b"k", b"t"), Err(()), "probing");
        assert_eq!((m.formats[1].resting, m.formats[1].lookups), (0, 1));
        // Tried again, failed again: a rest twice as long.
        for _ in 0..TRIAL {
            assert!(skipped(&mut m, next()));
        }
        assert_eq!(m.formats[0].resting, 2 * FIRST_REST);
        for _ in 0..2 * FIRST_REST {
            assert!(skipped(&mut m, next()));
        }
        // Now the records repeat: the probing trial passes, the format is memoized and
        // stays so while its texts are found.
        let repeating = |i: u32| (1 << 30) | (i % 8);
        for i in 0..8 + PROBE_HITS {
            assert!(skipped(&mut m, repeating(i)), "probing, lookup {i}");
        }
        for i in 0..3 * TRIAL {
            assert!(!skipped(&mut m, repeating(i)), "memoized, lookup {i}");
        }
        assert_eq!((m.formats[0].resting, m.formats[0].probing), (0, false));
        // They stop repeating: a memoized trial without hits sends it to rest, and probing after.
        for _ in 0..TRIAL {
            assert!(!skipped(&mut m, next()));
        }
        assert!(skipped(&mut m, next()));
        assert!(m.formats[0].probing);
    }

    #[test]
    fn the_table_grows_with_the_texts_kept_and_finds_them_again() {
        let mut m = InfoMemo::default();
        assert_eq!(m.bits, FIRST_BITS);
        // Many distinct texts that repeat: the table grows to its largest, and texts kept
        // after the last growth are found (each the right one).
        // Each key twice in a row, so that every trial passes.
        pass_trial(&mut m, 0);
        let mut hits = 0;
        for i in (0..12_000u32).flat_map(|i| [i, i]) {
            let text = format!("t{i}");
            if let Ok(Some(found)) = look(&mut m, 0, &i.to_le_bytes(), text.as_bytes()) {
                assert_eq!(found, text.as_bytes(), "key {i}");
                hits += 1;
            }
        }
        assert_eq!(m.bits, MAX_BITS);
        assert!(hits > 11_000, "{hits} hits");
    }

    #[test]
    fn a_full_arena_starts_over_without_returning_stale_text() {
        let mut m = InfoMemo::default();
        let big = vec![b'y'; MAX_LEN];
        pass_trial(&mut m, 0);
        pass_trial(&mut m, 1);
        assert_eq!(look(&mut m, 0, b"first", b"1"), Ok(None));
        for i in 0..(ARENA_BYTES / MAX_LEN + 1) as u32 {
            let _ = look(&mut m, 1, &i.to_le_bytes(), &big);
        }
        assert!(m.arena.len() <= ARENA_BYTES);
        assert_eq!(look(&mut m, 0, b"first", b"-"), Ok(None), "dropped with the arena");
    }
}
