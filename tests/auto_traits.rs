//! Semantics 7: `Send`/`Sync`/`Unpin` follow the parts; size; moving between
//! polls (and between threads) is fine.

mod common;

use std::cell::Cell;
use std::future::{ready, Future, Ready};
use std::marker::PhantomPinned;
use std::mem::size_of;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

#[cfg(feature = "alloc")]
use async_local_storage::Snapshot;
use async_local_storage::{get, Hidden, Isolated, Scoped, WithStore};
use common::{poll_once, yield_now, RequestId};

fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}
fn assert_unpin<T: Unpin>() {}

/// Compiles only if `$ty` does NOT implement `$tr`: with the impl, the `_`
/// would be ambiguous (the trick behind `static_assertions::assert_not_impl_any`).
macro_rules! assert_not_impl {
    ($ty:ty: $tr:path) => {{
        trait AmbiguousIfImpl<A> {
            fn some_item() {}
        }
        impl<T: ?Sized> AmbiguousIfImpl<()> for T {}
        impl<T: ?Sized + $tr> AmbiguousIfImpl<u8> for T {}
        let _ = <$ty as AmbiguousIfImpl<_>>::some_item;
    }};
}

struct NotUnpinFuture(PhantomPinned);
impl Future for NotUnpinFuture {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }
}

#[test]
fn send_exactly_when_future_and_value_are_send() {
    assert_send::<Scoped<Ready<()>, u64>>();
    assert_send::<Scoped<Ready<()>, Hidden<Rc<u8>>>>();
    #[cfg(feature = "alloc")]
    assert_send::<Scoped<Ready<()>, Snapshot>>();
    assert_not_impl!(Scoped<Ready<()>, Rc<u8>>: Send);
    assert_not_impl!(Scoped<Ready<Rc<u8>>, u8>: Send);
    assert_not_impl!(Scoped<Ready<Rc<u8>>, Rc<u8>>: Send);
}

#[test]
fn sync_when_future_and_value_are_sync() {
    assert_sync::<Scoped<Ready<()>, u64>>();
    assert_not_impl!(Scoped<Ready<()>, Cell<u8>>: Sync);
    assert_not_impl!(Scoped<Ready<Cell<u8>>, u8>: Sync);
    #[cfg(feature = "alloc")]
    assert_not_impl!(Snapshot: Sync);
}

#[test]
fn unpin_when_both_are_unpin() {
    assert_unpin::<Scoped<Ready<()>, u64>>();
    assert_not_impl!(Scoped<NotUnpinFuture, u64>: Unpin);
    assert_not_impl!(Scoped<Ready<()>, PhantomPinned>: Unpin);
    // A snapshot is `!Unpin`: a pinned `with_snapshot` future links its
    // stores once, where it stays.
    #[cfg(feature = "alloc")]
    {
        assert_not_impl!(Snapshot: Unpin);
        assert_not_impl!(Scoped<Ready<()>, Snapshot>: Unpin);
    }
}

fn overhead<F, T>() -> usize {
    size_of::<Scoped<F, T>>() - size_of::<F>() - size_of::<T>()
}

#[test]
fn size_is_future_plus_value_plus_a_two_word_header() {
    // The header: a link and a pointer to per-type static data (16 bytes on
    // 64-bit targets).
    let header = 2 * size_of::<usize>();
    if cfg!(target_pointer_width = "64") {
        assert_eq!(header, 16);
    }
    // Word-aligned parts: exactly the header, whatever the value's size.
    assert_eq!(overhead::<Ready<u64>, u64>(), header);
    assert_eq!(overhead::<Ready<u64>, [u64; 512]>(), header);
    assert_eq!(overhead::<Ready<[u64; 8]>, String>(), header);
    // Otherwise only alignment padding is added, once, at the end: the
    // header, the value, then the future, which fills the padding after a
    // small value.
    let round = |n: usize| n.div_ceil(size_of::<usize>()) * size_of::<usize>();
    assert_eq!(
        size_of::<Scoped<Ready<()>, [u8; 4096]>>(),
        round(header + 4096 + 1)
    );
    assert_eq!(size_of::<Scoped<Ready<u8>, u8>>(), round(header + 1 + 2));
    if cfg!(target_pointer_width = "64") {
        assert_eq!(size_of::<Scoped<Ready<u8>, u8>>(), 24);
    }
    // The issue-12 bound, `F + T + header` rounded up to the alignment,
    // across sub-word, word and over-aligned parts.
    fn within_bound<F, T>() {
        let align = std::mem::align_of::<Scoped<F, T>>();
        let bound =
            (size_of::<F>() + size_of::<T>() + 2 * size_of::<usize>()).div_ceil(align) * align;
        assert!(
            size_of::<Scoped<F, T>>() <= bound,
            "Scoped<{}, {}>: {} > {bound}",
            std::any::type_name::<F>(),
            std::any::type_name::<T>(),
            size_of::<Scoped<F, T>>()
        );
    }
    #[repr(align(16))]
    struct Align16(#[allow(dead_code)] [u8; 16]);
    within_bound::<Ready<u8>, u8>();
    within_bound::<Ready<u16>, [u8; 3]>();
    within_bound::<Ready<u8>, u64>();
    within_bound::<Ready<u64>, u8>();
    within_bound::<Ready<u64>, [u8; 4096]>();
    within_bound::<Ready<Align16>, u8>();
    within_bound::<Ready<u8>, Align16>();
    within_bound::<Ready<()>, Hidden<u8>>();
    within_bound::<Ready<u8>, Isolated>();
    #[cfg(feature = "alloc")]
    within_bound::<Ready<u8>, Snapshot>();
    // A hiding frame and an isolating frame carry no value.
    assert_eq!(
        size_of::<Scoped<Ready<u64>, Hidden<[u8; 4096]>>>(),
        size_of::<Ready<u64>>() + header
    );
    assert_eq!(
        size_of::<Scoped<Ready<u64>, Isolated>>(),
        size_of::<Ready<u64>>() + header
    );
    // A snapshot frame: the snapshot, which holds its stores inline, plus
    // the same header.
    #[cfg(feature = "alloc")]
    assert_eq!(overhead::<Ready<u64>, Snapshot>(), header);
    // The snapshot itself: 96 bytes of stores inline and one word of counts
    // (with `tracing`, also the span).
    #[cfg(all(
        feature = "alloc",
        not(feature = "tracing"),
        target_pointer_width = "64"
    ))]
    assert_eq!(size_of::<Snapshot>(), 104);
    // With `tracing`, the span too.
    #[cfg(all(feature = "tracing", target_pointer_width = "64"))]
    assert_eq!(
        size_of::<Snapshot>(),
        104 + size_of::<tracing::Span>(),
        "a snapshot is its stores plus one span"
    );
}

/// An `Unpin` future that is Pending twice and records what each poll sees.
struct Probe(Vec<Option<RequestId>>);
impl Future for Probe {
    type Output = Vec<Option<RequestId>>;
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.push(get::<RequestId>());
        if self.0.len() < 3 {
            Poll::Pending
        } else {
            Poll::Ready(std::mem::take(&mut self.0))
        }
    }
}

#[test]
fn moving_between_polls_is_fine() {
    let mut first = Probe(Vec::new()).with_store(RequestId(1));
    assert!(Pin::new(&mut first).poll(&mut noop_cx()).is_pending());
    // `Scoped<Probe, _>` is Unpin: move it to a new address between polls.
    let mut moved = vec![first];
    assert!(Pin::new(&mut moved[0]).poll(&mut noop_cx()).is_pending());
    let mut last = moved.pop().unwrap();
    let seen = Pin::new(&mut last).poll(&mut noop_cx());
    assert_eq!(seen, Poll::Ready(vec![Some(RequestId(1)); 3]));
    assert_eq!(get::<RequestId>(), None);
}

#[test]
fn moving_to_another_thread_between_polls() {
    let mut fut = Box::pin(
        async {
            let a = get::<RequestId>();
            yield_now().await;
            (a, get::<RequestId>())
        }
        .with_store(RequestId(11)),
    );
    assert!(poll_once(fut.as_mut()).is_pending());
    let out = std::thread::spawn(move || {
        let out = poll_once(fut.as_mut());
        assert_eq!(get::<RequestId>(), None);
        out
    })
    .join()
    .unwrap();
    assert_eq!(out, Poll::Ready((Some(RequestId(11)), Some(RequestId(11)))));
    assert_eq!(get::<RequestId>(), None);
}

fn noop_cx() -> Context<'static> {
    Context::from_waker(futures::task::noop_waker_ref())
}

#[test]
fn debug_shows_the_value() {
    let fut = ready(1).with_store(RequestId(3));
    let text = format!("{fut:?}");
    assert!(text.contains("RequestId(3)"), "{text}");
}
