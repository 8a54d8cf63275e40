//! Data-plane worker threads, each with a runtime of its own.
//!
//! With one single-threaded runtime per worker (the binary's default
//! when it has several workers), a connection is accepted, served and
//! proxied on one thread from start to end: nothing is stolen, and no
//! idle worker is woken to look for work. Upstream connections follow:
//! an idle connection is registered with the runtime of the worker that
//! opened it, so the pools keep one share per worker, and a request takes
//! its connections from its own worker's share. Threads that are no
//! worker (the control plane's, tests') use the first share.

use std::cell::Cell;
use std::sync::Mutex;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// Marks the calling thread as data-plane worker `index` (from 0): the
/// requests it serves use that worker's share of the upstream
/// connections.
pub fn set_worker(index: usize) {
    INDEX.with(|i| i.set(index));
}

/// The calling thread's worker index (0 for any thread not marked).
fn current() -> usize {
    INDEX.with(Cell::get)
}

/// One `T` behind its own lock per worker.
pub(crate) struct PerWorker<T> {
    shares: Box<[Mutex<T>]>,
}

impl<T: Default> PerWorker<T> {
    /// `workers` shares (at least one).
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            shares: (0..workers.max(1)).map(|_| Mutex::default()).collect(),
        }
    }
}

impl<T> PerWorker<T> {
    /// The calling worker's share.
    pub(crate) fn here(&self) -> &Mutex<T> {
        &self.shares[current() % self.shares.len()]
    }

    /// Every share, for work over all of them (sweeps, counts).
    pub(crate) fn all(&self) -> impl Iterator<Item = &Mutex<T>> {
        self.shares.iter()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn each_worker_thread_gets_its_own_share() {
        let shares = std::sync::Arc::new(PerWorker::<Vec<usize>>::new(2));
        let threads: Vec<_> = (0..2)
            .map(|i| {
                let shares = shares.clone();
                std::thread::spawn(move || {
                    set_worker(i);
                    shares.here().lock().unwrap().push(i);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // An unmarked thread is worker 0.
        shares.here().lock().unwrap().push(7);
        let seen: Vec<Vec<usize>> = shares.all().map(|m| m.lock().unwrap().clone()).collect();
        assert_eq!(seen, vec![vec![0, 7], vec![1]]);
    }

    #[test]
    fn indexes_past_the_last_share_wrap_around() {
        let shares = PerWorker::<Vec<usize>>::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                set_worker(3);
                shares.here().lock().unwrap().push(3);
            });
        });
        assert_eq!(*shares.all().nth(1).unwrap().lock().unwrap(), vec![3]);
    }
}
