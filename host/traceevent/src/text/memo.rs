//! [`InfoMemo`]: the info texts a report already printed, by the record bytes they came from.
//!
//! An event's info text (libtraceevent's dialect, as `trace-cmd report` prints it) is a pure
//! function of the record's bytes past its common fields, for nearly every format (see
//! [`crate::format::EventFormats::info_key_start`] for the exceptions). Traces repeat
//! themselves: the same tasks switch, the same work items run, the same syscalls return the
//! same values, and many classes print one of a few thousand texts for hundreds of thousands
//! of records. Printing such a record again costs a hash and a copy instead of the
//! interpreter's walk over the print fmt.
//!
//! Bounded and self-tuning: a direct-mapped table (a collision replaces the older entry, so a
//! trace crafted to collide only costs misses), texts in one arena that is dropped whole when
//! it reaches [`ARENA_BYTES`], and a format whose records rarely repeat (pointers, timestamps,
//! paths) is printed directly after a trial of [`TRIAL`] records, paying nothing further.

use std::hash::Hasher as _;

use wasmprobe_abi::fxhash::FxHasher;

/// Slots of the table (a power of two): 16,384 × 24 bytes.
const SLOT_BITS: u32 = 14;
/// The arena's limit; reaching it drops every entry (a new generation).
const ARENA_BYTES: usize = 4 << 20;
/// Records of a format per trial of whether memoizing it pays.
const TRIAL: u32 = 1024;
/// Below this many hits in a trial the format's next records are printed directly: first
/// [`FIRST_REST`] of them, twice as many after each failed trial in a row, at most
/// [`LONGEST_REST`], then it is tried again (a trace's mix of records changes as it goes).
const TRIAL_HITS: u32 = TRIAL / 4;
const FIRST_REST: u32 = 16 * TRIAL;
const LONGEST_REST: u32 = 1024 * TRIAL;
/// The longest key or text kept (a record is at most a page; a stack's text can be long).
const MAX_LEN: usize = 4096;

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
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
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
    hits: u32,
    /// Records left to print directly.
    resting: u32,
    /// The rest after the next failed trial (0: [`FIRST_REST`]).
    next_rest: u32,
}

/// What [`InfoMemo::lookup`] found.
pub(crate) enum Lookup {
    /// The text was appended.
    Hit,
    /// Not known: print it, then [`InfoMemo::insert`] it with this token.
    Miss(Pending),
    /// The format is not memoized: print it.
    Skip,
}

/// A miss to be filled in: where the key hashed to.
pub(crate) struct Pending {
    hash: u64,
}

impl Default for InfoMemo {
    fn default() -> Self {
        InfoMemo { slots: Vec::new(), arena: Vec::new(), generation: 1, formats: Vec::new() }
    }
}

impl InfoMemo {
    /// Appends the text memoized for `key` (the record bytes past its common fields) of the
    /// format at `format` to `out`, if there is one.
    #[inline]
    pub(crate) fn lookup(&mut self, format: usize, key: &[u8], out: &mut Vec<u8>) -> Lookup {
        if self.formats.len() <= format {
            self.formats.resize(format + 1, Trial::default());
        }
        let trial = &mut self.formats[format];
        if trial.resting > 0 {
            trial.resting -= 1;
            return Lookup::Skip;
        }
        if key.len() > MAX_LEN {
            return Lookup::Skip;
        }
        trial.lookups += 1;
        if trial.lookups == TRIAL {
            if trial.hits < TRIAL_HITS {
                trial.resting = trial.next_rest.max(FIRST_REST);
                trial.next_rest = (trial.resting * 2).min(LONGEST_REST);
            } else {
                trial.next_rest = 0;
            }
            trial.lookups = 0;
            trial.hits = 0;
        }
        if self.slots.is_empty() {
            self.slots = vec![Slot::default(); 1 << SLOT_BITS];
        }
        let mut h = FxHasher::default();
        h.write_usize(format);
        h.write(key);
        let hash = h.finish();
        let slot = &self.slots[(hash >> (64 - SLOT_BITS)) as usize];
        if slot.hash == hash && slot.generation == self.generation && slot.format as usize == format {
            let at = slot.at as usize;
            let text_at = at + usize::from(slot.key_len);
            if self.arena.get(at..text_at).is_some_and(|k| same(k, key)) {
                out.extend_from_slice(&self.arena[text_at..text_at + usize::from(slot.text_len)]);
                trial.hits += 1;
                return Lookup::Hit;
            }
        }
        Lookup::Miss(Pending { hash })
    }

    /// Keeps `text`, printed for `key` of the format at `format` after `lookup` missed.
    pub(crate) fn insert(&mut self, format: usize, pending: Pending, key: &[u8], text: &[u8]) {
        if text.len() > MAX_LEN {
            return;
        }
        if self.arena.len() + key.len() + text.len() > ARENA_BYTES {
            self.arena.clear();
            self.generation = self.generation.wrapping_add(1).max(1);
        }
        let at = self.arena.len();
        self.arena.extend_from_slice(key);
        self.arena.extend_from_slice(text);
        self.slots[(pending.hash >> (64 - SLOT_BITS)) as usize] = Slot {
            hash: pending.hash,
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
    diff == 0 && a8.remainder() == b8.remainder()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(m: &mut InfoMemo, format: usize, key: &[u8]) -> Option<Vec<u8>> {
        let mut out = b"x".to_vec();
        match m.lookup(format, key, &mut out) {
            Lookup::Hit => Some(out[1..].to_vec()),
            _ => None,
        }
    }

    #[test]
    fn a_text_comes_back_only_for_its_own_format_and_bytes() {
        let mut m = InfoMemo::default();
        let Lookup::Miss(p) = m.lookup(3, b"abc", &mut Vec::new()) else { panic!("first lookup must miss") };
        m.insert(3, p, b"abc", b"text of abc");
        assert_eq!(hit(&mut m, 3, b"abc").as_deref(), Some(&b"text of abc"[..]));
        assert_eq!(hit(&mut m, 4, b"abc"), None, "another format");
        assert_eq!(hit(&mut m, 3, b"abd"), None, "other bytes");
        assert_eq!(hit(&mut m, 3, b"ab"), None, "a prefix");
    }

    /// Looks up `key` of format 0, inserting it on a miss; whether it was skipped.
    fn skipped(m: &mut InfoMemo, key: u32) -> bool {
        let key = key.to_le_bytes();
        match m.lookup(0, &key, &mut Vec::new()) {
            Lookup::Miss(p) => {
                m.insert(0, p, &key, b"t");
                false
            }
            Lookup::Hit => false,
            Lookup::Skip => true,
        }
    }

    #[test]
    fn a_format_that_stops_repeating_rests_longer_each_trial_and_is_tried_again() {
        let mut m = InfoMemo::default();
        let mut key = 0;
        let mut next = || {
            key += 1;
            key
        };
        // Distinct bytes: every lookup of the trial misses, then the format rests.
        for _ in 0..TRIAL {
            assert!(!skipped(&mut m, next()));
        }
        for _ in 0..FIRST_REST {
            assert!(skipped(&mut m, next()));
        }
        // Another format still has its own trial.
        assert!(matches!(m.lookup(1, b"k", &mut Vec::new()), Lookup::Miss(_)));
        // Tried again, failed again: a rest twice as long.
        for _ in 0..TRIAL {
            assert!(!skipped(&mut m, next()));
        }
        for _ in 0..2 * FIRST_REST {
            assert!(skipped(&mut m, next()));
        }
        // Now the records repeat: the trial passes and the format stays memoized.
        for i in 0..3 * TRIAL {
            assert!(!skipped(&mut m, i % 8));
        }
        assert_eq!(m.formats[0].resting, 0);
    }

    #[test]
    fn a_full_arena_starts_over_without_returning_stale_text() {
        let mut m = InfoMemo::default();
        let big = vec![b'y'; MAX_LEN];
        let Lookup::Miss(p) = m.lookup(0, b"first", &mut Vec::new()) else { panic!() };
        m.insert(0, p, b"first", b"1");
        for i in 0..(ARENA_BYTES / MAX_LEN + 1) as u32 {
            let key = i.to_le_bytes();
            if let Lookup::Miss(p) = m.lookup(1, &key, &mut Vec::new()) {
                m.insert(1, p, &key, &big);
            }
        }
        assert!(m.arena.len() <= ARENA_BYTES);
        assert_eq!(hit(&mut m, 0, b"first"), None, "dropped with the arena");
    }
}
