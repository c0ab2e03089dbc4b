//! Group `rayon` (issue 11): what the rayon adapter adds to rayon's own calls.
//!
//! * `par_iter`: `(0..1_000_000).into_par_iter().map(trivial).sum()` on a pool
//!   with one store visible; time per item = time per iteration / 1,000,000.
//!   `bare` is rayon's iterator (the items see no store); `adapter` adds
//!   `.with_stores()` (one capture per run, one snapshot clone per split, the
//!   stores entered once per leaf batch); `adapter, map reads the store` also
//!   reads the store in every item. Then the same two on a pool of one
//!   thread (no stealing: the quietest view of the per-item cost).
//! * `join`: 1,000 `join(|| black_box(1), || black_box(2))` in a row on a
//!   worker thread with one store visible; time per join = time per
//!   iteration / 1,000. `bare` is `rayon::join`, `adapter` is this crate's
//!   (one capture and one clone per join: two allocations with one store).
//!
//! Run: `cargo bench --features rayon --bench rayon`.

use std::hint::black_box;
use std::time::Duration;

use async_local_storage::adapters::rayon::{self as als, ParallelIteratorExt};
use async_local_storage::{scope, with};
use criterion::{Criterion, Throughput};
use rayon::prelude::*;

mod common;

use common::A;

const GROUPS: [&str; 1] = ["rayon"];
const ITEMS: u32 = 1_000_000;
const JOINS: u64 = 1_000;

fn item(i: u32) -> u64 {
    u64::from(black_box(i)).wrapping_mul(3)
}

fn rayon(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new().build().unwrap();
    let mut g = common::group(c, GROUPS[0], u64::from(ITEMS));
    // Pool threads compete with whatever else runs: measure longer than the
    // other groups, so that the median settles.
    g.measurement_time(Duration::from_secs(4));

    g.bench_function("bare: par_iter map sum, 1M items", |b| {
        b.iter(|| {
            pool.install(|| scope(A(7), || (0..ITEMS).into_par_iter().map(item).sum::<u64>()))
        })
    });
    g.bench_function("adapter: par_iter .with_stores() map sum, 1M items", |b| {
        b.iter(|| {
            pool.install(|| {
                scope(A(7), || {
                    (0..ITEMS)
                        .into_par_iter()
                        .with_stores()
                        .map(item)
                        .sum::<u64>()
                })
            })
        })
    });
    g.bench_function("adapter: .with_stores(), map reads the store", |b| {
        b.iter(|| {
            pool.install(|| {
                scope(A(7), || {
                    (0..ITEMS)
                        .into_par_iter()
                        .with_stores()
                        .map(|i| item(i) + with(|a: Option<&A>| a.map_or(0, |a| a.0)))
                        .sum::<u64>()
                })
            })
        })
    });

    // The same on a pool of one thread: no stealing, one split; the
    // quietest view of the per-item cost.
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    g.bench_function("bare: par_iter map sum, 1M items, 1 thread", |b| {
        b.iter(|| {
            single.install(|| scope(A(7), || (0..ITEMS).into_par_iter().map(item).sum::<u64>()))
        })
    });
    g.bench_function("adapter: .with_stores(), 1M items, 1 thread", |b| {
        b.iter(|| {
            single.install(|| {
                scope(A(7), || {
                    (0..ITEMS)
                        .into_par_iter()
                        .with_stores()
                        .map(item)
                        .sum::<u64>()
                })
            })
        })
    });

    g.throughput(Throughput::Elements(JOINS));
    g.bench_function("bare: rayon::join x1000 (per join)", |b| {
        b.iter(|| {
            pool.install(|| {
                scope(A(7), || {
                    for _ in 0..JOINS {
                        black_box(rayon::join(|| black_box(1), || black_box(2)));
                    }
                })
            })
        })
    });
    g.bench_function("adapter: join x1000 (per join)", |b| {
        b.iter(|| {
            pool.install(|| {
                scope(A(7), || {
                    for _ in 0..JOINS {
                        black_box(als::join(|| black_box(1), || black_box(2)));
                    }
                })
            })
        })
    });
    g.finish();
}

fn main() {
    common::main(&GROUPS, rayon);
}
