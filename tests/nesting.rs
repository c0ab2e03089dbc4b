//! Semantics 2: nesting, shadowing, `without_store`, restoration per poll.

mod common;

use std::pin::pin;
use std::task::Poll;

use async_local_storage::{exit, get, scope, WithStore};
use common::{block_on, poll_once, yield_now, RequestId, User};

#[test]
fn inner_store_of_the_same_type_shadows_for_the_inner_poll_only() {
    let seen = block_on(
        async {
            let before = get::<RequestId>();
            let inner = async {
                let a = get::<RequestId>();
                yield_now().await;
                (a, get::<RequestId>())
            }
            .with_store(RequestId(2))
            .await;
            yield_now().await;
            (before, inner, get::<RequestId>())
        }
        .with_store(RequestId(1)),
    );
    assert_eq!(
        seen,
        (
            Some(RequestId(1)),
            (Some(RequestId(2)), Some(RequestId(2))),
            Some(RequestId(1))
        )
    );
}

#[test]
fn stores_of_other_types_stay_visible_through_a_shadowing_store() {
    let seen = block_on(
        async {
            async { (get::<RequestId>(), get::<User>()) }
                .with_store(RequestId(2))
                .await
        }
        .with_store(User("ada"))
        .with_store(RequestId(1)),
    );
    assert_eq!(seen, (Some(RequestId(2)), Some(User("ada"))));
}

#[test]
fn without_store_hides_that_type_and_nothing_else() {
    let seen = block_on(
        async {
            let hidden = async {
                yield_now().await;
                (get::<RequestId>(), get::<User>())
            }
            .without_store::<RequestId>()
            .await;
            (hidden, get::<RequestId>())
        }
        .with_store(User("ada"))
        .with_store(RequestId(1)),
    );
    assert_eq!(seen, ((None, Some(User("ada"))), Some(RequestId(1))));
}

#[test]
fn a_store_set_inside_without_store_is_visible_again() {
    let seen = block_on(
        async { async { get::<RequestId>() }.with_store(RequestId(3)).await }
            .without_store::<RequestId>()
            .with_store(RequestId(1)),
    );
    assert_eq!(seen, Some(RequestId(3)));
}

/// Polls by hand so the state can be checked after every poll, Pending or Ready.
#[test]
fn everything_is_restored_after_each_poll() {
    let outer_scope = |f: &mut dyn FnMut()| scope(User("outer"), || scope(RequestId(100), f));

    let mut fut = pin!(async {
        for _ in 0..3 {
            assert_eq!(get::<RequestId>(), Some(RequestId(2)));
            assert_eq!(get::<User>(), None);
            yield_now().await;
        }
        async {
            assert_eq!(get::<RequestId>(), Some(RequestId(2)));
            yield_now().await;
        }
        .with_store(User("inner"))
        .await;
    }
    .without_store::<User>()
    .with_store(RequestId(2)));

    let mut results = Vec::new();
    while results.last() != Some(&true) {
        outer_scope(&mut || {
            let ready = poll_once(fut.as_mut()).is_ready();
            // Back in the caller's context: exactly its stores.
            assert_eq!(get::<RequestId>(), Some(RequestId(100)));
            assert_eq!(get::<User>(), Some(User("outer")));
            results.push(ready);
        });
        assert_eq!(get::<RequestId>(), None);
        assert_eq!(get::<User>(), None);
        assert!(results.len() < 10);
    }
    assert_eq!(results, [false, false, false, false, true]);
}

#[test]
fn deep_nesting_finds_the_nearest_store() {
    fn nest(depth: u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u64>>>> {
        Box::pin(async move {
            let here = get::<RequestId>().map(|r| r.0).unwrap_or(u64::MAX);
            if depth == 0 {
                return vec![here];
            }
            let mut below = nest(depth - 1).with_store(RequestId(depth - 1)).await;
            below.push(here);
            below.push(get::<RequestId>().unwrap().0);
            below
        })
    }
    let seen = block_on(nest(3).with_store(RequestId(3)));
    assert_eq!(seen, vec![0, 1, 1, 2, 2, 3, 3]);
}

#[test]
fn sync_exit_and_scope_nest() {
    scope(RequestId(1), || {
        scope(User("ada"), || {
            exit::<RequestId, _>(|| {
                assert_eq!(get::<RequestId>(), None);
                assert_eq!(get::<User>(), Some(User("ada")));
                scope(RequestId(2), || {
                    assert_eq!(get::<RequestId>(), Some(RequestId(2)))
                });
                assert_eq!(get::<RequestId>(), None);
            });
            assert_eq!(get::<RequestId>(), Some(RequestId(1)));
        });
    });
    assert_eq!(get::<RequestId>(), None);
}

#[test]
fn polling_order_of_pending_results_is_transparent() {
    let mut fut = pin!(async { 5 }.with_store(RequestId(1)));
    assert_eq!(poll_once(fut.as_mut()), Poll::Ready(5));
}

#[test]
fn isolate_hides_every_outer_store_but_not_inner_ones() {
    use async_local_storage::isolate;
    scope(RequestId(1), || {
        scope(User("ada"), || {
            isolate(|| {
                assert_eq!(get::<RequestId>(), None);
                assert_eq!(get::<User>(), None);
                scope(RequestId(2), || {
                    assert_eq!(get::<RequestId>(), Some(RequestId(2)))
                });
            });
            assert_eq!(get::<RequestId>(), Some(RequestId(1)));
        })
    });
}

#[test]
fn isolated_futures_see_only_what_they_install() {
    let seen = block_on(
        async {
            let inside = async {
                yield_now().await;
                let own = async { get::<User>() }.with_store(User("own")).await;
                (get::<RequestId>(), get::<User>(), own)
            }
            .isolated()
            .await;
            (inside, get::<RequestId>())
        }
        .with_store(User("outer"))
        .with_store(RequestId(1)),
    );
    assert_eq!(seen, ((None, None, Some(User("own"))), Some(RequestId(1))));
}
