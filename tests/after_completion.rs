//! Semantics 8: polling after completion behaves as the inner future does;
//! the wrapper adds no panic of its own.

mod common;

use std::future::{ready, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use async_local_storage::{get, WithStore};
use common::{poll_once, RequestId};
use futures::future::{FusedFuture, FutureExt};

/// Ready forever, reporting what it sees each time.
struct AlwaysReady;
impl Future for AlwaysReady {
    type Output = Option<RequestId>;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(get::<RequestId>())
    }
}

#[test]
fn a_future_that_tolerates_repolling_keeps_seeing_the_store() {
    let mut fut = pin!(AlwaysReady.with_store(RequestId(1)));
    for _ in 0..3 {
        assert_eq!(poll_once(fut.as_mut()), Poll::Ready(Some(RequestId(1))));
    }
    assert_eq!(get::<RequestId>(), None);
}

fn panic_message(err: Box<dyn std::any::Any + Send>) -> String {
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Polls `fut` twice and returns the panic message of the second poll.
fn repoll_panic<F: Future + Unpin>(mut fut: F) -> String {
    assert!(poll_once(Pin::new(&mut fut)).is_ready());
    let err = catch_unwind(AssertUnwindSafe(|| poll_once(Pin::new(&mut fut))))
        .err()
        .expect("the second poll panics");
    panic_message(err)
}

#[test]
fn a_future_that_panics_on_repoll_panics_the_same_way_and_leaves_no_store() {
    let bare = repoll_panic(ready(5));
    let wrapped = repoll_panic(ready(5).with_store(RequestId(2)));
    assert!(!bare.is_empty());
    assert_eq!(wrapped, bare, "the wrapper adds no panic of its own");
    assert_eq!(get::<RequestId>(), None);
}

#[test]
fn fused_futures_stay_fused() {
    let mut fut = pin!(async { 1 }.fuse().with_store(RequestId(3)));
    assert!(!fut.is_terminated());
    assert_eq!(poll_once(fut.as_mut()), Poll::Ready(1));
    assert!(fut.is_terminated());
    assert_eq!(
        poll_once(fut.as_mut()),
        Poll::Pending,
        "Fuse returns Pending after completion"
    );
}
