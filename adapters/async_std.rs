//! async-std: spawn tasks and blocking work that start with the current
//! stores.
//!
//! Enable the `async-std` feature and call these instead of async-std's own:
//!
//! | async-std | carries the stores |
//! |---|---|
//! | [`async_std::task::spawn`] | [`spawn`] |
//! | [`async_std::task::spawn_local`] | [`spawn_local`] |
//! | [`async_std::task::spawn_blocking`] | [`spawn_blocking`] |
//! | [`Builder::spawn`], [`Builder::local`] | [`BuilderExt::spawn_with_stores`], [`BuilderExt::local_with_stores`] |
//!
//! Each one captures a [`Snapshot`] of the stores visible where it is
//! called (one clone of each) and runs the new task or closure inside it.
//! They take and return exactly what async-std's functions do.
//!
//! And to drive the runtime from inside a scope, call [`block_on`] instead
//! of [`async_std::task::block_on`], and
//! [`BuilderExt::blocking_with_stores`] instead of [`Builder::blocking`] (see
//! [below](#driving-the-runtime-inside-a-scope)).
//!
//! async-std is discontinued upstream in favour of [smol](crate::adapters::smol); this
//! adapter stays supported for code that still runs on it.
//!
//! # Examples
//!
//! ```
//! use async_local_storage::{get, WithStore};
//!
//! #[derive(Clone, Debug, PartialEq)]
//! struct RequestId(u64);
//!
//! async_std::task::block_on(
//!     async {
//!         let carried = async_local_storage::adapters::async_std::spawn(async { get::<RequestId>() });
//!         let blocking = async_local_storage::adapters::async_std::spawn_blocking(get::<RequestId>);
//!         let plain = async_std::task::spawn(async { get::<RequestId>() });
//!
//!         assert_eq!(carried.await, Some(RequestId(7)));
//!         assert_eq!(blocking.await, Some(RequestId(7)));
//!         assert_eq!(plain.await, None); // async-std's own spawn starts empty
//!     }
//!     .with_store(RequestId(7)),
//! );
//! ```
//!
//! # What is carried, and what is not
//!
//! * A task started by async-std's own `spawn` sees no store: it is polled
//!   on an executor thread, outside the spawner's poll. A task started by
//!   its `spawn_local` sees none as long as the `block_on` that polls it is
//!   not called inside a scope (see
//!   [below](#driving-the-runtime-inside-a-scope)).
//! * Stores installed with [`with_store`](crate::WithStore::with_store) or
//!   [`scope`](crate::scope) are cloned into the new work when it is
//!   spawned. Stores installed with
//!   [`with_local_store`](crate::WithStore::with_local_store) or
//!   [`scope_local`](crate::scope_local) are not carried.
//! * A future that already carries its own store
//!   (`async_std::task::spawn(fut.with_store(v))`) needs no adapter, and
//!   [`async_std::task::block_on`] polls its future on the
//!   calling thread, so the stores visible there stay visible.
//! * [`JoinHandle::cancel`](::async_std::task::JoinHandle::cancel) drops the
//!   task's future with its stores visible. Dropping a `JoinHandle` detaches
//!   the task; it does not cancel it.
//! * async-std's `task_local!` is a separate mechanism: it neither sees nor
//!   carries these stores.
//!
//!
//! # Driving the runtime inside a scope
//!
//! [`async_std::task::block_on`] polls its future on the calling thread,
//! and with it every local task of that thread (those started with
//! [`spawn_local`](::async_std::task::spawn_local) or
//! [`Builder::local`]). Called inside a [`scope`](crate::scope), it lends
//! the scope's stores to every local task it polls meanwhile, as to any code
//! called there: one started with async-std's own `spawn_local`, and one
//! that other code on this thread spawned long before, read that caller's
//! store.
//!
//! ```
//! use async_local_storage::{get, scope};
//!
//! let background = async_std::task::spawn_local(async { get::<&'static str>() }); // spawned earlier
//! let seen = scope("user-1", || async_std::task::block_on(background));
//! assert_eq!(seen, Some("user-1")); // the hazard: another task saw this caller's store
//! ```
//!
//! This module's [`block_on`] (and [`BuilderExt::blocking_with_stores`],
//! for a named task) drives the future with the caller's stores (captured
//! when it is called) and every other task with none:
//!
//! ```
//! use async_local_storage::{get, scope};
//!
//! let background = async_std::task::spawn_local(async { get::<&'static str>() });
//! let (seen, own) = scope("user-1", || {
//!     async_local_storage::adapters::async_std::block_on(async {
//!         (background.await, get::<&'static str>())
//!     })
//! });
//! assert_eq!(seen, None); // the other task sees no store...
//! assert_eq!(own, Some("user-1")); // ...the driven future keeps the caller's
//! ```
//!
//! A store on the driven future itself (`block_on(fut.with_store(v))`) is
//! safe as it is: the local tasks are polled between the polls of `fut`,
//! outside its store.
//!
//! [`Builder::spawn`]: ::async_std::task::Builder::spawn
//! [`Builder::local`]: ::async_std::task::Builder::local
//! [`Builder::blocking`]: ::async_std::task::Builder::blocking

use core::future::Future;
use std::io;

use ::async_std::task::{Builder, JoinHandle};

use crate::{isolate, Snapshot, WithStore};

/// Like [`async_std::task::block_on`], with the stores visible here visible
/// at every poll of `future`, and no store visible to anything else it runs
/// meanwhile: the thread's local tasks, the reactor and the wakers it calls.
///
/// The stores are captured (one clone of each, as [`Snapshot::capture`]
/// does) when this is called. Plain `block_on` called inside a
/// [`scope`](crate::scope) lends the scope's stores to every local task it
/// polls (see
/// [Driving the runtime inside a scope](self#driving-the-runtime-inside-a-scope));
/// this drives them under [`isolate`] instead, and restores
/// the captured stores in `future` only. Stores installed with
/// [`scope_local`](crate::scope_local) or
/// [`with_local_store`](crate::WithStore::with_local_store) are not carried
/// into `future`: install them inside it.
///
/// # Panics
///
/// When `future` panics.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope};
///
/// let (own, plain) = scope(7u32, || {
///     async_local_storage::adapters::async_std::block_on(async {
///         let plain = async_std::task::spawn_local(async { get::<u32>() }); // async-std's own
///         (get::<u32>(), plain.await)
///     })
/// });
/// assert_eq!(own, Some(7)); // the driven future keeps the caller's store
/// assert_eq!(plain, None); // the local task polled meanwhile sees none
/// ```
pub fn block_on<F, T>(future: F) -> T
where
    F: Future<Output = T>,
{
    let snapshot = Snapshot::capture();
    isolate(|| ::async_std::task::block_on(future.with_snapshot(snapshot)))
}

/// Like [`async_std::task::spawn`], with the
/// current stores visible at every poll of the new task (and while it is
/// dropped).
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope};
///
/// let handle = scope(String::from("job-1"), || {
///     async_local_storage::adapters::async_std::spawn(async { get::<String>() })
/// });
/// assert_eq!(async_std::task::block_on(handle).as_deref(), Some("job-1"));
/// ```
pub fn spawn<F, T>(future: F) -> JoinHandle<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    crate::carried::spawn_carried!(future, |task| ::async_std::task::spawn(task))
}

/// Like [`async_std::task::spawn_local`],
/// with the current stores visible at every poll of the new task.
///
/// The task runs on the calling thread, while that thread is inside
/// async-std's `block_on` or is one of its executor threads.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, WithStore};
///
/// let seen = async_std::task::block_on(async {
///     async_local_storage::adapters::async_std::spawn_local(async { get::<u8>() }).await
/// }.with_store(4u8));
/// assert_eq!(seen, Some(4));
/// ```
pub fn spawn_local<F, T>(future: F) -> JoinHandle<T>
where
    F: Future<Output = T> + 'static,
    T: 'static,
{
    crate::carried::spawn_carried!(future, |task| ::async_std::task::spawn_local(task))
}

/// Like [`async_std::task::spawn_blocking`],
/// with the current stores visible while `f` runs on the blocking thread.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope};
///
/// let handle = scope(9u64, || async_local_storage::adapters::async_std::spawn_blocking(get::<u64>));
/// assert_eq!(async_std::task::block_on(handle), Some(9));
/// ```
pub fn spawn_blocking<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    ::async_std::task::spawn_blocking(Snapshot::bind(f))
}

mod sealed {
    // Reachable only through the public extension trait, which it seals.
    #[allow(unreachable_pub)]
    pub trait Sealed {}

    impl Sealed for ::async_std::task::Builder {}
}

/// Spawning through async-std's task [`Builder`] (named tasks) with the
/// current stores.
///
/// Sealed: implemented for `Builder` only.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope, adapters::async_std::BuilderExt};
///
/// let handle = scope(5u16, || {
///     async_std::task::Builder::new()
///         .name("worker".into())
///         .spawn_with_stores(async { get::<u16>() })
/// })
/// .unwrap();
/// assert_eq!(async_std::task::block_on(handle), Some(5));
/// ```
pub trait BuilderExt: sealed::Sealed {
    /// Like [`Builder::spawn`], with the current stores visible at every
    /// poll of the new task.
    ///
    /// # Errors
    ///
    /// As [`Builder::spawn`]: when the task cannot be spawned.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, adapters::async_std::BuilderExt};
    ///
    /// let builder = async_std::task::Builder::new();
    /// let handle = scope('a', || builder.spawn_with_stores(async { get::<char>() })).unwrap();
    /// assert_eq!(async_std::task::block_on(handle), Some('a'));
    /// ```
    fn spawn_with_stores<F, T>(self, future: F) -> io::Result<JoinHandle<T>>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static;

    /// Like [`Builder::local`], with the current stores visible at every
    /// poll of the new task.
    ///
    /// # Errors
    ///
    /// As [`Builder::local`]: when the task cannot be spawned.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, WithStore, adapters::async_std::BuilderExt};
    ///
    /// let seen = async_std::task::block_on(async {
    ///     let builder = async_std::task::Builder::new();
    ///     builder.local_with_stores(async { get::<u8>() }).unwrap().await
    /// }.with_store(6u8));
    /// assert_eq!(seen, Some(6));
    /// ```
    fn local_with_stores<F, T>(self, future: F) -> io::Result<JoinHandle<T>>
    where
        F: Future<Output = T> + 'static,
        T: 'static;

    /// Like [`Builder::blocking`], with the stores visible here visible at
    /// every poll of `future`, and no store visible to anything else it runs
    /// meanwhile: what this module's [`block_on`] does, for a task with the
    /// builder's settings (its name).
    ///
    /// [`Builder::blocking`] is what [`async_std::task::block_on`] calls:
    /// called inside a [`scope`](crate::scope), it lends the scope's stores
    /// to every local task it polls (see
    /// [Driving the runtime inside a scope](self#driving-the-runtime-inside-a-scope)).
    ///
    /// # Panics
    ///
    /// When `future` panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, adapters::async_std::BuilderExt};
    ///
    /// let (own, plain) = scope(7u32, || {
    ///     async_std::task::Builder::new().name("request".into()).blocking_with_stores(async {
    ///         let plain = async_std::task::spawn_local(async { get::<u32>() }); // async-std's own
    ///         (get::<u32>(), plain.await)
    ///     })
    /// });
    /// assert_eq!(own, Some(7)); // the driven future keeps the caller's store
    /// assert_eq!(plain, None); // the local task polled meanwhile sees none
    /// ```
    fn blocking_with_stores<F, T>(self, future: F) -> T
    where
        F: Future<Output = T>;
}

impl BuilderExt for Builder {
    fn spawn_with_stores<F, T>(self, future: F) -> io::Result<JoinHandle<T>>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        crate::carried::spawn_carried!(future, |task| self.spawn(task))
    }

    fn local_with_stores<F, T>(self, future: F) -> io::Result<JoinHandle<T>>
    where
        F: Future<Output = T> + 'static,
        T: 'static,
    {
        crate::carried::spawn_carried!(future, |task| self.local(task))
    }

    fn blocking_with_stores<F, T>(self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        let snapshot = Snapshot::capture();
        isolate(|| self.blocking(future.with_snapshot(snapshot)))
    }
}
