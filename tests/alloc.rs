//! Allocation test (issue 7): a counting global allocator shows that scoping,
//! polling and dropping futures allocates nothing on the `std` backend, and
//! exactly what `Snapshot` allocates.
//!
//! The counters are per thread and only run inside [`count`], so the other
//! tests of this binary (running on their own threads) and the test harness
//! never pollute a measurement.

// What this measures is the `std` backend (and `Snapshot`).
#![cfg(feature = "std")]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::pin;

use async_local_storage::{
    exit, get, is_set, isolate, scope, scope_local, with, Snapshot, WithStore,
};
use common::{poll_once, run_within, yield_now, RequestId};

// ---------------------------------------------------------------------------
// The counting allocator.

struct Counting;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Allocs {
    /// `alloc`, `alloc_zeroed` and `realloc` calls.
    allocs: u64,
    /// `dealloc` calls.
    frees: u64,
    /// Bytes requested by `alloc`, `alloc_zeroed` and `realloc`.
    bytes: u64,
}

std::thread_local! {
    // `const` and without destructors: touching them never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static FREES: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn record_alloc(size: usize) {
    // `try_with`: the allocator may run while this thread's locals are gone.
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        let _ = BYTES.try_with(|n| n.set(n.get() + size as u64));
    }
}

fn record_free() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = FREES.try_with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; the bookkeeping only touches
// `const` thread-locals, which neither allocate nor re-enter the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record_alloc(layout.size());
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record_alloc(layout.size());
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        record_free();
        // SAFETY: `ptr` was allocated by `System` through this allocator with
        // `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record_alloc(new_size);
        // SAFETY: as in `dealloc`; `new_size` is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns what it allocated on this thread.
fn count<R>(f: impl FnOnce() -> R) -> (R, Allocs) {
    let start = (
        ALLOCS.with(Cell::get),
        FREES.with(Cell::get),
        BYTES.with(Cell::get),
    );
    COUNTING.with(|on| on.set(true));
    let out = f();
    COUNTING.with(|on| on.set(false));
    let allocs = Allocs {
        allocs: ALLOCS.with(Cell::get) - start.0,
        frees: FREES.with(Cell::get) - start.1,
        bytes: BYTES.with(Cell::get) - start.2,
    };
    (out, allocs)
}

const NONE: Allocs = Allocs {
    allocs: 0,
    frees: 0,
    bytes: 0,
};

// ---------------------------------------------------------------------------
// Helpers (none of them allocates, nor do `common`'s).

/// Polls to completion on this thread with a no-op waker; returns the
/// output and the number of polls.
fn drive<F: Future>(fut: F) -> (F::Output, usize) {
    run_within(1_000, fut)
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Tenant(u32);

type Page = [u8; 4096];

// ---------------------------------------------------------------------------
// The counter itself works: otherwise every `0` below would prove nothing.

#[test]
fn the_counter_sees_allocations() {
    let (boxed, allocs) = count(|| Box::new(5u64));
    assert_eq!(allocs.allocs, 1);
    assert_eq!(allocs.bytes, 8);
    let ((), freed) = count(|| drop(boxed));
    assert_eq!(freed.frees, 1);
    // Other threads are not counted (spawning one allocates a little here).
    let ((), other) = count(|| {
        std::thread::scope(|s| {
            s.spawn(|| drop(vec![0u8; 1 << 20]));
        })
    });
    assert!(
        other.bytes < 1 << 20,
        "another thread's allocation was counted: {other:?}"
    );
}

// ---------------------------------------------------------------------------
// Futures.

#[test]
fn scoped_future_creating_polling_dropping_allocates_nothing() {
    // A store of a word, polled through a pending point.
    let ((seen, polls), allocs) = count(|| {
        drive(
            async {
                yield_now().await;
                get::<RequestId>()
            }
            .with_store(RequestId(7)),
        )
    });
    assert_eq!((seen, polls), (Some(RequestId(7)), 2));
    assert_eq!(allocs, NONE, "Scoped<_, RequestId>");

    // A 4 KiB store: never moved, copied or boxed.
    let ((first, polls), allocs) = count(|| {
        drive(
            async {
                yield_now().await;
                with(|page: Option<&Page>| page.map(|p| p[4095]))
            }
            .with_store([9u8; 4096]),
        )
    });
    assert_eq!((first, polls), (Some(9), 2));
    assert_eq!(allocs, NONE, "Scoped<_, [u8; 4096]>");
}

#[test]
fn nested_scoped_futures_allocate_nothing() {
    let ((seen, polls), allocs) = count(|| {
        drive(
            async {
                let inner = async {
                    yield_now().await;
                    let hidden = async {
                        yield_now().await;
                        (is_set::<Tenant>(), get::<RequestId>())
                    }
                    .without_store::<Tenant>()
                    .await;
                    let isolated = async { get::<RequestId>() }.isolated().await;
                    assert_eq!(isolated, None);
                    yield_now().await;
                    (hidden, get::<RequestId>(), get::<Tenant>(), get::<u64>())
                }
                .with_store(RequestId(2))
                .with_local_store(5u64)
                .await;
                (inner, get::<RequestId>())
            }
            .with_store(RequestId(1))
            .with_store(Tenant(3))
            .with_store([1u8; 4096]),
        )
    });
    assert_eq!(
        seen,
        (
            (
                (false, Some(RequestId(2))),
                Some(RequestId(2)),
                Some(Tenant(3)),
                Some(5)
            ),
            Some(RequestId(1))
        )
    );
    assert_eq!(polls, 4);
    assert_eq!(allocs, NONE, "nested Scoped");
}

#[test]
fn dropping_a_pending_scoped_future_allocates_nothing() {
    /// Records the `RequestId` visible when it is dropped.
    struct SeesStoreOnDrop<'a>(&'a Cell<Option<u64>>);
    impl Drop for SeesStoreOnDrop<'_> {
        fn drop(&mut self) {
            self.0.set(get::<RequestId>().map(|r| r.0));
        }
    }
    let seen_on_drop = Cell::new(None);
    let ((), allocs) = count(|| {
        let fut = async {
            let _guard = SeesStoreOnDrop(&seen_on_drop);
            yield_now().await;
            yield_now().await;
        }
        .with_store(RequestId(8))
        .with_store([0u8; 4096]);
        let mut fut = Box::into_pin(Box::new(fut)); // counted: one allocation
        assert!(poll_once(fut.as_mut()).is_pending());
        assert_eq!(seen_on_drop.get(), None);
        // Dropped while pending: the guard's drop runs inside the store.
        drop(fut);
    });
    assert_eq!(seen_on_drop.get(), Some(8));
    assert_eq!(allocs.allocs, 1, "only the test's own Box: {allocs:?}");
    assert_eq!(allocs.frees, 1);

    let ((), allocs) = count(|| {
        let mut fut = pin!(async {
            let _guard = SeesStoreOnDrop(&seen_on_drop);
            yield_now().await;
        }
        .with_store(RequestId(9)));
        assert!(poll_once(fut.as_mut()).is_pending());
    });
    assert_eq!(seen_on_drop.get(), Some(9));
    assert_eq!(allocs, NONE, "pending Scoped dropped in place");
}

// ---------------------------------------------------------------------------
// Synchronous scopes and reads.

#[test]
fn scopes_and_reads_allocate_nothing() {
    let (seen, allocs) = count(|| {
        scope(RequestId(1), || {
            scope_local(Tenant(2), || {
                let hidden = exit::<RequestId, _>(|| (get::<RequestId>(), get::<Tenant>()));
                let isolated = isolate(|| (get::<RequestId>(), is_set::<Tenant>()));
                let page = scope([3u8; 4096], || with(|p: Option<&Page>| p.map(|p| p[0])));
                (
                    hidden,
                    isolated,
                    page,
                    get::<RequestId>(),
                    is_set::<Tenant>(),
                    with(|t: Option<&Tenant>| t.copied()),
                    get::<u8>(),
                )
            })
        })
    });
    assert_eq!(
        seen,
        (
            (None, Some(Tenant(2))),
            (None, false),
            Some(3),
            Some(RequestId(1)),
            true,
            Some(Tenant(2)),
            None
        )
    );
    assert_eq!(
        allocs, NONE,
        "scope/scope_local/exit/isolate/get/with/is_set"
    );
}

// ---------------------------------------------------------------------------
// Snapshots.

macro_rules! nest {
    // Installs one carried store per listed type, then evaluates `$body`.
    ($body:expr;) => { $body };
    ($body:expr; $ty:ident $($rest:ident)*) => {
        scope($ty::default(), || nest!($body; $($rest)*))
    };
}

macro_rules! store_types {
    ($($name:ident),*) => {$(
        #[derive(Clone, Debug, Default)]
        struct $name(#[allow(dead_code)] u64);
    )*};
}
store_types!(S1, S2, S3, S4, S5, S6, S7, S8);

/// A snapshot's stores fit inline up to this many bytes (each store plus a
/// two-word header): `Snapshot`'s documented capacity.
const INLINE_BYTES: usize = 96;

/// The bytes a store of type `T` takes in a snapshot: a two-word header,
/// then the value, rounded to the node's alignment.
fn node_size<T>() -> usize {
    let header = 2 * std::mem::size_of::<usize>();
    let align = std::mem::align_of::<T>().max(std::mem::align_of::<usize>());
    (header + std::mem::size_of::<T>()).div_ceil(align) * align
}

#[test]
fn capture_and_clone_allocate_nothing_until_the_inline_capacity_then_once() {
    let mut figures = Vec::new();
    macro_rules! measure {
        ($k:expr; $($ty:ident)*) => {{
            let (snapshot, allocs) = nest!(count(Snapshot::capture); $($ty)*);
            assert_eq!(snapshot.len(), $k);
            let expected = u64::from($k * node_size::<S1>() > INLINE_BYTES);
            assert_eq!(allocs.allocs, expected, "capture of {} stores: {allocs:?}", $k);
            assert_eq!(allocs.frees, 0);
            let (copy, cloned) = count(|| snapshot.clone());
            assert_eq!(cloned.allocs, expected, "clone of {} stores: {cloned:?}", $k);
            let ((), dropped) = count(|| drop((snapshot, copy)));
            assert_eq!(dropped.frees, 2 * expected, "drop of two snapshots of {} stores", $k);
            assert_eq!(dropped.allocs, 0);
            figures.push(($k, allocs.allocs, allocs.bytes));
        }};
    }
    measure!(0_usize;);
    measure!(1_usize; S1);
    measure!(2_usize; S1 S2);
    measure!(4_usize; S1 S2 S3 S4);
    measure!(5_usize; S1 S2 S3 S4 S5);
    measure!(8_usize; S1 S2 S3 S4 S5 S6 S7 S8);
    println!("Snapshot::capture: (stores, allocations, bytes allocated): {figures:?}");
    // Four u64 newtypes stay inline; past the capacity, one allocation holds
    // every store: exactly the nodes, nothing per store. (Where a `u64` is
    // aligned more strictly than a header, on some 32-bit targets, the
    // allocation also reserves the most padding each node could need.)
    assert_eq!(figures[3].1, 0);
    let align = std::mem::align_of::<S1>().max(std::mem::align_of::<usize>());
    let padding = 8 * (align - std::mem::align_of::<usize>());
    assert_eq!(figures[5], (8, 1, (8 * node_size::<S1>() + padding) as u64));

    // Shadowed stores are not copied: only the innermost of each type.
    let (snapshot, allocs) = scope(S1(1), || scope(S1(2), || count(Snapshot::capture)));
    assert_eq!((snapshot.len(), allocs.allocs), (1, 0));

    // A store of 4 KiB: one allocation, holding the node.
    let (snapshot, allocs) = scope([0u8; 4096], || count(Snapshot::capture));
    assert_eq!((snapshot.len(), allocs.allocs), (1, 1));
    assert!(allocs.bytes >= 4096);
    let (copy, cloned) = count(|| snapshot.clone());
    assert_eq!((copy.len(), cloned.allocs), (1, 1));
}

/// The example of a request context: an id, a logger handle and a
/// tenant handle (`Arc`s: their clones allocate nothing, as a `String`'s
/// would).
#[derive(Clone, Debug, PartialEq)]
struct TenantName(std::sync::Arc<str>);
#[derive(Clone, Debug)]
struct Logger(#[allow(dead_code)] std::sync::Arc<Vec<String>>);

#[test]
fn a_request_context_travels_without_allocating() {
    let logger = Logger(std::sync::Arc::new(Vec::new()));
    let tenant = TenantName("acme".into());
    let (snapshot, allocs) = scope(RequestId(7), || {
        scope(logger, || {
            scope(tenant.clone(), || count(Snapshot::capture))
        })
    });
    assert_eq!(snapshot.len(), 3);
    assert_eq!(allocs, NONE, "capture of id + logger + tenant");
    let (copy, cloned) = count(|| snapshot.clone());
    assert_eq!(cloned, NONE, "clone of id + logger + tenant");
    let (seen, ran) = count(|| copy.run(|| (get::<RequestId>(), get::<TenantName>())));
    assert_eq!(seen, (Some(RequestId(7)), Some(tenant)));
    assert_eq!(ran, NONE);
}

#[test]
fn capture_past_a_hidden_or_local_store_allocates_nothing() {
    // A type hidden (or held by a local store) in front of an outer carried
    // store must block it; capture finds that by walking, not in a list.
    let (snapshot, allocs) = scope(S1(1), || {
        scope(S2(2), || {
            exit::<S1, _>(|| scope_local(S2(3), || count(Snapshot::capture)))
        })
    });
    assert_eq!(snapshot.len(), 0);
    assert_eq!(allocs, NONE);
    let (snapshot, allocs) = scope(S1(1), || exit::<S2, _>(|| count(Snapshot::capture)));
    assert_eq!(snapshot.len(), 1);
    assert_eq!(allocs, NONE);
}

/// An adapter spawn allocates what the runtime's own spawn of the same
/// future allocates, and nothing more: the snapshot travels inside the task.
#[cfg(feature = "tokio")]
#[test]
fn an_adapter_spawn_allocates_no_more_than_a_plain_spawn() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let job = || async { get::<RequestId>() };
    // Warm up the runtime's own lazily allocated structures.
    rt.block_on(tokio::spawn(job())).unwrap();
    rt.block_on(async_local_storage::adapters::tokio::spawn(job()))
        .unwrap();

    let (plain, bare) = count(|| tokio::spawn(job()));
    assert_eq!(rt.block_on(plain).unwrap(), None);
    let adapter_spawn = || count(|| async_local_storage::adapters::tokio::spawn(job()));
    // One word-sized store (carried in two words), three stores, and an id +
    // `Arc` logger + `Arc<str>` tenant (the full one; a `String` tenant
    // would add the `String::clone`'s own allocation).
    let cases = [
        ("1 store", scope(RequestId(1), adapter_spawn)),
        (
            "3 stores",
            scope(RequestId(1), || {
                scope(S1(1), || scope(S2(2), adapter_spawn))
            }),
        ),
        (
            "id + Arc logger + Arc<str> tenant",
            scope(RequestId(1), || {
                scope(std::sync::Arc::new(String::from("logger")), || {
                    scope(std::sync::Arc::<str>::from("tenant"), adapter_spawn)
                })
            }),
        ),
    ];
    for (what, (carried, adapter)) in cases {
        println!("spawn: plain {bare:?}, adapter with {what} {adapter:?}");
        assert_eq!(
            adapter.allocs, bare.allocs,
            "{what}: adapter {adapter:?} vs plain {bare:?}"
        );
        assert_eq!(rt.block_on(carried).unwrap(), Some(RequestId(1)), "{what}");
    }
}

#[test]
fn restoring_a_snapshot_allocates_nothing() {
    let snapshot = scope(S1(1), || scope(RequestId(5), Snapshot::capture));
    let (seen, allocs) = count(|| snapshot.run(|| (get::<RequestId>(), is_set::<S1>())));
    assert_eq!(seen, (Some(RequestId(5)), true));
    assert_eq!(allocs, NONE, "Snapshot::run");

    let (seen, allocs) = count(|| {
        drive(
            async {
                yield_now().await;
                let inner = async { get::<RequestId>() }.with_store(RequestId(6)).await;
                (inner, get::<RequestId>(), is_set::<S1>())
            }
            .with_snapshot(snapshot),
        )
        .0
    });
    assert_eq!(seen, (Some(RequestId(6)), Some(RequestId(5)), true));
    // The snapshot's two stores are inline: nothing to free either.
    assert_eq!(allocs, NONE, "with_snapshot: {allocs:?}");

    let empty = count(Snapshot::empty);
    assert_eq!(empty.1, NONE, "Snapshot::empty");
}

#[test]
fn a_fresh_thread_allocates_nothing_on_first_use() {
    // The slot is a `const` thread-local without destructor: the first poll
    // on a new thread registers nothing and allocates nothing.
    let allocs = std::thread::spawn(|| {
        count(|| drive(async { get::<RequestId>() }.with_store(RequestId(1)))).1
    })
    .join()
    .unwrap();
    assert_eq!(allocs, NONE, "first use on a new thread");
}

/// The payload of the test stores' failing clones.
struct CloneFailed;

#[test]
fn a_panicking_clone_during_capture_leaks_nothing() {
    /// A store whose clone panics after capture has copied the inner stores.
    #[derive(Debug)]
    struct PanicsOnClone;
    impl Clone for PanicsOnClone {
        fn clone(&self) -> Self {
            std::panic::panic_any(CloneFailed)
        }
    }

    common::quiet_panics_of::<CloneFailed>();
    let attempt = || {
        scope(PanicsOnClone, || {
            scope(S1(1), || {
                scope(S2(2), || {
                    std::panic::catch_unwind(Snapshot::capture).map(|s| s.len())
                })
            })
        })
    };
    assert!(attempt().is_err(), "the clone panics"); // warm up the panic path
    let (outcome, allocs) = count(attempt);
    assert!(outcome.is_err());
    // The panic's own objects are all freed.
    assert_eq!(allocs.allocs, allocs.frees, "leaked: {allocs:?}");

    // The one store alone (capture's short path).
    let (outcome, allocs) = count(|| {
        scope(PanicsOnClone, || {
            std::panic::catch_unwind(Snapshot::capture).map(|s| s.len())
        })
    });
    assert!(outcome.is_err());
    assert_eq!(allocs.allocs, allocs.frees, "leaked: {allocs:?}");

    // Past the inline capacity: the one buffer, and the 4 KiB copy made
    // before the panic, are freed too.
    let counted = std::sync::Arc::new(());
    let (outcome, allocs) = count(|| {
        scope(PanicsOnClone, || {
            scope([7u8; 4096], || {
                scope(TenantName("t".into()), || {
                    scope(counted.clone(), || {
                        std::panic::catch_unwind(Snapshot::capture).map(|s| s.len())
                    })
                })
            })
        })
    });
    assert!(outcome.is_err());
    assert!(allocs.allocs >= 1, "{allocs:?}");
    assert_eq!(allocs.allocs, allocs.frees, "leaked: {allocs:?}");
    assert_eq!(
        std::sync::Arc::strong_count(&counted),
        1,
        "the Arc copied before the panic"
    );
}

#[test]
fn a_panicking_clone_during_snapshot_clone_leaks_nothing() {
    /// A store whose clone panics once armed (after the capture).
    #[derive(Debug)]
    struct PanicsWhenArmed(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl Clone for PanicsWhenArmed {
        fn clone(&self) -> Self {
            if self.0.load(std::sync::atomic::Ordering::Relaxed) {
                std::panic::panic_any(CloneFailed)
            }
            PanicsWhenArmed(self.0.clone())
        }
    }

    common::quiet_panics_of::<CloneFailed>();
    let counted = std::sync::Arc::new(());
    // One store (`clone`'s short path), then several, then past the inline
    // capacity: the copies made before the panic are freed.
    for stores in 1..=3 {
        let armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let store = PanicsWhenArmed(armed.clone());
        let snapshot = scope(store, || match stores {
            1 => Snapshot::capture(),
            2 => scope(counted.clone(), Snapshot::capture),
            _ => scope(counted.clone(), || scope([7u8; 4096], Snapshot::capture)),
        });
        assert_eq!(snapshot.len(), stores);
        armed.store(true, std::sync::atomic::Ordering::Relaxed);
        let attempt = || std::panic::catch_unwind(AssertUnwindSafe(|| snapshot.clone().len()));
        assert!(attempt().is_err(), "the clone panics"); // warm up
        let (outcome, allocs) = count(attempt);
        assert!(outcome.is_err());
        assert_eq!(allocs.allocs, allocs.frees, "{stores} stores: {allocs:?}");
        // The original is untouched.
        armed.store(false, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(snapshot.clone().len(), stores);
        drop(snapshot);
        assert_eq!(std::sync::Arc::strong_count(&counted), 1, "{stores} stores");
    }
}

#[test]
fn try_get_allocates_nothing_found_or_not() {
    use async_local_storage::try_get;
    let (found, allocs) = scope(RequestId(3), || count(try_get::<RequestId>));
    assert_eq!(found, Ok(RequestId(3)));
    assert_eq!(allocs, NONE, "try_get, found");
    let (missing, allocs) = scope(RequestId(3), || scope(S1(1), || count(try_get::<S2>)));
    let err = missing.unwrap_err();
    assert_eq!(
        allocs, NONE,
        "try_get, missing: the error is built in place"
    );
    assert_eq!(err.visible_count(), 2);
}
