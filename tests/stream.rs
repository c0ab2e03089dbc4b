//! `Scoped` is a `Stream` when the inner value is one.

mod common;

use async_local_storage::{get, WithStore};
use common::{block_on, RequestId};
use futures::stream::{self, FusedStream, Stream, StreamExt};

#[test]
fn every_item_is_produced_with_the_store_visible() {
    let items = stream::iter(0..4)
        .then(|i| async move {
            common::yield_now().await;
            (i, get::<RequestId>())
        })
        .with_store(RequestId(5));
    let all: Vec<_> = block_on(items.collect());
    assert_eq!(
        all,
        (0..4).map(|i| (i, Some(RequestId(5)))).collect::<Vec<_>>()
    );
}

#[test]
fn nothing_is_visible_between_items() {
    block_on(async {
        let mut items = Box::pin(
            stream::repeat_with(get::<RequestId>)
                .take(3)
                .with_store(RequestId(6)),
        );
        while let Some(seen) = items.next().await {
            assert_eq!(seen, Some(RequestId(6)));
            assert_eq!(get::<RequestId>(), None);
        }
    });
}

#[test]
fn size_hint_and_fusing_are_forwarded() {
    let items = stream::iter([1, 2, 3]).fuse().with_store(RequestId(1));
    assert_eq!(items.size_hint(), (3, Some(3)));
    assert!(!items.is_terminated());
    let mut items = Box::pin(items);
    let all: Vec<_> = block_on((&mut items).collect());
    assert_eq!(all, [1, 2, 3]);
    assert!(items.is_terminated());
}

#[test]
fn streams_can_hide_stores_too() {
    let items = stream::iter(0..2)
        .map(|_| get::<RequestId>())
        .without_store::<RequestId>()
        .with_store(RequestId(9));
    assert_eq!(block_on(items.collect::<Vec<_>>()), [None, None]);
}
