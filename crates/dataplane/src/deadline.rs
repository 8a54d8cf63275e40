//! Request time limits kept by the connection's own timer.
//!
//! A time limit taken with `tokio::time::timeout` puts an entry in the
//! runtime's timer wheel when the request starts waiting and takes it out
//! when the answer comes: about 700 instructions and a lock for every
//! request, nearly all of which finish long before their limit. On the
//! gateway's own HTTP/1.1 server the requests of a connection come one
//! after another, and the connection already has a timer for its header
//! timeout that sits idle while a request runs. [`RequestClock`] lends
//! that timer to the running request: the pipeline writes its deadline
//! into the clock, the server's timer ([`RequestClock::alarm`]) is moved
//! earlier only when the deadline is sooner than it would go off anyway,
//! and when it goes off past the deadline the server marks the clock
//! expired and polls the request once more, which then ends with
//! [`Elapsed`]. A timer that goes off before the deadline is set again
//! for it; it never goes off late.
//!
//! Requests served by hyper (HTTP/2, the HTTP/1.1 connections handed
//! over) have no clock and keep a timer of their own.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

/// No deadline.
const NONE: u64 = u64::MAX;

/// The deadline of the request a connection is serving, if it has one.
///
/// The clock is shared between the server's task and the request it
/// runs, which is the same task: atomics only make the pair `Send`.
#[derive(Debug)]
pub(crate) struct RequestClock {
    /// What deadlines are counted from.
    base: Instant,
    /// The running request's deadline, in nanoseconds after `base`.
    deadline: AtomicU64,
    /// Set by the server once the deadline has passed.
    expired: AtomicBool,
}

/// A request's deadline passed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Elapsed;

impl RequestClock {
    pub(crate) fn new() -> Self {
        Self {
            base: Instant::now(),
            deadline: AtomicU64::new(NONE),
            expired: AtomicBool::new(false),
        }
    }

    /// The running request's deadline.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.deadline.load(Ordering::Relaxed) {
            NONE => None,
            nanos => Some(self.base + std::time::Duration::from_nanos(nanos)),
        }
    }

    /// `fut`, which ends with [`Elapsed`] once the connection's server
    /// finds `deadline` passed. One limited future at a time: the server
    /// runs one request at a time.
    pub(crate) fn limit<F: Future + Unpin>(&self, deadline: Instant, fut: F) -> Limited<'_, F> {
        let nanos = u64::try_from(deadline.saturating_duration_since(self.base).as_nanos())
            .unwrap_or(NONE - 1);
        self.deadline.store(nanos, Ordering::Relaxed);
        self.expired.store(false, Ordering::Relaxed);
        Limited {
            inner: fut,
            clock: self,
        }
    }

    /// Completes when the server's timer `sleep` goes off, first moving it
    /// to the running request's deadline when that is sooner. The caller
    /// then calls [`RequestClock::fired`].
    pub(crate) fn alarm<'a>(
        &'a self,
        mut sleep: Pin<&'a mut Sleep>,
    ) -> impl Future<Output = ()> + 'a {
        std::future::poll_fn(move |cx: &mut Context<'_>| {
            if let Some(deadline) = self.deadline()
                && deadline < sleep.deadline()
            {
                sleep.as_mut().reset(deadline);
            }
            sleep.as_mut().poll(cx)
        })
    }

    /// The server's timer `sleep` went off while a request ran: marks the
    /// clock expired if the request's deadline has passed, and sets the
    /// timer again, for the deadline or (with none) `idle` from now.
    pub(crate) fn fired(&self, sleep: Pin<&mut Sleep>, idle: std::time::Duration) {
        let now = Instant::now();
        match self.deadline() {
            Some(deadline) if now < deadline => sleep.reset(deadline),
            Some(_) => {
                self.expired.store(true, Ordering::Relaxed);
                sleep.reset(now + idle);
            }
            None => sleep.reset(now + idle),
        }
    }
}

/// A future limited by a [`RequestClock`]; the deadline is cleared when it
/// is dropped.
#[derive(Debug)]
pub(crate) struct Limited<'a, F> {
    inner: F,
    clock: &'a RequestClock,
}

impl<F: Future + Unpin> Future for Limited<'_, F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.clock.expired.load(Ordering::Relaxed) {
            return Poll::Ready(Err(Elapsed));
        }
        Pin::new(&mut self.inner).poll(cx).map(Ok)
    }
}

impl<F> Drop for Limited<'_, F> {
    fn drop(&mut self) {
        self.clock.deadline.store(NONE, Ordering::Relaxed);
        self.clock.expired.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Drives `clock`'s request the way the HTTP/1.1 server does: the
    /// request first, then the alarm; when the alarm goes off, `fired`
    /// and round again.
    async fn serve<F: Future + Unpin>(
        clock: &RequestClock,
        sleep: &mut Pin<Box<Sleep>>,
        deadline: Instant,
        fut: F,
    ) -> Result<F::Output, Elapsed> {
        let mut limited = std::pin::pin!(clock.limit(deadline, fut));
        loop {
            tokio::select! {
                biased;
                out = &mut limited => return out,
                () = clock.alarm(sleep.as_mut()) => clock.fired(sleep.as_mut(), Duration::from_secs(10)),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_past_its_deadline_elapses_on_time() {
        let clock = RequestClock::new();
        // The timer was set for a later time (a header timeout): it is
        // moved to the sooner deadline.
        let mut sleep = Box::pin(tokio::time::sleep(Duration::from_secs(10)));
        let start = Instant::now();
        let never = std::future::pending::<()>();
        let out = serve(
            &clock,
            &mut sleep,
            start + Duration::from_millis(300),
            never,
        )
        .await;
        assert_eq!(out, Err(Elapsed));
        assert_eq!(start.elapsed(), Duration::from_millis(300));
        assert_eq!(clock.deadline(), None, "the deadline is cleared");
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_set_earlier_is_set_again_for_the_deadline() {
        let clock = RequestClock::new();
        let mut sleep = Box::pin(tokio::time::sleep(Duration::from_millis(100)));
        let start = Instant::now();
        let slow = Box::pin(tokio::time::sleep(Duration::from_secs(5)));
        let out = serve(&clock, &mut sleep, start + Duration::from_secs(2), slow).await;
        assert_eq!(out, Err(Elapsed));
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_within_its_deadline_is_answered() {
        let clock = RequestClock::new();
        let mut sleep = Box::pin(tokio::time::sleep(Duration::from_millis(50)));
        let start = Instant::now();
        let quick = Box::pin(async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            7
        });
        let out = serve(&clock, &mut sleep, start + Duration::from_secs(1), quick).await;
        assert_eq!(out, Ok(7));
        assert_eq!(start.elapsed(), Duration::from_millis(200));
        // The next request starts afresh.
        assert_eq!(clock.deadline(), None);
        let out = serve(
            &clock,
            &mut sleep,
            Instant::now() + Duration::from_secs(1),
            Box::pin(async { 8 }),
        )
        .await;
        assert_eq!(out, Ok(8));
    }
}
