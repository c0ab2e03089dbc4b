//! [`Scoped`], the future/stream wrapper, and [`WithStore`], which makes one.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::{FusedFuture, FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::frame::{Framed, Hidden, Isolated, Node};
use crate::markers::{Carryable, ScopedFuture, ScopedStream};

pin_project! {
    /// A future or stream that runs with a store installed: the value of
    /// type `T` is visible to [`get`](crate::get) and [`with`](crate::with)
    /// during every poll of `F`, and while `F` is dropped.
    ///
    /// Made by [`WithStore::with_store`] and its siblings. It is a
    /// [`Future`] when `F` is one and a [`Stream`] when `F` is one.
    ///
    /// Polling costs a few thread-local writes more than polling `F`:
    /// the value is never moved or copied, whatever its size, and nothing is
    /// allocated. `size_of::<Scoped<F, T>>()` is the size of `F` plus `T`
    /// plus a two-word header (a link and a pointer to per-type static data:
    /// 16 bytes on 64-bit targets), rounded up to the alignment: the header,
    /// the value and then the future are laid out in that order, so a small
    /// future fills the padding after a small value (`Scoped<Ready<u8>, u8>`
    /// is 24 bytes). Only a value aligned to more than 16 bytes adds
    /// padding after the header.
    ///
    /// `Scoped<F, T>` is `Send` exactly when `F` and `T` are, `Sync` when
    /// both are, and `Unpin` when both are. A [`Snapshot`](crate::Snapshot)
    /// is not `Unpin`, so neither is `Scoped<F, Snapshot>`: once pinned, it
    /// never moves, and a snapshot of several stores links them to each
    /// other once, at the first poll, instead of at every poll. Pin it as
    /// any `async` block is pinned (`.await`, a spawn, `Box::pin`,
    /// `std::pin::pin!`).
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, Scoped, WithStore};
    ///
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct RequestId(u64);
    ///
    /// let fut: Scoped<_, RequestId> = async { get::<RequestId>() }.with_store(RequestId(7));
    /// assert_eq!(fut.value(), &RequestId(7));
    /// assert_eq!(futures::executor::block_on(fut), Some(RequestId(7)));
    /// ```
    #[must_use = "futures and streams do nothing unless you `.await` or poll them"]
    pub struct Scoped<F, T> {
        #[pin]
        framed: Framed<F, T>,
    }
}

impl<F, T> Scoped<F, T> {
    fn new(inner: F, node: Node<T>) -> Self {
        Scoped {
            framed: Framed::new(inner, node),
        }
    }

    /// Borrows the wrapped future or stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::WithStore;
    ///
    /// let fut = core::future::ready(5).with_store(1u8);
    /// let _inner: &core::future::Ready<i32> = fut.inner();
    /// ```
    pub fn inner(&self) -> &F {
        self.framed.inner()
    }

    /// Mutably borrows the wrapped future or stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::WithStore;
    ///
    /// let mut fut = core::future::ready(5).with_store(1u8);
    /// let _inner: &mut core::future::Ready<i32> = fut.inner_mut();
    /// ```
    pub fn inner_mut(&mut self) -> &mut F {
        self.framed.inner_mut()
    }

    /// Borrows the wrapped future or stream through a pin.
    ///
    /// The store is *not* installed for what you do with it: poll the
    /// `Scoped` itself for that.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::WithStore;
    ///
    /// let mut fut = Box::pin(async { 5 }.with_store(1u8));
    /// let _inner = fut.as_mut().inner_pin_mut();
    /// ```
    pub fn inner_pin_mut(self: Pin<&mut Self>) -> Pin<&mut F> {
        self.project().framed.inner_pin_mut()
    }

    /// Unwraps the future or stream, dropping the stored value.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::WithStore;
    ///
    /// let fut = core::future::ready(5).with_store(1u8);
    /// let plain: core::future::Ready<i32> = fut.into_inner();
    /// # drop(plain);
    /// ```
    pub fn into_inner(self) -> F {
        self.into_parts().0
    }

    /// Unwraps the future or stream and gives the stored value back.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::WithStore;
    ///
    /// let fut = core::future::ready(5).with_store(String::from("job-1"));
    /// let (_fut, value) = fut.into_parts();
    /// assert_eq!(value, "job-1");
    /// ```
    pub fn into_parts(self) -> (F, T) {
        self.framed.into_parts()
    }

    /// The stored value.
    ///
    /// There is no `value_mut`: to change what the inner code sees, give
    /// the store interior mutability (`Cell`, `RefCell`, `Mutex`, atomics).
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::WithStore;
    ///
    /// let fut = async {}.with_store(42u32);
    /// assert_eq!(*fut.value(), 42);
    /// ```
    pub fn value(&self) -> &T {
        self.framed.value()
    }
}

impl<F: ScopedFuture, T: 'static> Future for Scoped<F, T> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().framed.enter(|inner| inner.poll(cx))
    }
}

impl<F: FusedFuture, T: 'static> FusedFuture for Scoped<F, T> {
    fn is_terminated(&self) -> bool {
        self.inner().is_terminated()
    }
}

impl<F: ScopedStream, T: 'static> Stream for Scoped<F, T> {
    type Item = F::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Item>> {
        self.project().framed.enter(|inner| inner.poll_next(cx))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner().size_hint()
    }
}

impl<F: FusedStream, T: 'static> FusedStream for Scoped<F, T> {
    fn is_terminated(&self) -> bool {
        self.inner().is_terminated()
    }
}

impl<F, T: fmt::Debug> fmt::Debug for Scoped<F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoped")
            .field("inner", &core::any::type_name::<F>())
            .field("value", self.value())
            .finish()
    }
}

/// Attaches stores to futures and streams.
///
/// Implemented for every type, like tracing's `Instrument`: the methods only
/// make sense on futures and streams, and [`Scoped`] is a `Future` or a
/// `Stream` exactly when the wrapped type is.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, WithStore};
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct RequestId(u64);
///
/// async fn handle() -> Option<RequestId> {
///     step().await
/// }
/// async fn step() -> Option<RequestId> {
///     get::<RequestId>()
/// }
///
/// let seen = futures::executor::block_on(handle().with_store(RequestId(7)));
/// assert_eq!(seen, Some(RequestId(7)));
/// ```
pub trait WithStore: Sized {
    /// Installs `value` while `self` is polled or dropped (Node's
    /// `asyncLocalStorage.run(value, ...)`).
    ///
    /// An inner store of the same type shadows an outer one for the inner
    /// polls only; stores of other types stay visible through it.
    ///
    /// The value is carried by [`Snapshot::capture`]
    /// into spawned tasks and threads, which is why it must be `Clone + Send`.
    /// For a value that is not, use [`with_local_store`](Self::with_local_store).
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, WithStore};
    ///
    /// let fut = async {
    ///     let outer = get::<u32>();
    ///     let inner = async { get::<u32>() }.with_store(2u32).await;
    ///     (outer, inner, get::<u32>())
    /// };
    /// let seen = futures::executor::block_on(fut.with_store(1u32));
    /// assert_eq!(seen, (Some(1), Some(2), Some(1)));
    /// ```
    ///
    /// Mutable state goes through interior mutability, as Node users mutate
    /// their store object:
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use async_local_storage::{with, WithStore};
    ///
    /// #[derive(Clone, Default)]
    /// struct Log(Arc<Mutex<Vec<String>>>);
    ///
    /// fn log(line: &str) {
    ///     with(|log: Option<&Log>| {
    ///         if let Some(log) = log {
    ///             log.0.lock().unwrap().push(line.to_owned());
    ///         }
    ///     })
    /// }
    ///
    /// let lines = Log::default();
    /// futures::executor::block_on(async { log("a"); log("b") }.with_store(lines.clone()));
    /// assert_eq!(*lines.0.lock().unwrap(), ["a", "b"]);
    /// ```
    ///
    #[cfg_attr(
        feature = "alloc",
        doc = "[`Snapshot::capture`]: crate::Snapshot::capture"
    )]
    #[cfg_attr(
        not(feature = "alloc"),
        doc = "[`Snapshot::capture`]: https://docs.rs/async-local-storage/latest/async_local_storage/struct.Snapshot.html#method.capture"
    )]
    fn with_store<T: Clone + Carryable + 'static>(self, value: T) -> Scoped<Self, T> {
        Scoped::new(self, Node::store(value))
    }

    /// Installs `value` like [`with_store`](Self::with_store), for any
    /// `'static` type, but keeps it out of snapshots: spawned tasks and
    /// threads see neither it nor any outer store of the same type.
    ///
    /// Use it for values that are not `Clone` or not `Send` (`Rc`,
    /// `RefCell<NonClone>`, an atomic counter), or that must stay with
    /// this future.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use async_local_storage::{with, WithStore};
    ///
    /// let polls = Rc::new(Cell::new(0u32));
    /// let fut = async {
    ///     with(|count: Option<&Rc<Cell<u32>>>| count.unwrap().set(1));
    /// };
    /// futures::executor::block_on(fut.with_local_store(polls.clone()));
    /// assert_eq!(polls.get(), 1);
    /// ```
    fn with_local_store<T: 'static>(self, value: T) -> Scoped<Self, T> {
        Scoped::new(self, Node::local(value))
    }

    /// Hides any store of type `T` from `self`, and nothing else (Node's
    /// `asyncLocalStorage.exit(...)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, WithStore};
    ///
    /// let fut = async {
    ///     let hidden = async { (get::<u32>(), get::<&str>()) }.without_store::<u32>().await;
    ///     (hidden, get::<u32>())
    /// };
    /// let seen = futures::executor::block_on(fut.with_store(1u32).with_store("other"));
    /// assert_eq!(seen, ((None, Some("other")), Some(1)));
    /// ```
    fn without_store<T: 'static>(self) -> Scoped<Self, Hidden<T>> {
        Scoped::new(self, Node::hidden())
    }

    /// Runs `self` with no store from outside visible; stores installed
    /// inside it are visible as usual. The async form of
    /// [`isolate`](crate::isolate); allocation-free.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, WithStore};
    ///
    /// let fut = async { get::<u32>() }.isolated().with_store(1u32);
    /// assert_eq!(futures::executor::block_on(fut), None);
    /// ```
    fn isolated(self) -> Scoped<Self, Isolated> {
        Scoped::new(self, Node::isolated())
    }

    /// Runs `self` with exactly the stores in `snapshot` visible, whatever
    /// is visible where it is polled: what was visible where the snapshot
    /// was captured, shadowing and hiding included.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, Snapshot, WithStore};
    ///
    /// let snapshot = futures::executor::block_on(
    ///     async { Snapshot::capture() }.with_store(7u64),
    /// );
    /// // Later, elsewhere: another task, another thread.
    /// let seen = futures::executor::block_on(async { get::<u64>() }.with_snapshot(snapshot));
    /// assert_eq!(seen, Some(7));
    /// ```
    #[cfg(feature = "alloc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
    fn with_snapshot(self, snapshot: crate::Snapshot) -> Scoped<Self, crate::Snapshot> {
        Scoped {
            framed: Framed::snapshot(self, snapshot),
        }
    }
}

impl<F> WithStore for F {}
