//! Semantics 5: a panic in a poll, a drop or a `scope` closure restores the
//! slot before the unwind leaves the wrapper.

mod common;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_local_storage::{exit, get, is_set, scope, with, WithStore};
use common::{poll_once, RequestId, User};

struct PanicOnPoll;
impl Future for PanicOnPoll {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        assert!(
            is_set::<RequestId>(),
            "the store is visible before the panic"
        );
        panic!("poll panicked");
    }
}

struct PanicOnDrop;
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        assert!(is_set::<RequestId>());
        panic!("drop panicked");
    }
}

fn assert_clean() {
    assert_eq!(get::<RequestId>(), None);
    assert_eq!(get::<User>(), None);
}

#[test]
fn panic_in_poll_restores_the_slot() {
    let mut fut = Box::pin(PanicOnPoll.with_store(RequestId(1)));
    let result = catch_unwind(AssertUnwindSafe(|| poll_once(fut.as_mut())));
    assert!(result.is_err());
    assert_clean();
    // Dropping the wrapper afterwards is fine too.
    drop(fut);
    assert_clean();
}

#[test]
fn panic_in_a_nested_poll_restores_the_outer_store() {
    scope(User("outer"), || {
        let mut fut = Box::pin(
            async { PanicOnPoll.with_store(RequestId(2)).await }.with_store(User("inner")),
        );
        let result = catch_unwind(AssertUnwindSafe(|| poll_once(fut.as_mut())));
        assert!(result.is_err());
        assert_eq!(get::<User>(), Some(User("outer")));
        assert_eq!(get::<RequestId>(), None);
    });
    assert_clean();
}

#[test]
fn panic_in_the_inner_drop_restores_the_slot() {
    let fut = async {
        let _guard = PanicOnDrop;
        std::future::pending::<()>().await;
    }
    .with_store(RequestId(3));
    let mut fut = Box::pin(fut);
    assert!(poll_once(fut.as_mut()).is_pending());
    let result = catch_unwind(AssertUnwindSafe(|| drop(fut)));
    assert!(result.is_err());
    assert_clean();
}

#[test]
fn panic_in_a_scope_closure_restores_the_slot() {
    let result = catch_unwind(|| scope(RequestId(4), || panic!("closure panicked")));
    assert!(result.is_err());
    assert_clean();

    let result = catch_unwind(|| {
        scope(RequestId(5), || {
            exit::<RequestId, ()>(|| panic!("inside exit"))
        })
    });
    assert!(result.is_err());
    assert_clean();
}

#[test]
fn panic_inside_with_restores_the_slot() {
    let result = catch_unwind(|| {
        scope(RequestId(6), || {
            with(|id: Option<&RequestId>| {
                assert_eq!(id, Some(&RequestId(6)));
                scope(User("x"), || panic!("nested"))
            })
        })
    });
    assert!(result.is_err());
    assert_clean();
}

#[test]
fn the_thread_keeps_working_after_a_panic() {
    let _ = catch_unwind(|| scope(RequestId(7), || panic!("boom")));
    let seen = common::block_on(async { get::<RequestId>() }.with_store(RequestId(8)));
    assert_eq!(seen, Some(RequestId(8)));
    assert_clean();
}
