//! The `critical-section` (no_std) slot backend, measured on the host.
//!
//! **A simulation of the cost, not a measurement of a microcontroller.** On
//! the host, `critical-section`'s `std` implementation (enabled by the
//! dev-dependency) makes every critical section lock a global `std` mutex
//! and check a thread-local reentrancy flag; on a single-core MCU a critical
//! section is "disable interrupts, restore them", a few cycles. `Scoped`
//! takes two critical sections per poll (enter, leave) and a read takes one,
//! so these figures are dominated by the host's mutex and overstate the
//! embedded cost by an order of magnitude or more. What they do show: the
//! number of critical sections per poll and per read, and that the value's
//! size still does not matter.
//!
//! Run (the backend is chosen by features; with `std` on, the thread-local
//! slot wins and this bench refuses to run):
//!
//! ```text
//! cargo bench --no-default-features --features critical-section --bench no_std_sim
//! ```

use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;

use async_local_storage::{get, scope, slot, WithStore};
use criterion::Criterion;

mod common;

use common::{A, B, C, D};

use common::{run, Leaf, POLLS};

/// The critical-section slot, registered as a firmware would. On the host,
/// `main` runs every case on one thread, which is what the `unsafe impl`
/// asserts (the host's `critical-section` implementation is a global lock).
struct HostSlot;

// SAFETY: one context: every case runs on the main thread (`harness =
// false`, no case starts a thread that touches stores), so polls nest LIFO
// and nothing preempts a scope.
unsafe impl async_local_storage::slot::CriticalSectionSlot for HostSlot {}

async_local_storage::set_slot!(HostSlot);

const POLL_GROUP: &str = "no_std_sim_poll";
const READ_GROUP: &str = "no_std_sim_read";
const READS: u64 = 1000;

/// The floor for this backend: one global cell behind a critical section.
static CELL: critical_section::Mutex<Cell<u64>> = critical_section::Mutex::new(Cell::new(7));

fn bench(c: &mut Criterion) {
    let mut g = common::group(c, POLL_GROUP, POLLS);
    g.bench_function("bare", |b| b.iter(|| run(Leaf::new)));
    g.bench_function(
        "critical-section save/restore (reference: 2 sections)",
        |b| {
            b.iter(|| {
                run(|| {
                    let mut leaf = Leaf::new();
                    std::future::poll_fn(move |cx| {
                        let prev = critical_section::with(|cs| CELL.borrow(cs).replace(1));
                        let out = Pin::new(&mut leaf).poll(cx);
                        critical_section::with(|cs| CELL.borrow(cs).set(prev));
                        out
                    })
                })
            })
        },
    );
    g.bench_function("with_store u64", |b| {
        b.iter(|| run(|| Leaf::new().with_store(black_box(7u64))))
    });
    g.bench_function("with_store [u8; 4096]", |b| {
        b.iter(|| run(|| Leaf::new().with_store(black_box([7u8; 4096]))))
    });
    g.bench_function("with_store x4 nested", |b| b.iter(|| run(common::nested4)));
    g.finish();

    let mut g = common::group(c, READ_GROUP, READS);
    g.bench_function("bare critical_section::with Cell get", |b| {
        b.iter(|| {
            for _ in 0..READS {
                black_box(critical_section::with(|cs| CELL.borrow(cs).get()));
            }
        })
    });
    scope(A(7), || {
        g.bench_function("get depth 1", |b| {
            b.iter(|| {
                for _ in 0..READS {
                    black_box(get::<A>().is_some());
                }
            })
        });
        scope(B(2), || {
            scope(C(3), || {
                scope(D(4), || {
                    g.bench_function("get depth 4", |b| {
                        b.iter(|| {
                            for _ in 0..READS {
                                black_box(get::<A>().is_some());
                            }
                        })
                    });
                })
            })
        });
    });
    g.finish();
}

fn main() {
    println!("async_local_storage::slot::BACKEND = {:?}", slot::BACKEND);
    if slot::BACKEND != "custom" {
        println!(
            "no_std_sim: skipped. This bench measures the `critical-section` backend, but this \
             build selected {:?}. Run:\n    cargo bench --no-default-features --features \
             critical-section --bench no_std_sim",
            slot::BACKEND
        );
        return;
    }
    println!(
        "no_std_sim: SIMULATION. On the host each critical section is a global std mutex \
         (critical-section's `std` impl), not an interrupt mask: expect far higher figures than \
         on a single-core MCU."
    );
    common::main(&[POLL_GROUP, READ_GROUP], bench);
}
