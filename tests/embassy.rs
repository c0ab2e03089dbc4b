//! The core behaviours under a real embedded executor: `embassy-executor`
//! with its host platform (`platform-std`, single-threaded) and the
//! `critical-section` backend.
//!
//! ```text
//! cargo test --no-default-features --features critical-section --test embassy
//! ```
//!
//! No libtest harness (`harness = false`): embassy polls every task on the
//! thread that runs the executor, which is what the global slot needs, and
//! libtest would add threads. `main` runs the executor with `run_until` until
//! every task has reported back, then checks what the tasks saw. A watchdog
//! thread (it never touches this crate) fails the test if the executor hangs.
//!
//! With `std` enabled too (`cargo test --all-features`) the thread-local
//! backend wins; `main` checks that it is the one selected, says so, and
//! runs the same tasks on it.

mod common;

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

use async_local_storage::{get, is_set, slot, WithStore};
use common::{check_critical_section_backend, yield_now, RequestId};
use embassy_executor::{Executor, Spawner};

/// The critical-section slot, registered as a firmware would. On the host,
/// `main` runs every case on one thread, which is what the `unsafe impl`
/// asserts (the host's `critical-section` implementation is a global lock).
struct HostSlot;

// SAFETY: one context: every case runs on the main thread (`harness =
// false`, no case starts a thread that touches stores), so polls nest LIFO
// and nothing preempts a scope.
unsafe impl async_local_storage::slot::CriticalSectionSlot for HostSlot {}

async_local_storage::set_slot!(HostSlot);

/// How long the executor may run before the watchdog declares it hung. Not a
/// timing assertion: the tasks need a few milliseconds.
const WATCHDOG: Duration = Duration::from_secs(120);

#[derive(Clone, Debug, PartialEq)]
struct Tenant(&'static str);

/// What the tasks observed, checked by `main` once the executor stops.
#[derive(Debug, PartialEq)]
enum Seen {
    AcrossAwaits(Vec<Option<RequestId>>),
    Nesting {
        outer: Option<RequestId>,
        inner: (Option<RequestId>, Option<Tenant>),
        hidden: Option<RequestId>,
        after: Option<RequestId>,
    },
    Turn(&'static str, Option<Tenant>),
    Dropped {
        /// `None` if the probe was not dropped at all.
        in_drop: Option<Option<RequestId>>,
        after: Option<RequestId>,
    },
}

static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());
/// Tasks that ran to the end.
static FINISHED: AtomicUsize = AtomicUsize::new(0);
const TASKS: usize = 5;
/// Whose turn it is in the interleaving test: even for "a", odd for "b".
static TURN: AtomicUsize = AtomicUsize::new(0);
const ROUNDS: usize = 3;
/// Times `main` found the slot empty between two executor passes.
static BETWEEN_POLLS: AtomicUsize = AtomicUsize::new(0);

fn record(seen: Seen) {
    SEEN.lock().unwrap().push(seen);
}

#[embassy_executor::task]
async fn across_awaits() {
    let seen = async {
        let mut seen = vec![get::<RequestId>()];
        for _ in 0..3 {
            yield_now().await;
            seen.push(get::<RequestId>());
        }
        seen
    }
    .with_store(RequestId(1))
    .await;
    record(Seen::AcrossAwaits(seen));
    FINISHED.fetch_add(1, Ordering::SeqCst);
}

#[embassy_executor::task]
async fn nesting() {
    let seen = async {
        let outer = get::<RequestId>();
        let inner = async {
            yield_now().await;
            (get::<RequestId>(), get::<Tenant>())
        }
        .with_store(RequestId(3))
        .await;
        let hidden = async {
            yield_now().await;
            get::<RequestId>()
        }
        .without_store::<RequestId>()
        .await;
        yield_now().await;
        Seen::Nesting {
            outer,
            inner,
            hidden,
            after: get::<RequestId>(),
        }
    }
    .with_store(RequestId(2))
    .with_store(Tenant("nesting"))
    .await;
    record(seen);
    FINISHED.fetch_add(1, Ordering::SeqCst);
}

/// Two instances take strict turns, so each is suspended inside its own
/// scope while the other one runs.
#[embassy_executor::task(pool_size = 2)]
async fn turn_taker(name: &'static str, parity: usize) {
    async move {
        for _ in 0..ROUNDS {
            while TURN.load(Ordering::SeqCst) % 2 != parity {
                yield_now().await;
            }
            record(Seen::Turn(name, get::<Tenant>()));
            TURN.fetch_add(1, Ordering::SeqCst);
            yield_now().await;
        }
    }
    .with_store(Tenant(name))
    .await;
    FINISHED.fetch_add(1, Ordering::SeqCst);
}

#[embassy_executor::task]
async fn drop_in_scope() {
    struct Probe<'a>(&'a Cell<Option<Option<RequestId>>>);
    impl Drop for Probe<'_> {
        fn drop(&mut self) {
            self.0.set(Some(get::<RequestId>()));
        }
    }

    let in_drop = Cell::new(None);
    let probe = Probe(&in_drop);
    let mut fut = Box::pin(
        async move {
            let _probe = probe;
            std::future::pending::<()>().await;
        }
        .with_store(RequestId(4)),
    );
    // Poll it once, so that it is dropped while pending (cancelled).
    poll_fn(|cx| {
        assert!(fut.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    yield_now().await;
    drop(fut);
    record(Seen::Dropped {
        in_drop: in_drop.take(),
        after: get::<RequestId>(),
    });
    FINISHED.fetch_add(1, Ordering::SeqCst);
}

fn spawn_all(spawner: Spawner) {
    spawner.spawn(across_awaits().unwrap());
    spawner.spawn(nesting().unwrap());
    spawner.spawn(turn_taker("a", 0).unwrap());
    spawner.spawn(turn_taker("b", 1).unwrap());
    spawner.spawn(drop_in_scope().unwrap());
}

fn main() {
    check_critical_section_backend("the tasks", "embassy");

    std::thread::spawn(|| {
        std::thread::sleep(WATCHDOG);
        eprintln!("embassy test: the executor did not finish within {WATCHDOG:?}");
        std::process::exit(1);
    });

    println!(
        "\nrunning {TASKS} tasks on embassy-executor ({} backend)",
        slot::BACKEND
    );
    let executor: &'static mut Executor = Box::leak(Box::new(Executor::new()));
    executor.run_until(spawn_all, || {
        // Between two passes of the executor no task is being polled.
        assert!(!is_set::<RequestId>() && !is_set::<Tenant>());
        BETWEEN_POLLS.fetch_add(1, Ordering::SeqCst);
        FINISHED.load(Ordering::SeqCst) == TASKS
    });
    assert!(BETWEEN_POLLS.load(Ordering::SeqCst) > 0);

    let seen = SEEN.lock().unwrap();
    let check = |name: &str, ok: bool| {
        assert!(ok, "check failed: {name}; what the tasks saw: {seen:#?}");
        println!("check {name} ... ok");
    };
    check(
        "store visible across awaits",
        seen.contains(&Seen::AcrossAwaits(vec![Some(RequestId(1)); 4])),
    );
    check(
        "nesting: shadow, hide, restore",
        seen.contains(&Seen::Nesting {
            outer: Some(RequestId(2)),
            inner: (Some(RequestId(3)), Some(Tenant("nesting"))),
            hidden: None,
            after: Some(RequestId(2)),
        }),
    );
    let turns: Vec<&Seen> = seen
        .iter()
        .filter(|s| matches!(s, Seen::Turn(..)))
        .collect();
    let expected: Vec<Seen> = (0..ROUNDS)
        .flat_map(|_| {
            [
                Seen::Turn("a", Some(Tenant("a"))),
                Seen::Turn("b", Some(Tenant("b"))),
            ]
        })
        .collect();
    check(
        "two tasks interleave, each with its own store",
        turns.iter().copied().eq(expected.iter()),
    );
    check(
        "drop inside the scope",
        seen.contains(&Seen::Dropped {
            in_drop: Some(Some(RequestId(4))),
            after: None,
        }),
    );
    println!("\nall checks passed");
}
