//! Semantics 1: a store is visible during the polls of the wrapped future and
//! invisible outside them.

mod common;

use std::pin::pin;
use std::task::Poll;

use async_local_storage::{get, is_set, scope, with, WithStore};
use common::{block_on, poll_once, run_counting, yield_now, RequestId};

async fn leaf() -> Option<RequestId> {
    yield_now().await;
    get::<RequestId>()
}

async fn middle() -> Vec<Option<RequestId>> {
    let mut seen = vec![get::<RequestId>()];
    for _ in 0..3 {
        seen.push(leaf().await);
    }
    seen
}

#[test]
fn nothing_is_visible_at_top_level() {
    assert_eq!(get::<RequestId>(), None);
    assert!(!is_set::<RequestId>());
    assert!(with(|id: Option<&RequestId>| id.is_none()));
}

#[test]
fn visible_through_nested_async_calls_across_awaits() {
    let (seen, polls) = run_counting(middle().with_store(RequestId(7)));
    assert_eq!(seen, vec![Some(RequestId(7)); 4]);
    assert_eq!(polls, 4, "each yield is one Pending round trip");
}

#[test]
fn invisible_after_the_await_returns() {
    let seen = block_on(async {
        let inside = async { get::<RequestId>() }.with_store(RequestId(1)).await;
        (inside, get::<RequestId>())
    });
    assert_eq!(seen, (Some(RequestId(1)), None));
}

#[test]
fn invisible_on_the_thread_between_polls() {
    let mut fut = pin!(middle().with_store(RequestId(3)));
    let mut polls = 0;
    let seen = loop {
        polls += 1;
        match poll_once(fut.as_mut()) {
            Poll::Ready(seen) => break seen,
            Poll::Pending => {
                assert_eq!(get::<RequestId>(), None, "leaked between polls");
            }
        }
    };
    assert_eq!(polls, 4);
    assert_eq!(seen, vec![Some(RequestId(3)); 4]);
    assert_eq!(get::<RequestId>(), None);
}

/// The documented difference from Node: stores follow polling, not creation.
#[test]
fn a_future_created_inside_a_scope_but_polled_outside_does_not_see_it() {
    let fut = scope(RequestId(9), || {
        assert_eq!(get::<RequestId>(), Some(RequestId(9)));
        leaf()
    });
    assert_eq!(block_on(fut), None);

    #[allow(clippy::async_yields_async)] // the point: the future escapes its scope
    let created_in_async_scope = block_on(async { leaf() }.with_store(RequestId(9)));
    assert_eq!(block_on(created_in_async_scope), None);
}

#[test]
fn with_lends_the_value_without_cloning() {
    struct NotClone(u32);
    let fut = async { with(|v: Option<&NotClone>| v.map(|v| v.0)) }.with_local_store(NotClone(5));
    assert_eq!(block_on(fut), Some(5));
}

#[test]
fn stores_are_found_by_exact_type() {
    let seen = block_on(async { (get::<u32>(), get::<i32>(), get::<u64>()) }.with_store(5u32));
    assert_eq!(seen, (Some(5), None, None));
}

#[test]
fn sync_scope_is_visible_inside_only() {
    assert_eq!(scope(RequestId(2), get::<RequestId>), Some(RequestId(2)));
    assert_eq!(get::<RequestId>(), None);
}
