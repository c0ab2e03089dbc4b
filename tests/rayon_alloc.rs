//! Allocations of the rayon adapter (issue 11), counted by a global allocator
//! on every thread (the pool's workers included).
//!
//! The bound asserted: `.with_stores()` over 10,000 items allocates no more
//! than the bare parallel iterator (the one carried store fits inline in
//! the snapshot, so neither capture nor clone allocates), and the snapshot
//! is cloned once at capture plus once per split, never per item. With
//! `with_min_len(100)` rayon makes at most 100 leaves, so at most 99 splits:
//! at most 100 clones for 10,000 items. With rayon's default splitting the
//! count depends on stealing; it is printed and must stay under one clone
//! per 10 items (it is a few dozen in practice).
//!
//! One `#[test]` in this binary, so nothing else allocates while it counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

use async_local_storage::adapters::rayon::{self as als, ParallelIteratorExt};
use async_local_storage::scope;
use rayon::prelude::*;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to `System` unchanged; the counter on the
// side allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(SeqCst) {
            ALLOCS.fetch_add(1, SeqCst);
        }
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(SeqCst) {
            ALLOCS.fetch_add(1, SeqCst);
        }
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(SeqCst) {
            ALLOCS.fetch_add(1, SeqCst);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The carried store: counts its clones, which are the snapshot's clones
/// (a snapshot clones each store once per capture or clone).
#[derive(Debug)]
struct Tracked(u64);

static CLONES: AtomicU64 = AtomicU64::new(0);

impl Clone for Tracked {
    fn clone(&self) -> Self {
        CLONES.fetch_add(1, SeqCst);
        Tracked(self.0)
    }
}

/// (allocations, store clones) while `f` runs.
fn count<R>(f: impl FnOnce() -> R) -> (u64, u64, R) {
    ALLOCS.store(0, SeqCst);
    CLONES.store(0, SeqCst);
    COUNTING.store(true, SeqCst);
    let result = f();
    COUNTING.store(false, SeqCst);
    (ALLOCS.load(SeqCst), CLONES.load(SeqCst), result)
}

const ITEMS: u64 = 10_000;
/// Allocations rayon itself may make in one run and not in another (its
/// injector queue grows by a block every few dozen injected jobs).
const SLACK: u64 = 2;

fn check(item: u64) -> u64 {
    // A read by reference: `get` would clone the store (and count).
    async_local_storage::with(|t: Option<&Tracked>| t.map_or(u64::MAX, |t| t.0 + item))
}

#[test]
fn with_stores_allocates_per_split_not_per_item() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    let expected: u64 = (0..ITEMS).map(|i| i + 7).sum();

    let bare = || {
        pool.install(|| {
            scope(Tracked(7), || {
                (0..ITEMS as u32)
                    .into_par_iter()
                    .map(|i| u64::from(i) + 7)
                    .sum::<u64>()
            })
        })
    };
    let carried = |min_len: usize| {
        pool.install(|| {
            scope(Tracked(7), || {
                (0..ITEMS as u32)
                    .into_par_iter()
                    .with_min_len(min_len)
                    .with_stores()
                    .map(|i| check(u64::from(i)))
                    .sum::<u64>()
            })
        })
    };
    // Warm up: worker thread-locals, rayon's queues.
    for _ in 0..20 {
        assert_eq!(bare(), expected);
        assert_eq!(carried(1), expected);
        assert_eq!(carried(100), expected);
    }

    let mut report = Vec::new();
    for round in 0..5 {
        let (bare_allocs, _, sum) = count(bare);
        assert_eq!(sum, expected);

        // Bounded splitting: at most 100 leaves of >= 100 items.
        let (allocs, clones, sum) = count(|| carried(100));
        assert_eq!(sum, expected);
        assert!(
            clones <= 100,
            "{clones} snapshot clones for at most 99 splits"
        );
        assert!(
            allocs <= bare_allocs + SLACK,
            "{allocs} allocations (bare: {bare_allocs}) for {clones} snapshot clones"
        );
        report.push(format!(
            "round {round}: min_len 100: {clones} clones, {allocs} allocations (bare {bare_allocs})"
        ));

        // rayon's own splitting.
        let (allocs, clones, sum) = count(|| carried(1));
        assert_eq!(sum, expected);
        assert!(
            clones <= ITEMS / 10,
            "{clones} snapshot clones for {ITEMS} items"
        );
        assert!(
            allocs <= bare_allocs + SLACK,
            "{allocs} allocations (bare: {bare_allocs}) for {clones} snapshot clones"
        );
        report.push(format!(
            "round {round}: default: {clones} clones, {allocs} allocations (bare {bare_allocs})"
        ));
    }

    // join: one capture and one clone more than rayon's join, and no
    // allocation more.
    let (bare_allocs, _, _) =
        count(|| pool.install(|| scope(Tracked(1), || rayon::join(|| check(1), || check(2)))));
    let (allocs, clones, seen) =
        count(|| pool.install(|| scope(Tracked(1), || als::join(|| check(1), || check(2)))));
    assert_eq!(seen, (2, 3));
    assert_eq!(clones, 2);
    assert!(
        allocs <= bare_allocs + SLACK,
        "join: {allocs} allocations (bare {bare_allocs})"
    );
    report.push(format!(
        "join: {clones} clones, {allocs} allocations (bare {bare_allocs})"
    ));

    println!("{}", report.join("\n"));
}
