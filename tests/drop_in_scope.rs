//! Semantics 4: the inner future's destructor runs with the store visible,
//! after completion and on early drop (cancellation).

mod common;

use std::cell::RefCell;
use std::future::Future;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll};

use async_local_storage::{get, WithStore};
use common::{poll_once, yield_now, RequestId};

/// A future that is Pending `pending` times, and records what its destructor sees.
struct Recorder {
    pending: usize,
    seen_at_drop: Rc<RefCell<Vec<Option<RequestId>>>>,
}

impl Future for Recorder {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.pending == 0 {
            return Poll::Ready(());
        }
        self.pending -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.seen_at_drop.borrow_mut().push(get::<RequestId>());
    }
}

fn recorder(pending: usize) -> (Recorder, Rc<RefCell<Vec<Option<RequestId>>>>) {
    let log = Rc::new(RefCell::new(Vec::new()));
    let rec = Recorder {
        pending,
        seen_at_drop: log.clone(),
    };
    (rec, log)
}

#[test]
fn drop_after_completion_sees_the_store() {
    let (rec, log) = recorder(2);
    {
        let mut fut = pin!(rec.with_local_store(RequestId(4)));
        while poll_once(fut.as_mut()).is_pending() {}
        assert!(log.borrow().is_empty(), "not dropped yet");
    }
    assert_eq!(*log.borrow(), [Some(RequestId(4))]);
    assert_eq!(get::<RequestId>(), None);
}

#[test]
fn early_drop_cancellation_sees_the_store() {
    let (rec, log) = recorder(10);
    let mut fut = Box::pin(rec.with_local_store(RequestId(5)));
    assert!(poll_once(fut.as_mut()).is_pending());
    drop(fut);
    assert_eq!(*log.borrow(), [Some(RequestId(5))]);
    assert_eq!(get::<RequestId>(), None);
}

#[test]
fn drop_of_a_never_polled_future_sees_the_store() {
    let (rec, log) = recorder(1);
    drop(rec.with_local_store(RequestId(6)));
    assert_eq!(*log.borrow(), [Some(RequestId(6))]);
}

#[test]
fn async_block_locals_are_dropped_inside_the_scope_on_cancellation() {
    let (rec, log) = recorder(0);
    let mut fut = Box::pin(
        async move {
            let _held = rec; // dropped when the async block is dropped
            loop {
                yield_now().await;
            }
        }
        .with_store(RequestId(7)),
    );
    for _ in 0..3 {
        assert!(poll_once(fut.as_mut()).is_pending());
    }
    drop(fut);
    assert_eq!(*log.borrow(), [Some(RequestId(7))]);
}

#[test]
fn nested_drop_sees_every_layer() {
    let log = Rc::new(RefCell::new(Vec::new()));
    type Seen = Vec<(Option<RequestId>, Option<u8>)>;
    struct Both(Rc<RefCell<Seen>>);
    impl Drop for Both {
        fn drop(&mut self) {
            self.0.borrow_mut().push((get::<RequestId>(), get::<u8>()));
        }
    }
    let held = Both(log.clone());
    let fut = async move {
        let _held = held;
        yield_now().await;
    }
    .with_store(1u8)
    .with_store(RequestId(8));
    drop(fut);
    assert_eq!(*log.borrow(), [(Some(RequestId(8)), Some(1))]);
}

#[test]
fn into_parts_does_not_run_the_inner_drop_in_scope_and_returns_the_value() {
    let (rec, log) = recorder(1);
    let (inner, value) = rec.with_local_store(RequestId(9)).into_parts();
    assert_eq!(value, RequestId(9));
    assert!(
        log.borrow().is_empty(),
        "inner must not be dropped by into_parts"
    );
    drop(inner);
    assert_eq!(*log.borrow(), [None], "dropped outside any scope");
}
