//! Data-plane worker threads, each with a runtime of its own.
//!
//! With one single-threaded runtime per worker (the binary's default
//! when it has several workers), a connection is accepted, served and
//! proxied on one thread from start to end: nothing is stolen, and no
//! idle worker is woken to look for work. Upstream connections follow:
//! an idle connection is registered with the runtime of the worker that
//! opened it, so the pools keep one share per worker, and a request takes
//! its connections from its own worker's share. Threads that are no
//! worker (the control plane's health checks, a single shared runtime's
//! threads) have a share of their own.

use std::cell::Cell;
use std::sync::Mutex;

/// The index of threads not marked as a worker.
const NOT_A_WORKER: usize = usize::MAX;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(NOT_A_WORKER) };
}

/// Marks the calling thread as data-plane worker `index` (from 0): the
/// requests it serves use that worker's share of the upstream
/// connections.
pub fn set_worker(index: usize) {
    INDEX.with(|i| i.set(index));
}

/// Makes the calling thread no worker again (for tests that play
/// several workers on one thread).
#[cfg(test)]
pub(crate) fn unset_worker() {
    set_worker(NOT_A_WORKER);
}

/// The calling thread's worker index ([`NOT_A_WORKER`] if not marked).
fn current() -> usize {
    INDEX.with(Cell::get)
}

/// One `T` behind its own lock per worker, and one for every other
/// thread.
pub(crate) struct PerWorker<T> {
    shares: Box<[Mutex<T>]>,
}

impl<T: Default> PerWorker<T> {
    /// A share for each of `workers` workers and one for the rest.
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            shares: (0..=workers).map(|_| Mutex::default()).collect(),
        }
    }
}

impl<T> PerWorker<T> {
    /// The calling worker's share; for a thread that is no worker (or
    /// past the workers counted), the last one.
    pub(crate) fn here(&self) -> &Mutex<T> {
        let last = self.shares.len() - 1;
        &self.shares[current().min(last)]
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
        // A thread that is no worker has the last share.
        std::thread::spawn({
            let shares = shares.clone();
            move || shares.here().lock().unwrap().push(7)
        })
        .join()
        .unwrap();
        let seen: Vec<Vec<usize>> = shares.all().map(|m| m.lock().unwrap().clone()).collect();
        assert_eq!(seen, vec![vec![0], vec![1], vec![7]]);
    }

    #[test]
    fn without_workers_every_thread_shares_one() {
        let shares = PerWorker::<Vec<usize>>::new(0);
        std::thread::scope(|s| {
            s.spawn(|| shares.here().lock().unwrap().push(1));
            s.spawn(|| {
                set_worker(3);
                shares.here().lock().unwrap().push(2);
            });
        });
        let mut seen = shares.all().next().unwrap().lock().unwrap().clone();
        seen.sort_unstable();
        assert_eq!(seen, vec![1, 2]);
        assert_eq!(shares.all().count(), 1);
    }
}
