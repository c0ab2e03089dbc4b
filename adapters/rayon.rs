//! rayon: thread-pool jobs, joins, scopes and parallel iterators that run
//! with the current stores.
//!
//! Enable the `rayon` feature and call these instead of rayon's own:
//!
//! | rayon | carries the stores |
//! |---|---|
//! | [`rayon::spawn`], [`spawn_fifo`](::rayon::spawn_fifo) | [`spawn`], [`spawn_fifo`] |
//! | [`rayon::join`] | [`join`] |
//! | [`rayon::scope`], [`in_place_scope`](::rayon::in_place_scope) | [`scope`], [`in_place_scope`] (their [`Scope::spawn`] carries too) |
//! | [`rayon::scope_fifo`], [`in_place_scope_fifo`](::rayon::in_place_scope_fifo) | [`scope_fifo`], [`in_place_scope_fifo`] (their [`ScopeFifo::spawn_fifo`] carries too) |
//! | [`rayon::broadcast`], [`spawn_broadcast`](::rayon::spawn_broadcast) | [`broadcast`], [`spawn_broadcast`] |
//! | [`ThreadPool`]`::{install, spawn, spawn_fifo, join, scope, broadcast, spawn_broadcast}` | [`ThreadPoolExt`]`::{install_with_stores, spawn_with_stores, spawn_fifo_with_stores, join_with_stores, scope_with_stores, broadcast_with_stores, spawn_broadcast_with_stores}` |
//! | any [`ParallelIterator`] | [`.with_stores()`](ParallelIteratorExt::with_stores) |
//!
//! Each one captures a [`Snapshot`] of the stores visible where it is
//! called (one clone of each store) and runs every closure it hands to
//! rayon inside it, on whichever worker thread that closure runs. They take
//! and return exactly what rayon's functions do.
//!
//! # Examples
//!
//! ```
//! use async_local_storage::{get, scope};
//! use async_local_storage::adapters::rayon::{self as als, ParallelIteratorExt};
//! use rayon::prelude::*;
//!
//! #[derive(Clone, Debug, PartialEq)]
//! struct RequestId(u64);
//!
//! scope(RequestId(7), || {
//!     let (a, b) = als::join(get::<RequestId>, get::<RequestId>);
//!     assert_eq!((a, b), (Some(RequestId(7)), Some(RequestId(7))));
//!
//!     let seen: Vec<_> = (0..1000).into_par_iter().with_stores().map(|_| get::<RequestId>()).collect();
//!     assert!(seen.iter().all(|id| *id == Some(RequestId(7))));
//! });
//!
//! // rayon's own calls start every job with no store:
//! let (tx, rx) = std::sync::mpsc::channel();
//! scope(RequestId(7), || rayon::spawn(move || tx.send(get::<RequestId>()).unwrap()));
//! assert_eq!(rx.recv().unwrap(), None);
//! ```
//!
//! # Work stealing, and why every call hides the caller's stores
//!
//! A rayon thread that waits (for the other half of a `join`, the jobs of a
//! `scope`, the splits of a parallel iterator, an `install` on another
//! pool) runs other jobs meanwhile, jobs that may belong to other callers.
//! Those must not see the stores of the code that is waiting, just as a
//! future polled by a nested executor must not. So each function here
//! enters rayon inside [`isolate`], with the caller's stores hidden, and
//! makes the captured stores visible again only inside the closures it
//! hands to rayon. A job stolen while an adapter call waits sees exactly
//! what it would see on an idle worker: nothing, or its own stores.
//!
//! The same goes for your own nested calls: inside carried work, start
//! nested parallel work through this module too (a raw `rayon::join` inside
//! a carried closure waits with the stores visible). The
//! README's `clippy.toml` recipe ("Never forget to carry") flags the raw
//! calls.
//!
//! # What is carried, and what is not
//!
//! * Stores installed with [`with_store`](crate::WithStore::with_store) or
//!   [`scope`](crate::scope) are cloned when the call is made; later changes
//!   on either side are not shared (put an `Arc` in the store to share
//!   state).
//! * Stores installed with
//!   [`with_local_store`](crate::WithStore::with_local_store) or
//!   [`scope_local`](crate::scope_local) are not carried.
//! * A panic in carried work propagates exactly as rayon propagates it; the
//!   stores are removed as it unwinds, so the worker thread keeps nothing.
//!
//! [`Snapshot`]: crate::Snapshot
//! [`isolate`]: crate::isolate

use core::fmt;

use ::rayon::iter::plumbing::{
    Consumer, Folder, Producer, ProducerCallback, Reducer, UnindexedConsumer,
};
use ::rayon::iter::{IndexedParallelIterator, ParallelIterator};
use ::rayon::{BroadcastContext, ThreadPool};
use std::sync::{Mutex, PoisonError};
use std::vec::Vec;

use crate::{isolate, Snapshot};

/// Like [`rayon::spawn`], with the current stores visible
/// while `func` runs on the pool.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope};
///
/// let (tx, rx) = std::sync::mpsc::channel();
/// scope(3u32, || async_local_storage::adapters::rayon::spawn(move || tx.send(get::<u32>()).unwrap()));
/// assert_eq!(rx.recv().unwrap(), Some(3));
/// ```
pub fn spawn<F>(func: F)
where
    F: FnOnce() + Send + 'static,
{
    ::rayon::spawn(Snapshot::bind(func));
}

/// Like [`rayon::spawn_fifo`], with the current
/// stores visible while `func` runs on the pool.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope};
///
/// let (tx, rx) = std::sync::mpsc::channel();
/// scope(4u32, || async_local_storage::adapters::rayon::spawn_fifo(move || tx.send(get::<u32>()).unwrap()));
/// assert_eq!(rx.recv().unwrap(), Some(4));
/// ```
pub fn spawn_fifo<F>(func: F)
where
    F: FnOnce() + Send + 'static,
{
    ::rayon::spawn_fifo(Snapshot::bind(func));
}

/// Like [`rayon::join`], with the current stores visible in
/// both closures, and hidden while the calling thread waits (work it steals
/// meanwhile does not see them).
///
/// Cost: one [`Snapshot::capture`] and one clone (no allocation when the
/// stores fit inline, one each beyond; see [`Snapshot`]), whether or not
/// `oper_b` is stolen.
///
/// # Panics
///
/// As [`rayon::join`]: a panic in either closure propagates
/// once both have finished.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope};
///
/// let seen = scope('r', || async_local_storage::adapters::rayon::join(get::<char>, get::<char>));
/// assert_eq!(seen, (Some('r'), Some('r')));
/// ```
pub fn join<A, B, RA, RB>(oper_a: A, oper_b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let snapshot_a = Snapshot::capture();
    let snapshot_b = snapshot_a.clone();
    isolate(|| {
        ::rayon::join(
            move || snapshot_a.run(oper_a),
            move || snapshot_b.run(oper_b),
        )
    })
}

/// Like [`rayon::broadcast`]: `op` runs once on every thread of the
/// current pool (the global one from outside any pool), each time with the
/// stores visible here, and the caller's stores are hidden while it waits.
///
/// Cost: one [`Snapshot::capture`] and one clone per further thread of the
/// pool (no allocation when the stores fit inline; see [`Snapshot`]), and
/// one allocation for the list of them.
///
/// # Panics
///
/// As [`rayon::broadcast`]: a panic in `op` propagates once every call has
/// finished.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope};
///
/// let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
/// let seen = pool.install(|| scope(9u8, || {
///     async_local_storage::adapters::rayon::broadcast(|_| get::<u8>())
/// }));
/// assert_eq!(seen, [Some(9); 3]);
/// ```
pub fn broadcast<OP, R>(op: OP) -> Vec<R>
where
    OP: Fn(BroadcastContext<'_>) -> R + Sync,
    R: Send,
{
    let stores = PerThread::capture(::rayon::current_num_threads());
    isolate(|| ::rayon::broadcast(|context| stores.run(|| op(context))))
}

/// Like [`rayon::spawn_broadcast`]: `op` runs once on every thread of the
/// current pool (the global one from outside any pool), each time with the
/// stores visible here. Cost as [`broadcast`].
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope};
///
/// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
/// let (tx, rx) = std::sync::mpsc::channel();
/// let tx = std::sync::Mutex::new(tx);
/// pool.install(|| scope(6u8, || {
///     async_local_storage::adapters::rayon::spawn_broadcast(move |_| tx.lock().unwrap().send(get::<u8>()).unwrap())
/// }));
/// assert_eq!([rx.recv().unwrap(), rx.recv().unwrap()], [Some(6); 2]);
/// ```
pub fn spawn_broadcast<OP>(op: OP)
where
    OP: Fn(BroadcastContext<'_>) + Send + Sync + 'static,
{
    let stores = PerThread::capture(::rayon::current_num_threads());
    ::rayon::spawn_broadcast(move |context| stores.run(|| op(context)));
}

/// The stores of a broadcast, one snapshot for each thread it runs on:
/// a snapshot is not `Sync`, so the calls cannot share one. Each call
/// takes one (they all hold the same stores).
struct PerThread(Mutex<Vec<Snapshot>>);

impl PerThread {
    fn capture(threads: usize) -> PerThread {
        let first = Snapshot::capture();
        let mut all = Vec::with_capacity(threads.max(1));
        for _ in 1..threads {
            all.push(first.clone());
        }
        all.push(first);
        PerThread(Mutex::new(all))
    }

    fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        let snapshot = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .expect("rayon runs a broadcast once per thread of its pool");
        snapshot.run(f)
    }
}

/// A [`rayon::Scope`] whose [`spawn`](Scope::spawn) carries
/// the stores visible where it is called into the spawned job.
///
/// Given by [`scope`], [`in_place_scope`] and
/// [`ThreadPoolExt::scope_with_stores`]. It does not hand out rayon's own
/// scope, so a job started through it always carries the stores.
#[repr(transparent)]
pub struct Scope<'scope> {
    inner: ::rayon::Scope<'scope>,
}

impl<'scope> Scope<'scope> {
    fn wrap<'a>(inner: &'a ::rayon::Scope<'scope>) -> &'a Scope<'scope> {
        // SAFETY: `Scope` is `repr(transparent)` over `rayon::Scope`, so the
        // two have the same layout and the reference keeps its lifetime and
        // provenance; `Scope` adds no invariant of its own.
        unsafe { &*(inner as *const ::rayon::Scope<'scope>).cast::<Scope<'scope>>() }
    }

    /// Like [`rayon::Scope::spawn`], with the stores
    /// visible here visible while `body` runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope};
    /// use std::sync::Mutex;
    ///
    /// let seen = Mutex::new(Vec::new());
    /// scope(1u8, || {
    ///     async_local_storage::adapters::rayon::scope(|s| {
    ///         s.spawn(|s| {
    ///             seen.lock().unwrap().push(get::<u8>());
    ///             s.spawn(|_| seen.lock().unwrap().push(get::<u8>())); // nested: carried again
    ///         });
    ///     });
    /// });
    /// assert_eq!(*seen.lock().unwrap(), [Some(1), Some(1)]);
    /// ```
    pub fn spawn<BODY>(&self, body: BODY)
    where
        BODY: FnOnce(&Scope<'scope>) + Send + 'scope,
    {
        let snapshot = Snapshot::capture();
        self.inner
            .spawn(move |s| snapshot.run(|| body(Scope::wrap(s))));
    }
}

impl fmt::Debug for Scope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope").finish_non_exhaustive()
    }
}

/// A [`rayon::ScopeFifo`] whose
/// [`spawn_fifo`](ScopeFifo::spawn_fifo) carries the stores visible where
/// it is called into the spawned job.
///
/// Given by [`scope_fifo`] and [`in_place_scope_fifo`].
#[repr(transparent)]
pub struct ScopeFifo<'scope> {
    inner: ::rayon::ScopeFifo<'scope>,
}

impl<'scope> ScopeFifo<'scope> {
    fn wrap<'a>(inner: &'a ::rayon::ScopeFifo<'scope>) -> &'a ScopeFifo<'scope> {
        // SAFETY: `ScopeFifo` is `repr(transparent)` over `rayon::ScopeFifo`:
        // same layout, same lifetime and provenance, no added invariant.
        unsafe { &*(inner as *const ::rayon::ScopeFifo<'scope>).cast::<ScopeFifo<'scope>>() }
    }

    /// Like [`rayon::ScopeFifo::spawn_fifo`],
    /// with the stores visible here visible while `body` runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope};
    /// use std::sync::Mutex;
    ///
    /// let seen = Mutex::new(None);
    /// scope(2u8, || async_local_storage::adapters::rayon::scope_fifo(|s| {
    ///     s.spawn_fifo(|_| *seen.lock().unwrap() = get::<u8>());
    /// }));
    /// assert_eq!(*seen.lock().unwrap(), Some(2));
    /// ```
    pub fn spawn_fifo<BODY>(&self, body: BODY)
    where
        BODY: FnOnce(&ScopeFifo<'scope>) + Send + 'scope,
    {
        let snapshot = Snapshot::capture();
        self.inner
            .spawn_fifo(move |s| snapshot.run(|| body(ScopeFifo::wrap(s))));
    }
}

impl fmt::Debug for ScopeFifo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeFifo").finish_non_exhaustive()
    }
}

/// Like [`rayon::scope`]: `op` and the jobs spawned with
/// [`Scope::spawn`] see the stores (each job those visible where it was
/// spawned); while the scope waits for its jobs, the caller's stores are
/// hidden.
///
/// # Panics
///
/// As [`rayon::scope`]: a panic in `op` or in a spawned job
/// propagates once every job has finished.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope};
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// let carried = AtomicUsize::new(0);
/// scope(5u64, || {
///     async_local_storage::adapters::rayon::scope(|s| {
///         for _ in 0..4 {
///             s.spawn(|_| if get::<u64>() == Some(5) { carried.fetch_add(1, Ordering::Relaxed); });
///         }
///     })
/// });
/// assert_eq!(carried.into_inner(), 4);
/// ```
pub fn scope<'scope, OP, R>(op: OP) -> R
where
    OP: FnOnce(&Scope<'scope>) -> R + Send,
    R: Send,
{
    let snapshot = Snapshot::capture();
    isolate(|| ::rayon::scope(move |s| snapshot.run(|| op(Scope::wrap(s)))))
}

/// Like [`rayon::in_place_scope`]: `op` runs on
/// the calling thread with the stores, and so do the jobs spawned with
/// [`Scope::spawn`], on whichever thread.
///
/// # Panics
///
/// As [`rayon::in_place_scope`].
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope};
/// use std::sync::Mutex;
///
/// let seen = Mutex::new(None);
/// scope("job", || async_local_storage::adapters::rayon::in_place_scope(|s| {
///     s.spawn(|_| *seen.lock().unwrap() = get::<&str>());
/// }));
/// assert_eq!(*seen.lock().unwrap(), Some("job"));
/// ```
pub fn in_place_scope<'scope, OP, R>(op: OP) -> R
where
    OP: FnOnce(&Scope<'scope>) -> R,
{
    let snapshot = Snapshot::capture();
    isolate(|| ::rayon::in_place_scope(move |s| snapshot.run(|| op(Scope::wrap(s)))))
}

/// Like [`rayon::scope_fifo`], carrying the stores as
/// [`scope`] does.
///
/// # Panics
///
/// As [`rayon::scope_fifo`].
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope};
///
/// let seen = scope(8i32, || async_local_storage::adapters::rayon::scope_fifo(|_| get::<i32>()));
/// assert_eq!(seen, Some(8));
/// ```
pub fn scope_fifo<'scope, OP, R>(op: OP) -> R
where
    OP: FnOnce(&ScopeFifo<'scope>) -> R + Send,
    R: Send,
{
    let snapshot = Snapshot::capture();
    isolate(|| ::rayon::scope_fifo(move |s| snapshot.run(|| op(ScopeFifo::wrap(s)))))
}

/// Like [`rayon::in_place_scope_fifo`],
/// carrying the stores as [`in_place_scope`] does.
///
/// # Panics
///
/// As [`rayon::in_place_scope_fifo`].
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope};
///
/// let seen = scope(9i32, || async_local_storage::adapters::rayon::in_place_scope_fifo(|_| get::<i32>()));
/// assert_eq!(seen, Some(9));
/// ```
pub fn in_place_scope_fifo<'scope, OP, R>(op: OP) -> R
where
    OP: FnOnce(&ScopeFifo<'scope>) -> R,
{
    let snapshot = Snapshot::capture();
    isolate(|| ::rayon::in_place_scope_fifo(move |s| snapshot.run(|| op(ScopeFifo::wrap(s)))))
}

mod sealed {
    // Reachable only through the public extension trait, which it seals.
    #[allow(unreachable_pub)]
    pub trait Sealed {}

    impl Sealed for ::rayon::ThreadPool {}
}

/// Running work on a [`ThreadPool`] with the current stores.
///
/// Sealed: implemented for `ThreadPool` only.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope, adapters::rayon::ThreadPoolExt};
///
/// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
/// let seen = scope(1u16, || pool.install_with_stores(get::<u16>));
/// assert_eq!(seen, Some(1));
/// assert_eq!(scope(1u16, || pool.install(get::<u16>)), None); // rayon's own
/// ```
pub trait ThreadPoolExt: sealed::Sealed {
    /// Like [`ThreadPool::install`], with the current stores visible while
    /// `op` runs in the pool (and hidden while the caller waits).
    ///
    /// # Panics
    ///
    /// As [`ThreadPool::install`]: a panic in `op` propagates.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, adapters::rayon::{ParallelIteratorExt, ThreadPoolExt}};
    /// use rayon::prelude::*;
    ///
    /// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    /// let total = scope(10u64, || pool.install_with_stores(|| {
    ///     (0..4u64).into_par_iter().with_stores().map(|i| i + get::<u64>().unwrap()).sum::<u64>()
    /// }));
    /// assert_eq!(total, 46);
    /// ```
    fn install_with_stores<OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce() -> R + Send,
        R: Send;

    /// Like [`ThreadPool::spawn`], with the current stores visible while
    /// `op` runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, adapters::rayon::ThreadPoolExt};
    ///
    /// let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// scope(2u16, || pool.spawn_with_stores(move || tx.send(get::<u16>()).unwrap()));
    /// assert_eq!(rx.recv().unwrap(), Some(2));
    /// ```
    fn spawn_with_stores<OP>(&self, op: OP)
    where
        OP: FnOnce() + Send + 'static;

    /// Like [`ThreadPool::spawn_fifo`], with the current stores visible
    /// while `op` runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, adapters::rayon::ThreadPoolExt};
    ///
    /// let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// scope(6u16, || pool.spawn_fifo_with_stores(move || tx.send(get::<u16>()).unwrap()));
    /// assert_eq!(rx.recv().unwrap(), Some(6));
    /// ```
    fn spawn_fifo_with_stores<OP>(&self, op: OP)
    where
        OP: FnOnce() + Send + 'static;

    /// Like [`ThreadPool::join`], with the current stores visible in both
    /// closures (see [`join`]).
    ///
    /// # Panics
    ///
    /// As [`ThreadPool::join`].
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, adapters::rayon::ThreadPoolExt};
    ///
    /// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    /// let seen = scope(3u16, || pool.join_with_stores(get::<u16>, get::<u16>));
    /// assert_eq!(seen, (Some(3), Some(3)));
    /// ```
    fn join_with_stores<A, B, RA, RB>(&self, oper_a: A, oper_b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send;

    /// Like [`ThreadPool::broadcast`], carrying the stores as [`broadcast`]
    /// does.
    ///
    /// # Panics
    ///
    /// As [`ThreadPool::broadcast`].
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, adapters::rayon::ThreadPoolExt};
    ///
    /// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    /// let seen = scope(3u16, || pool.broadcast_with_stores(|_| get::<u16>()));
    /// assert_eq!(seen, [Some(3), Some(3)]);
    /// assert_eq!(scope(3u16, || pool.broadcast(|_| get::<u16>())), [None, None]); // rayon's own
    /// ```
    fn broadcast_with_stores<OP, R>(&self, op: OP) -> Vec<R>
    where
        OP: Fn(BroadcastContext<'_>) -> R + Sync,
        R: Send;

    /// Like [`ThreadPool::spawn_broadcast`], carrying the stores as
    /// [`spawn_broadcast`] does.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, adapters::rayon::ThreadPoolExt};
    ///
    /// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let tx = std::sync::Mutex::new(tx);
    /// scope(5u16, || pool.spawn_broadcast_with_stores(move |_| tx.lock().unwrap().send(get::<u16>()).unwrap()));
    /// assert_eq!([rx.recv().unwrap(), rx.recv().unwrap()], [Some(5); 2]);
    /// ```
    fn spawn_broadcast_with_stores<OP>(&self, op: OP)
    where
        OP: Fn(BroadcastContext<'_>) + Send + Sync + 'static;

    /// Like [`ThreadPool::scope`], carrying the stores as [`scope`] does.
    ///
    /// # Panics
    ///
    /// As [`ThreadPool::scope`].
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, adapters::rayon::ThreadPoolExt};
    /// use std::sync::Mutex;
    ///
    /// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    /// let seen = Mutex::new(None);
    /// scope(4u16, || pool.scope_with_stores(|s| s.spawn(|_| *seen.lock().unwrap() = get::<u16>())));
    /// assert_eq!(*seen.lock().unwrap(), Some(4));
    /// ```
    fn scope_with_stores<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&Scope<'scope>) -> R + Send,
        R: Send;
}

impl ThreadPoolExt for ThreadPool {
    fn install_with_stores<OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce() -> R + Send,
        R: Send,
    {
        let snapshot = Snapshot::capture();
        isolate(|| self.install(move || snapshot.run(op)))
    }

    fn spawn_with_stores<OP>(&self, op: OP)
    where
        OP: FnOnce() + Send + 'static,
    {
        self.spawn(Snapshot::bind(op));
    }

    fn spawn_fifo_with_stores<OP>(&self, op: OP)
    where
        OP: FnOnce() + Send + 'static,
    {
        self.spawn_fifo(Snapshot::bind(op));
    }

    fn join_with_stores<A, B, RA, RB>(&self, oper_a: A, oper_b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        let snapshot_a = Snapshot::capture();
        let snapshot_b = snapshot_a.clone();
        isolate(|| {
            self.join(
                move || snapshot_a.run(oper_a),
                move || snapshot_b.run(oper_b),
            )
        })
    }

    fn broadcast_with_stores<OP, R>(&self, op: OP) -> Vec<R>
    where
        OP: Fn(BroadcastContext<'_>) -> R + Sync,
        R: Send,
    {
        let stores = PerThread::capture(self.current_num_threads());
        isolate(|| self.broadcast(|context| stores.run(|| op(context))))
    }

    fn spawn_broadcast_with_stores<OP>(&self, op: OP)
    where
        OP: Fn(BroadcastContext<'_>) + Send + Sync + 'static,
    {
        let stores = PerThread::capture(self.current_num_threads());
        self.spawn_broadcast(move |context| stores.run(|| op(context)));
    }

    fn scope_with_stores<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&Scope<'scope>) -> R + Send,
        R: Send,
    {
        let snapshot = Snapshot::capture();
        isolate(|| self.scope(move |s| snapshot.run(|| op(Scope::wrap(s)))))
    }
}

// ---------------------------------------------------------------------------
// Parallel iterators.
// ---------------------------------------------------------------------------

/// [`.with_stores()`](ParallelIteratorExt::with_stores) on every
/// [`ParallelIterator`].
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope, adapters::rayon::ParallelIteratorExt};
/// use rayon::prelude::*;
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct Tenant(&'static str);
///
/// let words = vec!["a", "b", "c"];
/// let tagged: Vec<String> = scope(Tenant("acme"), || {
///     words.par_iter().with_stores().map(|w| format!("{}:{w}", get::<Tenant>().unwrap().0)).collect()
/// });
/// assert_eq!(tagged, ["acme:a", "acme:b", "acme:c"]);
/// ```
pub trait ParallelIteratorExt: ParallelIterator {
    /// Makes the stores visible now visible to the closures of the adaptors
    /// that come after it (`map`, `filter`, `flat_map`, `for_each`, `fold`,
    /// `reduce`, `collect`, `sum`, `find_any`...), on every worker thread.
    /// An [`IndexedParallelIterator`] stays indexed.
    ///
    /// # Cost
    ///
    /// The snapshot is captured here, and cloned once each time rayon splits
    /// the work, never per item: rayon splits into a few jobs per thread,
    /// plus more when jobs are stolen. Neither allocates when the stores fit
    /// inline (96 bytes, a two-word header per store included; see
    /// [`Snapshot`]); beyond, each allocates once. Per item, it adds at most what entering a
    /// scope costs (no allocation); for sources that hand items over in
    /// batches (ranges, vectors, slices) not even that: the stores are made
    /// visible once per batch.
    ///
    /// # Where to put it
    ///
    /// Put it last: after every other adaptor, just before the closures that
    /// read the stores. Its stores cover the closures of the adaptors after
    /// it, unless one of those pulls the items before it one by one
    /// (`enumerate`, `zip`, `rev`, `step_by`, `chunks`, `interleave`, and
    /// the other adaptors that iterate rayon's producers): rayon then runs
    /// *every* closure after `.with_stores()`, those before that adaptor
    /// too, outside its reach, and they see no store. `skip` and `take` are
    /// not among them.
    ///
    /// ```
    /// use async_local_storage::{get, scope, adapters::rayon::ParallelIteratorExt};
    /// use rayon::prelude::*;
    ///
    /// let out: Vec<_> = scope(100usize, || {
    ///     (0..3usize).into_par_iter().enumerate().with_stores().map(|(i, _)| i + get::<usize>().unwrap()).collect()
    /// });
    /// assert_eq!(out, [100, 101, 102]);
    /// ```
    ///
    /// While the calling thread waits for the splits, the caller's stores
    /// are hidden (see the [module docs](self#work-stealing-and-why-every-call-hides-the-callers-stores)).
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, adapters::rayon::ParallelIteratorExt};
    /// use rayon::prelude::*;
    ///
    /// let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
    /// let carried = pool.install(|| scope(1u8, || {
    ///     (0..10_000).into_par_iter().with_stores().filter(|_| get::<u8>() == Some(1)).count()
    /// }));
    /// assert_eq!(carried, 10_000); // every item, on every worker
    /// ```
    ///
    /// Without it, on a worker thread, only the items that happen to run on
    /// the calling thread see its stores; the splits other workers steal see
    /// none (and from outside the pool, no item sees them).
    fn with_stores(self) -> WithStores<Self> {
        WithStores {
            base: self,
            snapshot: Snapshot::capture(),
        }
    }
}

impl<I: ParallelIterator> ParallelIteratorExt for I {}

/// The parallel iterator returned by
/// [`with_stores`](ParallelIteratorExt::with_stores): the items of `I`,
/// with the captured stores visible to the closures that consume them.
#[must_use = "parallel iterators are lazy and do nothing unless consumed"]
#[derive(Debug)]
pub struct WithStores<I> {
    base: I,
    snapshot: Snapshot,
}

impl<I: ParallelIterator> ParallelIterator for WithStores<I> {
    type Item = I::Item;

    fn drive_unindexed<C>(self, consumer: C) -> C::Result
    where
        C: UnindexedConsumer<Self::Item>,
    {
        let WithStores { base, snapshot } = self;
        isolate(|| base.drive_unindexed(StoresConsumer::new(consumer, snapshot))).0
    }

    fn opt_len(&self) -> Option<usize> {
        self.base.opt_len()
    }
}

impl<I: IndexedParallelIterator> IndexedParallelIterator for WithStores<I> {
    fn len(&self) -> usize {
        self.base.len()
    }

    fn drive<C>(self, consumer: C) -> C::Result
    where
        C: Consumer<Self::Item>,
    {
        let WithStores { base, snapshot } = self;
        isolate(|| base.drive(StoresConsumer::new(consumer, snapshot))).0
    }

    fn with_producer<CB>(self, callback: CB) -> CB::Output
    where
        CB: ProducerCallback<Self::Item>,
    {
        let WithStores { base, snapshot } = self;
        isolate(|| base.with_producer(StoresCallback { callback, snapshot }))
    }
}

/// Wraps the consumer that follows `with_stores`: every folder (a leaf job)
/// and every reduction runs with the snapshot visible.
///
/// One snapshot per consumer: a split keeps it on the left and clones it for
/// the right. The reducer gets none of its own: each half returns its
/// snapshot with its result, and the reduction runs in the left one.
struct StoresConsumer<C> {
    base: C,
    snapshot: Snapshot,
}

impl<C> StoresConsumer<C> {
    fn new(base: C, snapshot: Snapshot) -> Self {
        StoresConsumer { base, snapshot }
    }
}

impl<T, C: Consumer<T>> Consumer<T> for StoresConsumer<C> {
    type Folder = StoresFolder<C::Folder>;
    type Reducer = StoresReducer<C::Reducer>;
    type Result = (C::Result, Snapshot);

    fn split_at(self, index: usize) -> (Self, Self, Self::Reducer) {
        let (left, right, reducer) = self.base.split_at(index);
        let snapshot = self.snapshot.clone();
        (
            StoresConsumer::new(left, self.snapshot),
            StoresConsumer::new(right, snapshot),
            StoresReducer { base: reducer },
        )
    }

    fn into_folder(self) -> Self::Folder {
        let StoresConsumer { base, snapshot } = self;
        // `fold`'s identity closure, for one, runs here.
        let base = snapshot.run(|| base.into_folder());
        StoresFolder { base, snapshot }
    }

    fn full(&self) -> bool {
        self.base.full()
    }
}

impl<T, C: UnindexedConsumer<T>> UnindexedConsumer<T> for StoresConsumer<C> {
    fn split_off_left(&self) -> Self {
        StoresConsumer::new(self.base.split_off_left(), self.snapshot.clone())
    }

    fn to_reducer(&self) -> Self::Reducer {
        StoresReducer {
            base: self.base.to_reducer(),
        }
    }
}

struct StoresFolder<F> {
    base: F,
    snapshot: Snapshot,
}

impl<T, F: Folder<T>> Folder<T> for StoresFolder<F> {
    type Result = (F::Result, Snapshot);

    fn consume(self, item: T) -> Self {
        let StoresFolder { base, snapshot } = self;
        let base = snapshot.run(|| base.consume(item));
        StoresFolder { base, snapshot }
    }

    fn consume_iter<It>(self, iter: It) -> Self
    where
        It: IntoIterator<Item = T>,
    {
        // One entry for the whole batch: the closures downstream run lazily
        // inside `consume_iter`.
        let StoresFolder { base, snapshot } = self;
        let base = snapshot.run(|| consume_all(base, iter));
        StoresFolder { base, snapshot }
    }

    fn complete(self) -> Self::Result {
        let StoresFolder { base, snapshot } = self;
        let result = snapshot.run(|| base.complete());
        (result, snapshot)
    }

    fn full(&self) -> bool {
        self.base.full()
    }
}

/// The batch loop, compiled on its own. Inlined into `Snapshot::run`, the
/// loop came out about 1 ns per item slower than rayon's own (a trivial
/// `map(..).sum()` on one thread: 2.29 against 1.31 ns); out of line it is
/// as fast as rayon's (benches/rayon.rs), for one call per batch.
#[inline(never)]
fn consume_all<T, F: Folder<T>, It: IntoIterator<Item = T>>(base: F, iter: It) -> F {
    base.consume_iter(iter)
}

/// [`consume_all`] for a producer's batch.
#[inline(never)]
fn fold_all<P: Producer, F: Folder<P::Item>>(base: P, folder: F) -> F {
    base.fold_with(folder)
}

struct StoresReducer<R> {
    base: R,
}

impl<T, R: Reducer<T>> Reducer<(T, Snapshot)> for StoresReducer<R> {
    fn reduce(self, left: (T, Snapshot), right: (T, Snapshot)) -> (T, Snapshot) {
        let (left, snapshot) = left;
        let (right, _) = right;
        let result = snapshot.run(|| self.base.reduce(left, right));
        (result, snapshot)
    }
}

/// Hands the consumer downstream a producer that folds each split with the
/// snapshot visible.
struct StoresCallback<CB> {
    callback: CB,
    snapshot: Snapshot,
}

impl<T, CB: ProducerCallback<T>> ProducerCallback<T> for StoresCallback<CB> {
    type Output = CB::Output;

    fn callback<P>(self, producer: P) -> Self::Output
    where
        P: Producer<Item = T>,
    {
        self.callback.callback(StoresProducer {
            base: producer,
            snapshot: self.snapshot,
        })
    }
}

struct StoresProducer<P> {
    base: P,
    snapshot: Snapshot,
}

impl<P: Producer> Producer for StoresProducer<P> {
    type Item = P::Item;
    type IntoIter = P::IntoIter;

    fn into_iter(self) -> Self::IntoIter {
        self.base.into_iter()
    }

    fn min_len(&self) -> usize {
        self.base.min_len()
    }

    fn max_len(&self) -> usize {
        self.base.max_len()
    }

    fn split_at(self, index: usize) -> (Self, Self) {
        let (left, right) = self.base.split_at(index);
        let snapshot = self.snapshot.clone();
        (
            StoresProducer {
                base: left,
                snapshot: self.snapshot,
            },
            StoresProducer {
                base: right,
                snapshot,
            },
        )
    }

    fn fold_with<F>(self, folder: F) -> F
    where
        F: Folder<Self::Item>,
    {
        let StoresProducer { base, snapshot } = self;
        snapshot.run(|| fold_all(base, folder))
    }
}
