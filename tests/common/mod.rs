//! Helpers shared by the core tests: a tiny executor toolkit with no runtime.
//! The adapter tests share more in [`runtime`].
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

#[cfg(feature = "std")]
pub mod runtime;

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

/// Keeps the panic hook quiet for the panics a test raises on purpose, those
/// whose payload is a `P`, and only for those: every other panic prints as
/// usual. Installed once per test binary, for one payload type (a call with
/// another type panics).
pub fn quiet_panics_of<P: std::any::Any>() {
    use std::any::TypeId;
    static QUIETED: std::sync::OnceLock<TypeId> = std::sync::OnceLock::new();
    let quieted = *QUIETED.get_or_init(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<P>().is_none() {
                default(info);
            }
        }));
        TypeId::of::<P>()
    });
    assert!(
        quieted == TypeId::of::<P>(),
        "quiet_panics_of: one payload type per test binary"
    );
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
    run_within(1_000_000, fut)
}

/// Polls to completion with a no-op waker, at most `max_polls` times;
/// returns the output and the number of polls.
pub fn run_within<F: Future>(max_polls: usize, fut: F) -> (F::Output, usize) {
    let mut fut = std::pin::pin!(fut);
    for polls in 1..=max_polls {
        if let Poll::Ready(out) = poll_once(fut.as_mut()) {
            return (out, polls);
        }
    }
    panic!("future never completed");
}

#[allow(unused_imports)]
pub use futures::executor::block_on;

/// The backend the `critical-section` host tests expect: `std` wins over
/// `critical-section` when both are enabled; otherwise the slot the test
/// binary registered (`CriticalSectionSlot` + `set_slot!`) is used.
#[cfg(feature = "critical-section")]
pub const CRITICAL_SECTION_BACKEND: &str = if cfg!(feature = "std") {
    "thread-local"
} else {
    "custom"
};

/// For the `critical-section` host tests (`harness = false`, run by
/// `main`): asserts that the features this test was built with select
/// [`CRITICAL_SECTION_BACKEND`]; if `std` won, says that `what` (runs)
/// against it, and how to run `test` on the critical-section backend.
#[cfg(feature = "critical-section")]
pub fn check_critical_section_backend(what: &str, test: &str) {
    use async_local_storage::slot;

    assert_eq!(
        slot::BACKEND,
        CRITICAL_SECTION_BACKEND,
        "the features this test was built with select another backend"
    );
    if CRITICAL_SECTION_BACKEND != "custom" {
        println!(
            "note: `std` is enabled and wins, so {what} run against the {} backend; run \
             `cargo test --no-default-features --features critical-section --test {test}` \
             to test the critical-section backend",
            slot::BACKEND
        );
    }
}
