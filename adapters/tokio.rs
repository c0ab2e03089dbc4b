//! tokio: spawn tasks and blocking work that start with the current stores.
//!
//! Enable the `tokio` feature and call these instead of tokio's own:
//!
//! | tokio | carries the stores |
//! |---|---|
//! | [`tokio::spawn`](::tokio::task::spawn) | [`spawn`] |
//! | [`tokio::task::spawn_local`] | [`spawn_local`] |
//! | [`tokio::task::spawn_blocking`] | [`spawn_blocking`] |
//! | [`Handle::spawn`], [`Runtime::spawn`] | [`HandleExt::spawn_with_stores`] |
//! | [`Handle::spawn_blocking`], [`Runtime::spawn_blocking`] | [`HandleExt::spawn_blocking_with_stores`] |
//! | [`JoinSet::spawn`], [`spawn_local`](JoinSet::spawn_local), [`spawn_blocking`](JoinSet::spawn_blocking) | [`JoinSetExt`]`::{spawn_with_stores, spawn_local_with_stores, spawn_blocking_with_stores}` |
//! | [`LocalSet::spawn_local`] | [`LocalSetExt::spawn_local_with_stores`] |
//!
//! Each one captures a [`Snapshot`] of the stores visible where it is
//! called (one clone of each) and runs the new task or closure inside it.
//! They take and return exactly what tokio's functions do. For the other
//! ways to start work (`JoinSet::spawn_on`, `task::Builder`, ...) wrap the
//! future yourself: `fut.with_snapshot(Snapshot::capture())`.
//!
//! And to drive a runtime from inside a scope (see
//! [below](#driving-a-runtime-inside-a-scope)), call these instead of
//! tokio's own:
//!
//! | tokio | the driven future keeps the stores, the other tasks see none |
//! |---|---|
//! | [`Runtime::block_on`], [`Handle::block_on`] | [`HandleExt::block_on_with_stores`] |
//! | [`LocalSet::block_on`] | [`LocalSetExt::block_on_with_stores`] |
//! | [`LocalSet::run_until`] | [`LocalSetExt::run_until_with_stores`] |
//!
//! # Examples
//!
//! ```
//! use async_local_storage::{get, WithStore};
//!
//! #[derive(Clone, Debug, PartialEq)]
//! struct RequestId(u64);
//!
//! let rt = tokio::runtime::Runtime::new().unwrap();
//! rt.block_on(
//!     async {
//!         let carried = async_local_storage::adapters::tokio::spawn(async { get::<RequestId>() });
//!         let blocking = async_local_storage::adapters::tokio::spawn_blocking(get::<RequestId>);
//!         let plain = tokio::spawn(async { get::<RequestId>() });
//!
//!         assert_eq!(carried.await.unwrap(), Some(RequestId(7)));
//!         assert_eq!(blocking.await.unwrap(), Some(RequestId(7)));
//!         assert_eq!(plain.await.unwrap(), None); // tokio's own spawn starts empty
//!     }
//!     .with_store(RequestId(7)),
//! );
//! ```
//!
//! # What is carried, and what is not
//!
//! * A task started by tokio's own `spawn` sees no store, whatever was
//!   visible where it was spawned, as long as the runtime that polls it is
//!   not driven inside a scope: tokio polls it on a worker thread, or in its
//!   `block_on` loop, outside the spawner's poll. A runtime driven inside a
//!   scope lends that scope's stores to every task it polls meanwhile (see
//!   [below](#driving-a-runtime-inside-a-scope)).
//! * Stores installed with [`with_store`](crate::WithStore::with_store) or
//!   [`scope`](crate::scope) are cloned into the new work at the moment it
//!   is spawned; later changes on either side are not shared (put an `Arc`
//!   in the store to share state).
//! * Stores installed with
//!   [`with_local_store`](crate::WithStore::with_local_store) or
//!   [`scope_local`](crate::scope_local) are not carried: the new work sees
//!   no store of that type.
//! * A future that already carries its own store
//!   (`tokio::spawn(fut.with_store(v))`) needs no adapter: that store is
//!   visible at every poll of `fut`, on any worker, and while tokio drops it
//!   (when the task is aborted or the runtime shuts down).
//!
//! # `block_in_place`
//!
//! [`tokio::task::block_in_place`](https://docs.rs/tokio/1/tokio/task/fn.block_in_place.html)
//! (multi-thread runtime) runs its closure on the current thread, inside the
//! current poll, so the stores stay visible with no adapter:
//!
//! ```
//! use async_local_storage::{get, WithStore};
//!
//! let rt = tokio::runtime::Runtime::new().unwrap(); // block_in_place needs the multi-thread runtime
//! let task = async { tokio::task::block_in_place(get::<u32>) }.with_store(3u32);
//! assert_eq!(rt.block_on(rt.spawn(task)).unwrap(), Some(3));
//! ```
//!
//! # Driving a runtime inside a scope
//!
//! [`Runtime::block_on`] polls its future on the calling thread, so the
//! stores visible where it is called are visible to that future. But a
//! current-thread runtime also polls *all its other tasks* inside that call,
//! and a [`LocalSet`] polls its local tasks inside
//! [`block_on`](LocalSet::block_on), [`run_until`](LocalSet::run_until),
//! or while it is itself awaited. Called inside a [`scope`](crate::scope) (or
//! awaited inside a future that has a store), the driver lends those stores
//! to every task it polls meanwhile, as to any code called there: a task
//! started with tokio's own `spawn`, and one that other code spawned long
//! before, read that caller's store.
//!
//! ```
//! use async_local_storage::{get, scope};
//!
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let background = rt.spawn(async { get::<&'static str>() }); // spawned earlier, elsewhere
//! let seen = scope("user-1", || rt.block_on(background)).unwrap();
//! assert_eq!(seen, Some("user-1")); // the hazard: another task saw this caller's store
//! ```
//!
//! [`HandleExt::block_on_with_stores`] and
//! [`LocalSetExt`]`::{block_on_with_stores, run_until_with_stores}` drive
//! the future with the caller's stores (captured when they are called) and
//! every other task with none:
//!
//! ```
//! use async_local_storage::{get, scope, adapters::tokio::HandleExt};
//!
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let background = rt.spawn(async { get::<&'static str>() });
//! let (seen, own) = scope("user-1", || {
//!     rt.block_on_with_stores(async { (background.await.unwrap(), get::<&'static str>()) })
//! });
//! assert_eq!(seen, None); // the other task sees no store...
//! assert_eq!(own, Some("user-1")); // ...the driven future keeps the caller's
//! ```
//!
//! A store on the driven future itself (`rt.block_on(fut.with_store(v))`)
//! is safe as it is: the runtime polls its other tasks between the polls of
//! `fut`, outside its store. For a driver this module does not wrap, do by
//! hand what these methods do: `local.isolated().await` for a `LocalSet`
//! awaited inside a scoped poll, and for any `block_on`-like call
//! `let stores = Snapshot::capture();` then
//! `isolate(|| driver(fut.with_snapshot(stores)))` (with [`isolate`] and
//! [`with_snapshot`](crate::WithStore::with_snapshot)).
//!
//! Dropping a runtime or a [`LocalSet`] (or shutting a runtime down) drops
//! the tasks left in it, on the calling thread: inside a scope, the
//! destructors of tasks started with tokio's own spawns see the caller's
//! stores (tasks spawned through this module drop with their own). Drop it
//! outside every scope, or inside [`isolate`]:
//!
//! ```
//! use async_local_storage::{isolate, scope};
//!
//! scope("user-1", || {
//!     let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//!     // ... rt.block_on_with_stores(..), tokio::spawn(..) ...
//!     isolate(|| drop(rt)); // the tasks left in it drop with no store visible
//! });
//! ```
//!
//! # `tokio::task_local!`
//!
//! tokio's [`task_local!`](::tokio::task_local) is a separate mechanism with
//! its own keys: it does not see these stores, these functions do not carry
//! its values, and tokio's own `spawn` does not carry them either.
//!
//! [`Handle::spawn`]: ::tokio::runtime::Handle::spawn
//! [`Handle::spawn_blocking`]: ::tokio::runtime::Handle::spawn_blocking
//! [`Runtime::spawn`]: ::tokio::runtime::Runtime::spawn
//! [`Runtime::spawn_blocking`]: ::tokio::runtime::Runtime::spawn_blocking
//! [`Runtime::block_on`]: ::tokio::runtime::Runtime::block_on
//! [`Handle::block_on`]: ::tokio::runtime::Handle::block_on
//! [`LocalSet::block_on`]: ::tokio::task::LocalSet::block_on
//! [`LocalSet::run_until`]: ::tokio::task::LocalSet::run_until
//! [`JoinSet::spawn`]: ::tokio::task::JoinSet::spawn
//! [`LocalSet::spawn_local`]: ::tokio::task::LocalSet::spawn_local

use core::future::Future;

use ::tokio::runtime::{Handle, Runtime};
use ::tokio::task::{AbortHandle, JoinHandle, JoinSet, LocalSet};

use crate::{isolate, Snapshot, WithStore};

/// Like [`tokio::spawn`](::tokio::task::spawn), with the current stores
/// visible at every poll of the new task (and while it is dropped).
///
/// # Panics
///
/// As tokio's: when called outside a tokio runtime.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope};
///
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let _guard = rt.enter();
/// let handle = scope(String::from("job-1"), || {
///     async_local_storage::adapters::tokio::spawn(async { get::<String>() })
/// });
/// assert_eq!(rt.block_on(handle).unwrap().as_deref(), Some("job-1"));
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    crate::carried::spawn_carried!(future, |task| ::tokio::task::spawn(task))
}

/// Like [`tokio::task::spawn_local`], with the
/// current stores visible at every poll of the new task.
///
/// # Panics
///
/// As tokio's: when called outside a [`LocalSet`].
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, WithStore};
///
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let local = tokio::task::LocalSet::new();
/// let seen = local.block_on(&rt, async {
///     let handle = async_local_storage::adapters::tokio::spawn_local(async { get::<u8>() });
///     handle.await.unwrap()
/// }.with_store(4u8));
/// assert_eq!(seen, Some(4));
/// ```
#[track_caller]
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    crate::carried::spawn_carried!(future, |task| ::tokio::task::spawn_local(task))
}

/// Like [`tokio::task::spawn_blocking`], with
/// the current stores visible while `f` runs on the blocking thread.
///
/// # Panics
///
/// As tokio's: when called outside a tokio runtime.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope};
///
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let _guard = rt.enter();
/// let handle = scope(9u64, || async_local_storage::adapters::tokio::spawn_blocking(get::<u64>));
/// assert_eq!(rt.block_on(handle).unwrap(), Some(9));
/// ```
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    ::tokio::task::spawn_blocking(Snapshot::bind(f))
}

mod sealed {
    // Reachable only through the public extension traits, which it seals.
    #[allow(unreachable_pub)]
    pub trait Sealed {}

    impl Sealed for ::tokio::runtime::Handle {}
    impl Sealed for ::tokio::runtime::Runtime {}
    impl Sealed for ::tokio::task::LocalSet {}
    impl<T> Sealed for ::tokio::task::JoinSet<T> {}
}

/// Spawning through a [`Handle`] or a [`Runtime`] with the current stores,
/// and driving one without lending them to its other tasks.
///
/// Sealed: implemented for `Handle` and `Runtime` only.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope, adapters::tokio::HandleExt};
///
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let handle = rt.handle().clone();
/// let (task, job) = scope(5u16, || {
///     (handle.spawn_with_stores(async { get::<u16>() }), rt.spawn_blocking_with_stores(get::<u16>))
/// });
/// assert_eq!(rt.block_on(task).unwrap(), Some(5));
/// assert_eq!(rt.block_on(job).unwrap(), Some(5));
/// ```
pub trait HandleExt: sealed::Sealed {
    /// Like [`Handle::spawn`], with the current stores visible at every
    /// poll of the new task.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, adapters::tokio::HandleExt};
    ///
    /// let rt = tokio::runtime::Runtime::new().unwrap();
    /// let task = scope('a', || rt.handle().spawn_with_stores(async { get::<char>() }));
    /// assert_eq!(rt.block_on(task).unwrap(), Some('a'));
    /// ```
    #[track_caller]
    fn spawn_with_stores<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// Like [`Handle::spawn_blocking`], with the current stores visible
    /// while `f` runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, adapters::tokio::HandleExt};
    ///
    /// let rt = tokio::runtime::Runtime::new().unwrap();
    /// let job = scope(1i8, || rt.spawn_blocking_with_stores(get::<i8>));
    /// assert_eq!(rt.block_on(job).unwrap(), Some(1));
    /// ```
    #[track_caller]
    fn spawn_blocking_with_stores<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static;

    /// Like [`Runtime::block_on`] (or [`Handle::block_on`]), with the
    /// stores visible here visible at every poll of `future`, and no store
    /// visible to anything else the runtime runs meanwhile.
    ///
    /// The stores are captured (one clone of each, as
    /// [`Snapshot::capture`] does) when this is called. Plain `block_on`
    /// called inside a [`scope`](crate::scope) lends the scope's stores to
    /// every task a current-thread runtime polls during the call (see
    /// [Driving a runtime inside a scope](self#driving-a-runtime-inside-a-scope));
    /// this drives the runtime under [`isolate`] instead, and
    /// restores the captured stores in `future` only.
    ///
    /// Stores installed with [`scope_local`](crate::scope_local) or
    /// [`with_local_store`](crate::WithStore::with_local_store) are not
    /// carried into `future`: install them inside it.
    ///
    /// # Panics
    ///
    /// As tokio's `block_on`: when called within an asynchronous execution
    /// context (inside another `block_on`, or in a task), or when `future`
    /// panics; with a `Handle`, also when a timer is used on a runtime that
    /// has been shut down.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, adapters::tokio::HandleExt};
    ///
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let (own, plain) = scope(7u32, || {
    ///     rt.block_on_with_stores(async {
    ///         let plain = tokio::spawn(async { get::<u32>() }); // tokio's own spawn
    ///         (get::<u32>(), plain.await.unwrap())
    ///     })
    /// });
    /// assert_eq!(own, Some(7)); // the driven future keeps the caller's store
    /// assert_eq!(plain, None); // the task polled meanwhile sees none
    /// ```
    fn block_on_with_stores<F: Future>(&self, future: F) -> F::Output;
}

impl HandleExt for Handle {
    #[track_caller]
    fn spawn_with_stores<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        crate::carried::spawn_carried!(future, |task| self.spawn(task))
    }

    #[track_caller]
    fn spawn_blocking_with_stores<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.spawn_blocking(Snapshot::bind(f))
    }

    fn block_on_with_stores<F: Future>(&self, future: F) -> F::Output {
        let snapshot = Snapshot::capture();
        isolate(|| self.block_on(future.with_snapshot(snapshot)))
    }
}

impl HandleExt for Runtime {
    #[track_caller]
    fn spawn_with_stores<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle().spawn_with_stores(future)
    }

    #[track_caller]
    fn spawn_blocking_with_stores<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.handle().spawn_blocking_with_stores(f)
    }

    fn block_on_with_stores<F: Future>(&self, future: F) -> F::Output {
        // `Runtime::block_on`, not the handle's: on a current-thread runtime
        // only this one runs the other tasks (and so must isolate them).
        let snapshot = Snapshot::capture();
        isolate(|| self.block_on(future.with_snapshot(snapshot)))
    }
}

/// Spawning into a [`JoinSet`] with the current stores.
///
/// Sealed: implemented for `JoinSet<T>` only. Dropping the set (or
/// [`abort_all`](JoinSet::abort_all)) drops each task's future with its
/// stores visible.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, WithStore, adapters::tokio::JoinSetExt};
///
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let seen = rt.block_on(async {
///     let mut set = tokio::task::JoinSet::new();
///     for _ in 0..3 {
///         set.spawn_with_stores(async { get::<&'static str>() });
///     }
///     set.spawn_blocking_with_stores(get::<&'static str>);
///     let mut seen = Vec::new();
///     while let Some(result) = set.join_next().await {
///         seen.push(result.unwrap());
///     }
///     seen
/// }.with_store("batch-7"));
/// assert_eq!(seen, [Some("batch-7"); 4]);
/// ```
pub trait JoinSetExt<T>: sealed::Sealed {
    /// Like [`JoinSet::spawn`], with the current stores visible at every
    /// poll of the new task.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, adapters::tokio::JoinSetExt};
    ///
    /// let rt = tokio::runtime::Runtime::new().unwrap();
    /// let _guard = rt.enter();
    /// let mut set = tokio::task::JoinSet::new();
    /// scope(2u8, || set.spawn_with_stores(async { get::<u8>() }));
    /// assert_eq!(rt.block_on(set.join_next()).unwrap().unwrap(), Some(2));
    /// ```
    #[track_caller]
    fn spawn_with_stores<F>(&mut self, task: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send;

    /// Like [`JoinSet::spawn_local`], with the current stores visible at
    /// every poll of the new task.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, WithStore, adapters::tokio::JoinSetExt};
    ///
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let local = tokio::task::LocalSet::new();
    /// let seen = local.block_on(&rt, async {
    ///     let mut set = tokio::task::JoinSet::new();
    ///     set.spawn_local_with_stores(async { get::<u8>() });
    ///     set.join_next().await.unwrap().unwrap()
    /// }.with_store(6u8));
    /// assert_eq!(seen, Some(6));
    /// ```
    #[track_caller]
    fn spawn_local_with_stores<F>(&mut self, task: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static;

    /// Like [`JoinSet::spawn_blocking`], with the current stores visible
    /// while `f` runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, adapters::tokio::JoinSetExt};
    ///
    /// let rt = tokio::runtime::Runtime::new().unwrap();
    /// let _guard = rt.enter();
    /// let mut set = tokio::task::JoinSet::new();
    /// scope(8u32, || set.spawn_blocking_with_stores(get::<u32>));
    /// assert_eq!(rt.block_on(set.join_next()).unwrap().unwrap(), Some(8));
    /// ```
    #[track_caller]
    fn spawn_blocking_with_stores<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send;
}

impl<T: 'static> JoinSetExt<T> for JoinSet<T> {
    #[track_caller]
    fn spawn_with_stores<F>(&mut self, task: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send,
    {
        crate::carried::spawn_carried!(task, |task| self.spawn(task))
    }

    #[track_caller]
    fn spawn_local_with_stores<F>(&mut self, task: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
    {
        crate::carried::spawn_carried!(task, |task| self.spawn_local(task))
    }

    #[track_caller]
    fn spawn_blocking_with_stores<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send,
    {
        self.spawn_blocking(Snapshot::bind(f))
    }
}

/// Spawning onto a [`LocalSet`] with the current stores, and driving one
/// without lending them to its local tasks.
///
/// Sealed: implemented for `LocalSet` only.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope, adapters::tokio::LocalSetExt};
///
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let local = tokio::task::LocalSet::new();
/// let shared = std::rc::Rc::new(3u8); // the task need not be `Send`
/// let task = scope(3u8, || {
///     local.spawn_local_with_stores(async move { get::<u8>() == Some(*shared) })
/// });
/// assert!(local.block_on(&rt, task).unwrap());
/// ```
pub trait LocalSetExt: sealed::Sealed {
    /// Like [`LocalSet::spawn_local`], with the current stores visible at
    /// every poll of the new task.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, adapters::tokio::LocalSetExt};
    ///
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let local = tokio::task::LocalSet::new();
    /// let task = scope(1u64, || local.spawn_local_with_stores(async { get::<u64>() }));
    /// assert_eq!(local.block_on(&rt, task).unwrap(), Some(1));
    /// ```
    #[track_caller]
    fn spawn_local_with_stores<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static;

    /// Like [`LocalSet::run_until`], with the stores visible here visible at
    /// every poll of `future`, and no store visible to the local tasks the
    /// set polls meanwhile.
    ///
    /// The stores are captured (one clone of each) when this is called, not
    /// when the returned future is first polled. Plain `run_until` awaited
    /// inside a future that has a store lends that store to every local task
    /// (see [Driving a runtime inside a scope](self#driving-a-runtime-inside-a-scope));
    /// this polls the set [isolated](crate::WithStore::isolated) instead,
    /// and restores the captured stores in `future` only. Stores installed
    /// with [`scope_local`](crate::scope_local) or
    /// [`with_local_store`](crate::WithStore::with_local_store) are not
    /// carried into `future`.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, WithStore, adapters::tokio::LocalSetExt};
    ///
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let local = tokio::task::LocalSet::new();
    /// let background = local.spawn_local(async { get::<u32>() }); // spawned earlier
    /// let (own, other) = rt.block_on(async {
    ///     local.run_until_with_stores(async {
    ///         (get::<u32>(), background.await.unwrap())
    ///     })
    ///     .await
    /// }.with_store(7u32));
    /// assert_eq!(own, Some(7)); // the driven future keeps the caller's store
    /// assert_eq!(other, None); // the local task polled meanwhile sees none
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    fn run_until_with_stores<F: Future>(&self, future: F) -> impl Future<Output = F::Output>;

    /// Like [`LocalSet::block_on`], with the stores visible here visible at
    /// every poll of `future`, and no store visible to anything else the
    /// runtime and the set poll meanwhile.
    ///
    /// The stores are captured (one clone of each) when this is called.
    /// Plain `block_on` called inside a [`scope`](crate::scope) lends the
    /// scope's stores to every local task, and to every task of a
    /// current-thread `rt` (see
    /// [Driving a runtime inside a scope](self#driving-a-runtime-inside-a-scope));
    /// this drives both under [`isolate`] instead, and
    /// restores the captured stores in `future` only. Stores installed with
    /// [`scope_local`](crate::scope_local) or
    /// [`with_local_store`](crate::WithStore::with_local_store) are not
    /// carried into `future`.
    ///
    /// # Panics
    ///
    /// As [`LocalSet::block_on`]: when called within an asynchronous
    /// execution context, when the executor is at capacity, or when
    /// `future` panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, adapters::tokio::LocalSetExt};
    ///
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let local = tokio::task::LocalSet::new();
    /// let (own, plain) = scope(7u32, || {
    ///     local.block_on_with_stores(&rt, async {
    ///         let plain = tokio::task::spawn_local(async { get::<u32>() }); // tokio's own
    ///         (get::<u32>(), plain.await.unwrap())
    ///     })
    /// });
    /// assert_eq!(own, Some(7)); // the driven future keeps the caller's store
    /// assert_eq!(plain, None); // the local task polled meanwhile sees none
    /// ```
    fn block_on_with_stores<F: Future>(&self, rt: &Runtime, future: F) -> F::Output;
}

impl LocalSetExt for LocalSet {
    #[track_caller]
    fn spawn_local_with_stores<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        crate::carried::spawn_carried!(future, |task| self.spawn_local(task))
    }

    fn run_until_with_stores<F: Future>(&self, future: F) -> impl Future<Output = F::Output> {
        self.run_until(future.with_snapshot(Snapshot::capture()))
            .isolated()
    }

    fn block_on_with_stores<F: Future>(&self, rt: &Runtime, future: F) -> F::Output {
        let snapshot = Snapshot::capture();
        isolate(|| self.block_on(rt, future.with_snapshot(snapshot)))
    }
}
