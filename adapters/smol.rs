//! smol: spawn tasks and blocking work that start with the current stores.
//!
//! Enable the `smol` feature and call these instead of smol's own:
//!
//! | smol | carries the stores |
//! |---|---|
//! | [`smol::spawn`] | [`spawn`] |
//! | [`smol::unblock`] | [`unblock`] |
//! | [`Executor::spawn`] | [`ExecutorExt::spawn_with_stores`] |
//! | [`LocalExecutor::spawn`] | [`LocalExecutorExt::spawn_with_stores`] |
//!
//! Each one captures a [`Snapshot`] of the stores visible where it is
//! called (one clone of each) and runs the new task or closure inside it.
//! They take and return exactly what smol's functions do.
//!
//! And to drive an executor from inside a scope (see
//! [below](#driving-an-executor-inside-a-scope)):
//!
//! | smol | the driven future keeps the stores, the other tasks see none |
//! |---|---|
//! | [`Executor::run`] | [`ExecutorExt::run_with_stores`] |
//! | [`LocalExecutor::run`] | [`LocalExecutorExt::run_with_stores`] |
//! | [`smol::block_on`] | [`block_on`] |
//!
//! # Examples
//!
//! ```
//! use async_local_storage::{get, WithStore};
//!
//! #[derive(Clone, Debug, PartialEq)]
//! struct RequestId(u64);
//!
//! smol::block_on(
//!     async {
//!         let carried = async_local_storage::adapters::smol::spawn(async { get::<RequestId>() });
//!         let blocking = async_local_storage::adapters::smol::unblock(get::<RequestId>);
//!         let plain = smol::spawn(async { get::<RequestId>() });
//!
//!         assert_eq!(carried.await, Some(RequestId(7)));
//!         assert_eq!(blocking.await, Some(RequestId(7)));
//!         assert_eq!(plain.await, None); // smol's own spawn starts empty
//!     }
//!     .with_store(RequestId(7)),
//! );
//! ```
//!
//! # What is carried, and what is not
//!
//! * A task started by smol's own `spawn` (or `Executor::spawn`) sees no
//!   store, as long as the executor that polls it is not driven inside a
//!   scope: it is polled by the executor, outside the spawner's poll. An
//!   executor driven inside a scope lends that scope's stores to every task
//!   it polls meanwhile (see [below](#driving-an-executor-inside-a-scope)).
//! * Stores installed with [`with_store`](crate::WithStore::with_store) or
//!   [`scope`](crate::scope) are cloned into the new work when it is
//!   spawned. Stores installed with
//!   [`with_local_store`](crate::WithStore::with_local_store) or
//!   [`scope_local`](crate::scope_local) are not carried.
//! * A future that already carries its own store
//!   (`ex.spawn(fut.with_store(v))`) needs no adapter, and
//!   [`smol::block_on`] polls its future on the calling thread,
//!   so the stores visible there stay visible.
//! * Dropping or [cancelling](::smol::Task::cancel) a [`Task`] drops its
//!   future with its stores visible.
//!
//! # Driving an executor inside a scope
//!
//! [`Executor::run`] and [`LocalExecutor::run`] poll the executor's tasks
//! inside the poll of the future they return (on the thread that drives
//! them). Driven inside a [`scope`](crate::scope), as in
//! `scope(user, || smol::block_on(ex.run(fut)))`, or awaited inside a
//! future that has a store, they lend those stores to every task they poll
//! meanwhile, as to any code called there: a task started with smol's own
//! `spawn`, and one that other code spawned long before, read that caller's
//! store.
//!
//! ```
//! use async_local_storage::{get, scope};
//!
//! let ex = smol::LocalExecutor::new();
//! let background = ex.spawn(async { get::<&'static str>() }); // spawned earlier, elsewhere
//! let seen = scope("user-1", || smol::block_on(ex.run(background)));
//! assert_eq!(seen, Some("user-1")); // the hazard: another task saw this caller's store
//! ```
//!
//! [`ExecutorExt::run_with_stores`] and
//! [`LocalExecutorExt::run_with_stores`] run the future with the caller's
//! stores (captured when they are called) and every other task with none:
//!
//! ```
//! use async_local_storage::{get, scope, adapters::smol::LocalExecutorExt};
//!
//! let ex = smol::LocalExecutor::new();
//! let background = ex.spawn(async { get::<&'static str>() });
//! let (seen, own) = scope("user-1", || {
//!     smol::block_on(ex.run_with_stores(async { (background.await, get::<&'static str>()) }))
//! });
//! assert_eq!(seen, None); // the other task sees no store...
//! assert_eq!(own, Some("user-1")); // ...the driven future keeps the caller's
//! ```
//!
//! [`smol::block_on`] itself runs no task: it polls its one future (and
//! smol's reactor), so `scope(user, || smol::block_on(fut))` lends the
//! stores to `fut` alone. This module's [`block_on`] does the same with the
//! caller's stores captured and everything else isolated; it does **not**
//! make `block_on(ex.run(fut))` safe, as `ex.run(..)` is the future it
//! carries the stores into: use `run_with_stores` for executors.
//!
//! A store on the driven future itself (`ex.run(fut.with_store(v))`) is safe
//! as it is: the executor polls its other tasks between the polls of `fut`,
//! outside its store.
//!
//! The executors' [`tick`](::smol::Executor::tick) and
//! [`try_tick`](::smol::Executor::try_tick) poll a task too, where they are
//! called: call them outside every scope, or inside [`isolate`].
//! The same goes for dropping an executor, which drops the tasks left in
//! it on the calling thread: inside a scope, the destructors of tasks
//! started with smol's own `spawn` see the caller's stores (tasks spawned
//! through this module drop with their own).
//!
//! ```
//! use async_local_storage::{isolate, scope};
//!
//! scope("user-1", || {
//!     let ex = smol::LocalExecutor::new();
//!     // ... smol::block_on(ex.run_with_stores(..)), ex.spawn(..) ...
//!     isolate(|| drop(ex)); // the tasks left in it drop with no store visible
//! });
//! ```
//!
//! [`Executor::spawn`]: ::smol::Executor::spawn
//! [`LocalExecutor::spawn`]: ::smol::LocalExecutor::spawn
//! [`Executor::run`]: ::smol::Executor::run
//! [`LocalExecutor::run`]: ::smol::LocalExecutor::run

use core::future::Future;

use ::smol::{Executor, LocalExecutor, Task};

use crate::{isolate, Snapshot, WithStore};

/// Like [`smol::spawn`] (smol's global executor), with the
/// current stores visible at every poll of the new task (and while it is
/// dropped).
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope};
///
/// let task = scope(String::from("job-1"), || {
///     async_local_storage::adapters::smol::spawn(async { get::<String>() })
/// });
/// assert_eq!(smol::block_on(task).as_deref(), Some("job-1"));
/// ```
pub fn spawn<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Task<T> {
    crate::carried::spawn_carried!(future, |task| ::smol::spawn(task))
}

/// Like [`smol::unblock`], with the current stores visible
/// while `f` runs on the blocking thread pool.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope};
///
/// let task = scope(9u64, || async_local_storage::adapters::smol::unblock(get::<u64>));
/// assert_eq!(smol::block_on(task), Some(9));
/// ```
pub fn unblock<T, F>(f: F) -> Task<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    ::smol::unblock(Snapshot::bind(f))
}

/// Like [`smol::block_on`], with the stores visible here visible at every
/// poll of `future`, and no store visible to anything else that runs
/// meanwhile (smol's reactor and the wakers it calls).
///
/// The stores are captured (one clone of each, as [`Snapshot::capture`]
/// does) when this is called. Stores installed with
/// [`scope_local`](crate::scope_local) or
/// [`with_local_store`](crate::WithStore::with_local_store) are not carried
/// into `future`: install them inside it.
///
/// `smol::block_on` runs no other task, so this changes little on its own.
/// It does not protect the tasks of an executor whose `run` future is
/// `future`: `block_on(ex.run(fut))` carries the stores into `ex.run(..)`,
/// and so into every task it polls. Use
/// [`ExecutorExt::run_with_stores`] / [`LocalExecutorExt::run_with_stores`]
/// for that (see
/// [Driving an executor inside a scope](self#driving-an-executor-inside-a-scope)).
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
/// let seen = scope(3u8, || async_local_storage::adapters::smol::block_on(async { get::<u8>() }));
/// assert_eq!(seen, Some(3));
/// ```
pub fn block_on<T>(future: impl Future<Output = T>) -> T {
    let snapshot = Snapshot::capture();
    isolate(|| ::smol::block_on(future.with_snapshot(snapshot)))
}

mod sealed {
    // Reachable only through the public extension traits, which it seals.
    #[allow(unreachable_pub)]
    pub trait Sealed {}

    impl Sealed for ::smol::Executor<'_> {}
    impl Sealed for ::smol::LocalExecutor<'_> {}
}

/// Spawning onto an [`Executor`] with the current stores, and running one
/// without lending them to its tasks.
///
/// Sealed: implemented for `Executor` only.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope, adapters::smol::ExecutorExt};
///
/// let ex = smol::Executor::new();
/// let task = scope(5u16, || ex.spawn_with_stores(async { get::<u16>() }));
/// assert_eq!(smol::block_on(ex.run(task)), Some(5));
/// ```
pub trait ExecutorExt<'a>: sealed::Sealed {
    /// Like [`Executor::spawn`], with the current stores visible at every
    /// poll of the new task.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, WithStore, adapters::smol::ExecutorExt};
    ///
    /// let ex = smol::Executor::new();
    /// let seen = smol::block_on(ex.run(async {
    ///     ex.spawn_with_stores(async { get::<char>() }).await
    /// }.with_store('a')));
    /// assert_eq!(seen, Some('a'));
    /// ```
    fn spawn_with_stores<T: Send + 'a>(
        &self,
        future: impl Future<Output = T> + Send + 'a,
    ) -> Task<T>;

    /// Like [`Executor::run`], with the stores visible here visible at every
    /// poll of `future`, and no store visible to the tasks this call polls
    /// meanwhile.
    ///
    /// The stores are captured (one clone of each) when this is called, not
    /// when the returned future is first polled. Plain `run` driven inside a
    /// [`scope`](crate::scope), or awaited inside a future that has a store,
    /// lends those stores to every task it polls (see
    /// [Driving an executor inside a scope](self#driving-an-executor-inside-a-scope));
    /// this runs the executor [isolated](crate::WithStore::isolated)
    /// instead, and restores the captured stores in `future` only. Stores
    /// installed with [`scope_local`](crate::scope_local) or
    /// [`with_local_store`](crate::WithStore::with_local_store) are not
    /// carried into `future`.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, adapters::smol::ExecutorExt};
    ///
    /// let ex = smol::Executor::new();
    /// let (own, plain) = scope(7u32, || {
    ///     smol::block_on(ex.run_with_stores(async {
    ///         let plain = ex.spawn(async { get::<u32>() }); // smol's own spawn
    ///         (get::<u32>(), plain.await)
    ///     }))
    /// });
    /// assert_eq!(own, Some(7)); // the driven future keeps the caller's store
    /// assert_eq!(plain, None); // the task polled meanwhile sees none
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    fn run_with_stores<T>(&self, future: impl Future<Output = T>) -> impl Future<Output = T>;
}

impl<'a> ExecutorExt<'a> for Executor<'a> {
    fn spawn_with_stores<T: Send + 'a>(
        &self,
        future: impl Future<Output = T> + Send + 'a,
    ) -> Task<T> {
        crate::carried::spawn_carried!(future, |task| self.spawn(task))
    }

    fn run_with_stores<T>(&self, future: impl Future<Output = T>) -> impl Future<Output = T> {
        self.run(future.with_snapshot(Snapshot::capture()))
            .isolated()
    }
}

/// Spawning onto a [`LocalExecutor`] with the current stores, and running
/// one without lending them to its tasks.
///
/// Sealed: implemented for `LocalExecutor` only.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope, adapters::smol::LocalExecutorExt};
///
/// let ex = smol::LocalExecutor::new();
/// let shared = std::rc::Rc::new(3u8); // the task need not be `Send`
/// let task = scope(3u8, || ex.spawn_with_stores(async move { get::<u8>() == Some(*shared) }));
/// assert!(smol::block_on(ex.run(task)));
/// ```
pub trait LocalExecutorExt<'a>: sealed::Sealed {
    /// Like [`LocalExecutor::spawn`], with the current stores visible at
    /// every poll of the new task.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, adapters::smol::LocalExecutorExt};
    ///
    /// let ex = smol::LocalExecutor::new();
    /// let task = scope(1u64, || ex.spawn_with_stores(async { get::<u64>() }));
    /// assert_eq!(smol::block_on(ex.run(task)), Some(1));
    /// ```
    fn spawn_with_stores<T: 'a>(&self, future: impl Future<Output = T> + 'a) -> Task<T>;

    /// Like [`LocalExecutor::run`], with the stores visible here visible at
    /// every poll of `future`, and no store visible to the tasks this call
    /// polls meanwhile.
    ///
    /// The stores are captured (one clone of each) when this is called, not
    /// when the returned future is first polled. Plain `run` driven inside a
    /// [`scope`](crate::scope), or awaited inside a future that has a store,
    /// lends those stores to every task it polls (see
    /// [Driving an executor inside a scope](self#driving-an-executor-inside-a-scope));
    /// this runs the executor [isolated](crate::WithStore::isolated)
    /// instead, and restores the captured stores in `future` only. Stores
    /// installed with [`scope_local`](crate::scope_local) or
    /// [`with_local_store`](crate::WithStore::with_local_store) are not
    /// carried into `future`.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, WithStore, adapters::smol::LocalExecutorExt};
    ///
    /// let ex = smol::LocalExecutor::new();
    /// let background = ex.spawn(async { get::<u32>() }); // spawned earlier
    /// let (own, other) = smol::block_on(async {
    ///     ex.run_with_stores(async { (get::<u32>(), background.await) }).await
    /// }.with_store(7u32));
    /// assert_eq!(own, Some(7)); // the driven future keeps the caller's store
    /// assert_eq!(other, None); // the task polled meanwhile sees none
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    fn run_with_stores<T>(&self, future: impl Future<Output = T>) -> impl Future<Output = T>;
}

impl<'a> LocalExecutorExt<'a> for LocalExecutor<'a> {
    fn spawn_with_stores<T: 'a>(&self, future: impl Future<Output = T> + 'a) -> Task<T> {
        crate::carried::spawn_carried!(future, |task| self.spawn(task))
    }

    fn run_with_stores<T>(&self, future: impl Future<Output = T>) -> impl Future<Output = T> {
        self.run(future.with_snapshot(Snapshot::capture()))
            .isolated()
    }
}
