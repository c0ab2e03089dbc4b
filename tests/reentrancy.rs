//! Semantics 6: `with` inside `with`, `scope` inside `with`, and polling a
//! scoped future inside a `with` closure are correct (and sound: Miri runs
//! these).

mod common;

use std::pin::pin;

use async_local_storage::{get, scope, with, WithStore};
use common::{block_on, poll_once, run_counting, yield_now, RequestId, User};

#[test]
fn with_inside_with() {
    scope(RequestId(1), || {
        scope(User("ada"), || {
            with(|id: Option<&RequestId>| {
                with(|user: Option<&User>| {
                    with(|again: Option<&RequestId>| {
                        assert_eq!(id, Some(&RequestId(1)));
                        assert_eq!(user, Some(&User("ada")));
                        assert!(std::ptr::eq(id.unwrap(), again.unwrap()));
                    })
                })
            })
        })
    });
}

#[test]
fn scope_inside_with_shadows_without_disturbing_the_borrow() {
    scope(RequestId(1), || {
        with(|outer: Option<&RequestId>| {
            scope(RequestId(2), || {
                assert_eq!(get::<RequestId>(), Some(RequestId(2)));
                assert_eq!(outer, Some(&RequestId(1)));
            });
            assert_eq!(get::<RequestId>(), Some(RequestId(1)));
        })
    });
}

#[test]
fn polling_a_scoped_future_inside_a_with_closure() {
    let mut fut = pin!(async {
        let first = get::<RequestId>();
        yield_now().await;
        (first, get::<RequestId>(), get::<User>())
    }
    .with_store(RequestId(2)));
    scope(User("ada"), || {
        scope(RequestId(1), || {
            with(|outer: Option<&RequestId>| {
                assert!(poll_once(fut.as_mut()).is_pending());
                assert_eq!(outer, Some(&RequestId(1)));
                let done = poll_once(fut.as_mut());
                assert_eq!(
                    done,
                    std::task::Poll::Ready((
                        Some(RequestId(2)),
                        Some(RequestId(2)),
                        Some(User("ada"))
                    ))
                );
                assert_eq!(outer, Some(&RequestId(1)));
            })
        })
    });
}

#[test]
fn block_on_inside_a_poll_inherits_like_a_sync_call() {
    let seen = block_on(
        async {
            // A nested executor run inside a poll is plain synchronous code.
            run_counting(async { get::<RequestId>() }).0
        }
        .with_store(RequestId(3)),
    );
    assert_eq!(seen, Some(RequestId(3)));
}

#[test]
fn with_reads_a_store_while_a_scope_of_it_is_polled() {
    // The value is lent from the pinned wrapper while it is being polled.
    let seen = block_on(
        async {
            with(|v: Option<&Vec<u32>>| {
                let v = v.unwrap();
                let inner = run_counting(async { get::<Vec<u32>>() }.with_store(vec![9u32])).0;
                (v.clone(), inner)
            })
        }
        .with_store(vec![1u32, 2, 3]),
    );
    assert_eq!(seen, (vec![1, 2, 3], Some(vec![9])));
}
