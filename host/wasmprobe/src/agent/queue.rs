//! A plugin's queue of batches: bounded, one sender (the pump thread) and one receiver (the
//! plugin's thread), which the sender wakes when it chooses rather than at every batch.
//!
//! Waking a parked thread costs the waker about 10 µs on a virtual machine (the futex wake
//! and the other CPU's interrupt), and the plugins, faster than the pump that packs for them,
//! park after nearly every batch: under a syscall storm the wake-ups were a sixth of the pump
//! thread's CPU with one wake per batch and plugin. The pump now wakes a plugin when a round
//! ends (or [`WAKE_AT`] batches wait), so each plugin is woken about once a round. A channel
//! of crossbeam, instead, does not park its receiver at once: it yields the CPU up to four
//! times first, which cost the plugin threads a tenth of the agent's CPU on two busy CPUs.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

/// Batches waiting that wake the receiver even before the round ends (at most half the queue:
/// a small queue must not fill while its receiver sleeps).
pub const WAKE_AT: usize = 16;

struct State<T> {
    items: VecDeque<T>,
    /// The sender is gone: the receiver gets what is left, then the end.
    closed: bool,
    /// The receiver is gone: nothing more is taken.
    gone: bool,
    /// The receiver is parked, waiting for an item.
    waiting: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    cap: usize,
}

/// The sending end (one, not cloned); dropping it ends the queue once it is emptied.
pub struct QueueTx<T>(Arc<Shared<T>>);

/// The receiving end.
pub struct QueueRx<T>(Arc<Shared<T>>);

/// A queue of at most `cap` items (at least 1).
pub fn queue<T>(cap: usize) -> (QueueTx<T>, QueueRx<T>) {
    let state = State { items: VecDeque::new(), closed: false, gone: false, waiting: false };
    let shared = Arc::new(Shared { state: Mutex::new(state), ready: Condvar::new(), cap: cap.max(1) });
    (QueueTx(shared.clone()), QueueRx(shared))
}

impl<T> QueueTx<T> {
    /// Adds `item` unless the queue is full or its receiver gone (then it is given back).
    /// A parked receiver is woken when `wake` is set or [`WAKE_AT`] items wait (half the
    /// queue, if that is fewer); otherwise the next [`QueueTx::wake`] does it.
    pub fn try_push(&self, item: T, wake: bool) -> Result<(), T> {
        let mut st = self.0.state.lock().unwrap();
        if st.gone || st.items.len() >= self.0.cap {
            return Err(item);
        }
        st.items.push_back(item);
        if st.waiting && (wake || st.items.len() >= WAKE_AT.min(self.0.cap.div_ceil(2))) {
            st.waiting = false;
            self.0.ready.notify_one();
        }
        Ok(())
    }

    /// Adds `item` whatever the queue holds (a message that must arrive) and wakes the
    /// receiver.
    pub fn push(&self, item: T) {
        let mut st = self.0.state.lock().unwrap();
        st.items.push_back(item);
        if st.waiting {
            st.waiting = false;
            self.0.ready.notify_one();
        }
    }

    /// Wakes the receiver if it is parked while items wait.
    pub fn wake(&self) {
        let mut st = self.0.state.lock().unwrap();
        if st.waiting && !st.items.is_empty() {
            st.waiting = false;
            self.0.ready.notify_one();
        }
    }
}

impl<T> Drop for QueueTx<T> {
    fn drop(&mut self) {
        let mut st = self.0.state.lock().unwrap();
        st.closed = true;
        st.waiting = false;
        self.0.ready.notify_one();
    }
}

impl<T> QueueRx<T> {
    /// The next item, parking until the sender pushes and wakes; `None` once the sender is
    /// gone and the queue empty.
    pub fn recv(&self) -> Option<T> {
        let mut st = self.0.state.lock().unwrap();
        loop {
            if let Some(item) = st.items.pop_front() {
                return Some(item);
            }
            if st.closed {
                return None;
            }
            st.waiting = true;
            st = self.0.ready.wait(st).unwrap();
        }
    }

    /// Whether no item waits.
    pub fn is_empty(&self) -> bool {
        self.0.state.lock().unwrap().items.is_empty()
    }

    /// The next item if one waits.
    #[cfg(test)]
    pub fn try_recv(&self) -> Option<T> {
        self.0.state.lock().unwrap().items.pop_front()
    }
}

impl<T> Drop for QueueRx<T> {
    fn drop(&mut self) {
        let mut st = self.0.state.lock().unwrap();
        st.gone = true;
        // Whatever waits is freed now, not when the sender goes.
        st.items.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_full_queue_refuses_and_a_gone_receiver_takes_nothing() {
        let (tx, rx) = queue(2);
        assert_eq!(tx.try_push(1, false), Ok(()));
        assert_eq!(tx.try_push(2, false), Ok(()));
        assert_eq!(tx.try_push(3, true), Err(3));
        tx.push(4);
        assert_eq!((rx.recv(), rx.try_recv(), rx.recv(), rx.try_recv()), (Some(1), Some(2), Some(4), None));
        drop(rx);
        assert_eq!(tx.try_push(5, true), Err(5));
    }

    #[test]
    fn the_receiver_wakes_when_told_or_when_enough_wait_and_ends_after_the_sender() {
        let (tx, rx) = queue(4 * WAKE_AT);
        let got = std::thread::spawn(move || {
            let mut got = Vec::new();
            while let Some(x) = rx.recv() {
                got.push((x, Instant::now()));
            }
            got
        });
        std::thread::sleep(Duration::from_millis(50));
        // Parked: one item without a wake stays until wake().
        tx.try_push(1, false).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let woken = Instant::now();
        tx.wake();
        std::thread::sleep(Duration::from_millis(50));
        // WAKE_AT items wake it without being told.
        for i in 0..WAKE_AT {
            tx.try_push(10 + i, false).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        tx.try_push(99, false).unwrap();
        drop(tx);
        let got = got.join().unwrap();
        let values: Vec<usize> = got.iter().map(|g| g.0).collect();
        let want: Vec<usize> = [1].into_iter().chain(10..10 + WAKE_AT).chain([99]).collect();
        assert_eq!(values, want);
        assert!(got[0].1 >= woken, "the first item was taken before the wake");
    }

    #[test]
    fn a_small_queue_wakes_its_receiver_before_it_is_full() {
        let (tx, rx) = queue(2);
        let got = std::thread::spawn(move || rx.recv());
        std::thread::sleep(Duration::from_millis(50));
        // Half of two: one item wakes it, without wake().
        tx.try_push(7, false).unwrap();
        let t0 = Instant::now();
        while !got.is_finished() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(got.is_finished(), "the receiver slept on a half-full queue of two");
        assert_eq!(got.join().unwrap(), Some(7));
        drop(tx);
    }
}
