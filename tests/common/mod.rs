//! Helpers shared by the core tests: a tiny executor toolkit with no runtime.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Stores are looked up by type: tests use newtypes, as users should.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub u64);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User(pub &'static str);

/// Scales loops down under Miri, which is ~1000x slower.
pub const fn scaled(n: usize) -> usize {
    if cfg!(miri) {
        if n < 8 {
            n
        } else {
            8
        }
    } else {
        n
    }
}

/// Returns `Pending` once (after waking itself), then `Ready`.
pub fn yield_now() -> YieldNow {
    YieldNow(false)
}

#[derive(Debug)]
pub struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Polls once with a no-op waker.
pub fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(futures::task::noop_waker_ref()))
}

/// Polls to completion with a no-op waker, counting the polls.
pub fn run_counting<F: Future>(fut: F) -> (F::Output, usize) {
    let mut fut = std::pin::pin!(fut);
    let mut polls = 0;
    loop {
        polls += 1;
        if let Poll::Ready(out) = poll_once(fut.as_mut()) {
            return (out, polls);
        }
        assert!(polls < 1_000_000, "future never completed");
    }
}

#[allow(unused_imports)]
pub use futures::executor::block_on;
