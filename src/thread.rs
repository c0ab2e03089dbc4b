//! OS threads that start with the stores of the code that spawned them.
//!
//! A thread started with [`std::thread::spawn`] sees no store: the slot is
//! per thread. These wrappers capture a [`Snapshot`] on the spawning thread
//! and run the closure inside it.

use std::thread::{JoinHandle, Scope, ScopedJoinHandle};

use crate::Snapshot;

/// Like [`std::thread::spawn`], with the current stores visible in the new
/// thread.
///
/// # Panics
///
/// As [`std::thread::spawn`]: if the OS fails to create the thread.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope, thread};
///
/// let handle = scope(7u64, || thread::spawn(get::<u64>));
/// assert_eq!(handle.join().unwrap(), Some(7));
///
/// let plain = scope(7u64, || std::thread::spawn(get::<u64>));
/// assert_eq!(plain.join().unwrap(), None);
/// ```
pub fn spawn<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    std::thread::spawn(Snapshot::bind(f))
}

/// Like [`Scope::spawn`] (inside [`std::thread::scope`]), with the current
/// stores visible in the new thread.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope, thread};
///
/// let mut seen = None;
/// scope(String::from("job-3"), || {
///     std::thread::scope(|s| {
///         thread::spawn_scoped(s, || seen = get::<String>());
///     });
/// });
/// assert_eq!(seen.as_deref(), Some("job-3"));
/// ```
pub fn spawn_scoped<'scope, 'env, F, R>(
    scope: &'scope Scope<'scope, 'env>,
    f: F,
) -> ScopedJoinHandle<'scope, R>
where
    F: FnOnce() -> R + Send + 'scope,
    R: Send + 'scope,
{
    scope.spawn(Snapshot::bind(f))
}
