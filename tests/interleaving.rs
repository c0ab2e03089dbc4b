//! Semantics 3: futures joined in one task each see only their own store at
//! every poll, across many Pending round trips.

mod common;

use async_local_storage::{get, WithStore};
use common::{block_on, scaled, yield_now, RequestId};
use futures::future::{join, join_all};

async fn worker(expected: u64, rounds: usize) -> usize {
    let mut checks = 0;
    for _ in 0..rounds {
        assert_eq!(get::<RequestId>(), Some(RequestId(expected)));
        checks += 1;
        yield_now().await;
    }
    assert_eq!(get::<RequestId>(), Some(RequestId(expected)));
    checks + 1
}

#[test]
fn two_joined_futures_each_see_their_own_value() {
    let rounds = scaled(200);
    let (a, b) = block_on(join(
        worker(1, rounds).with_store(RequestId(1)),
        worker(2, rounds).with_store(RequestId(2)),
    ));
    assert_eq!((a, b), (rounds + 1, rounds + 1));
    assert_eq!(get::<RequestId>(), None);
}

#[test]
fn many_joined_futures_with_uneven_lengths_stay_isolated() {
    let tasks = scaled(50) as u64;
    let all =
        join_all((0..tasks).map(|i| worker(i, (i as usize * 7) % 13 + 1).with_store(RequestId(i))));
    // An outer store of the same type is shadowed by each task's own.
    let checks: usize = block_on(all.with_store(RequestId(u64::MAX)))
        .into_iter()
        .sum();
    assert!(checks >= tasks as usize * 2);
}

#[test]
fn joined_futures_without_their_own_store_see_the_common_parent() {
    let (a, b) = block_on(
        join(
            async {
                yield_now().await;
                get::<RequestId>()
            },
            worker(2, 3).with_store(RequestId(2)),
        )
        .with_store(RequestId(1)),
    );
    assert_eq!((a, b), (Some(RequestId(1)), 4));
}
