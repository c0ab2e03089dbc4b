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
//!   store: it is polled by the executor, outside the spawner's poll.
//! * Stores installed with [`with_store`](crate::WithStore::with_store) or
//!   [`scope`](crate::scope) are cloned into the new work when it is
//!   spawned. Stores installed with
//!   [`with_local_store`](crate::WithStore::with_local_store) or
//!   [`scope_local`](crate::scope_local) are not carried.
//! * A future that already carries its own store
//!   (`ex.spawn(fut.with_store(v))`) needs no adapter, and
//!   [`block_on`](::smol::block_on) polls its future on the calling thread,
//!   so the stores visible there stay visible.
//! * Dropping or [cancelling](::smol::Task::cancel) a [`Task`] drops its
//!   future with its stores visible.
//!
//! [`Executor::spawn`]: ::smol::Executor::spawn
//! [`LocalExecutor::spawn`]: ::smol::LocalExecutor::spawn

use core::future::Future;

use ::smol::{Executor, LocalExecutor, Task};

use crate::{Snapshot, WithStore};

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
    ::smol::spawn(future.with_snapshot(Snapshot::capture()))
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

mod sealed {
    // Reachable only through the public extension traits, which it seals.
    #[allow(unreachable_pub)]
    pub trait Sealed {}

    impl Sealed for ::smol::Executor<'_> {}
    impl Sealed for ::smol::LocalExecutor<'_> {}
}

/// Spawning onto an [`Executor`] with the current stores.
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
}

impl<'a> ExecutorExt<'a> for Executor<'a> {
    fn spawn_with_stores<T: Send + 'a>(
        &self,
        future: impl Future<Output = T> + Send + 'a,
    ) -> Task<T> {
        self.spawn(future.with_snapshot(Snapshot::capture()))
    }
}

/// Spawning onto a [`LocalExecutor`] with the current stores.
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
}

impl<'a> LocalExecutorExt<'a> for LocalExecutor<'a> {
    fn spawn_with_stores<T: 'a>(&self, future: impl Future<Output = T> + 'a) -> Task<T> {
        self.spawn(future.with_snapshot(Snapshot::capture()))
    }
}
