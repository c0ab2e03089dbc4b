//! The `tracing` feature (issue 10): a snapshot carries the span that was
//! current where it was captured, so every adapter starts new work inside
//! the spawner's span, as `.in_current_span()` would by hand.
//!
//! A real subscriber (tracing-subscriber's `Registry`) is installed as the
//! global default once, so that spans are tracked on every thread.

use std::sync::Once;

use async_local_storage::{get, scope, thread, Snapshot, WithStore};
use tracing::{info_span, Span};

fn subscriber() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry())
            .expect("no other global subscriber in this binary");
    });
}

/// The id of the span current here.
fn current() -> Option<tracing::Id> {
    Span::current().id()
}

#[test]
fn a_snapshot_enters_the_span_current_at_capture() {
    subscriber();
    let span = info_span!("request", id = 7);
    let snapshot = span.in_scope(|| scope(7u32, Snapshot::capture));
    assert_eq!(current(), None);
    let seen = snapshot.run(|| (current(), get::<u32>()));
    assert_eq!(seen, (span.id(), Some(7)));
    assert_eq!(current(), None, "the span is left with the snapshot");
    // Captured outside any span: restoring enters no span (tracing has no
    // way to leave every span), so the restoring side's stays current.
    let empty = Snapshot::capture();
    let other = info_span!("other");
    assert_eq!(other.in_scope(|| empty.run(current)), other.id());
}

#[test]
fn spawns_through_the_tokio_adapter_start_in_the_spawners_span() {
    subscriber();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let span = info_span!("handler", request = 42);
    let expected = span.id();
    let seen = || (current(), get::<u8>());
    let (task, blocking, plain) = rt.block_on(
        async move {
            let task = async_local_storage::adapters::tokio::spawn(async move { seen() });
            let blocking = async_local_storage::adapters::tokio::spawn_blocking(seen);
            let plain = tokio::spawn(async move { seen() });
            (
                task.await.unwrap(),
                blocking.await.unwrap(),
                plain.await.unwrap(),
            )
        }
        .with_store(1u8)
        .instrument_in(span),
    );
    assert_eq!(task, (expected.clone(), Some(1)), "adapter spawn");
    assert_eq!(blocking, (expected, Some(1)), "adapter spawn_blocking");
    assert_eq!(plain, (None, None), "tokio's own spawn starts outside both");
}

/// Outside any span, a task carries its one store in two words and no
/// span (see `carried`): it starts in no span, with the store, and a span
/// it enters itself is left when it ends.
#[test]
fn spawns_outside_any_span_start_in_none_with_the_stores() {
    subscriber();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // What a task sees first, then inside a span of its own.
    let task = |inner: Span| async move {
        let first = (current(), get::<u8>(), get::<String>());
        let later = async { (current(), get::<u8>(), get::<String>()) }
            .instrument_in(inner)
            .await;
        (first, later)
    };
    let (inner, inner_two) = (info_span!("inside the task"), info_span!("inside"));
    let (inner_id, inner_two_id) = (inner.id(), inner_two.id());
    let (one, two) = rt.block_on(
        async move {
            let spawn = async_local_storage::adapters::tokio::spawn;
            // One word-sized store, then two stores (the full snapshot).
            let one = spawn(task(inner)).await.unwrap();
            let two = async { spawn(task(inner_two)).await.unwrap() }
                .with_store(String::from("job"))
                .await;
            (one, two)
        }
        .with_store(2u8),
    );
    assert_eq!(one.0, (None, Some(2), None));
    assert_eq!(one.1, (inner_id, Some(2), None));
    let job = Some(String::from("job"));
    assert_eq!(two.0, (None, Some(2), job.clone()));
    assert_eq!(two.1, (inner_two_id, Some(2), job));
    assert_eq!(current(), None);
}

#[test]
fn threads_started_through_the_adapter_start_in_the_spawners_span() {
    subscriber();
    let span = info_span!("job");
    let handle = span.in_scope(|| thread::spawn(current));
    assert_eq!(handle.join().unwrap(), span.id());
    let plain = span.in_scope(|| std::thread::spawn(current));
    assert_eq!(plain.join().unwrap(), None);
}

#[test]
fn a_with_snapshot_future_is_polled_in_the_span_at_every_poll() {
    subscriber();
    let span = info_span!("carried");
    // Three stores too: with a span they take the out-of-line path, and are
    // linked once, at the first poll.
    let snapshot = span.in_scope(|| scope(1u64, || scope(2u32, || scope(3u16, Snapshot::capture))));
    let stores = || (get::<u64>(), get::<u32>(), get::<u16>());
    let fut = async move {
        let first = (current(), stores());
        tokio::task::yield_now().await;
        let second = (current(), stores());
        tokio::task::yield_now().await;
        (first, second, (current(), stores()))
    }
    .with_snapshot(snapshot);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let seen = (span.id(), (Some(1), Some(2), Some(3)));
    assert_eq!(rt.block_on(fut), (seen.clone(), seen.clone(), seen));
}

/// `tracing::Instrument`, spelled out so the test needs no extra import.
trait InstrumentIn: std::future::Future + Sized {
    fn instrument_in(self, span: Span) -> tracing::instrument::Instrumented<Self> {
        tracing::Instrument::instrument(self, span)
    }
}
impl<F: std::future::Future> InstrumentIn for F {}
