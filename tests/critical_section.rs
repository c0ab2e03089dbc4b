//! The `critical-section` backend on the host.
//!
//! Run it with the backend selected:
//!
//! ```text
//! cargo test --no-default-features --features critical-section --test critical_section
//! cargo test --no-default-features --features critical-section,alloc --test critical_section
//! ```
//!
//! That backend is one global slot, sound only where a single execution
//! context polls and reads (see `src/slot/critical_section.rs`). libtest runs
//! tests on parallel threads, which would share that slot: a data race, and
//! a thread could follow a pointer into another thread's stack. So this file
//! has no libtest harness (`harness = false` in Cargo.toml): `main` runs every
//! case in turn on the main thread, and no case starts a thread.
//!
//! With `std` enabled as well (`cargo test --all-features`), features being
//! additive, the thread-local backend is selected instead. `main` then checks
//! that it is, says so, and runs the same cases against it: they hold for
//! every backend. It can never test the thread-local backend while claiming
//! to test the critical-section one, because the expected backend is derived
//! from the features this crate was built with and checked first.

mod common;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;

use async_local_storage::{exit, get, is_set, scope, slot, with, WithStore};
use common::{check_critical_section_backend, poll_once, run_within, yield_now, RequestId};

/// The critical-section slot, registered as a firmware would. On the host,
/// `main` runs every case on one thread, which is what the `unsafe impl`
/// asserts (the host's `critical-section` implementation is a global lock).
struct HostSlot;

// SAFETY: one context: every case runs on the main thread (`harness =
// false`, no case starts a thread that touches stores), so polls nest LIFO
// and nothing preempts a scope.
unsafe impl async_local_storage::slot::CriticalSectionSlot for HostSlot {}

async_local_storage::set_slot!(HostSlot);

#[derive(Clone, Debug, PartialEq)]
struct Tenant(&'static str);

/// Polls to completion on this thread.
fn run<F: Future>(fut: F) -> F::Output {
    run_within(10_000, fut).0
}

fn assert_slot_empty() {
    assert_eq!(get::<RequestId>(), None, "a store leaked out of its scope");
    assert_eq!(get::<Tenant>(), None, "a store leaked out of its scope");
}

fn visible_across_awaits() {
    let seen = run(async {
        let mut seen = vec![get::<RequestId>()];
        for _ in 0..3 {
            yield_now().await;
            seen.push(get::<RequestId>());
        }
        seen
    }
    .with_store(RequestId(7)));
    assert_eq!(seen, vec![Some(RequestId(7)); 4]);
    assert_slot_empty();
}

fn nesting_shadows_and_restores() {
    let seen = run(async {
        let outer = get::<RequestId>();
        let inner = async {
            yield_now().await;
            (get::<RequestId>(), get::<Tenant>())
        }
        .with_store(RequestId(2))
        .await;
        let hidden = async { (get::<RequestId>(), get::<Tenant>()) }
            .without_store::<RequestId>()
            .await;
        (outer, inner, hidden, get::<RequestId>())
    }
    .with_store(RequestId(1))
    .with_store(Tenant("acme")));
    assert_eq!(
        seen,
        (
            Some(RequestId(1)),
            (Some(RequestId(2)), Some(Tenant("acme"))),
            (None, Some(Tenant("acme"))),
            Some(RequestId(1)),
        )
    );
    assert_slot_empty();
}

fn sync_scopes() {
    let seen = scope(RequestId(3), || {
        (
            get::<RequestId>(),
            exit::<RequestId, _>(is_set::<RequestId>),
            with(|id: Option<&RequestId>| id.map(|id| id.0)),
        )
    });
    assert_eq!(seen, (Some(RequestId(3)), false, Some(3)));
    assert_slot_empty();
}

fn two_tasks_interleave() {
    let log = RefCell::new(Vec::new());
    let task = |name: &'static str| {
        let log = &log;
        async move {
            for _ in 0..3 {
                log.borrow_mut().push((name, get::<Tenant>()));
                yield_now().await;
            }
        }
        .with_store(Tenant(name))
    };
    {
        let mut a = pin!(task("a"));
        let mut b = pin!(task("b"));
        let (mut a_done, mut b_done) = (false, false);
        // Round-robin, as a single-core executor does: each task is suspended
        // inside its scope while the other one runs.
        while !(a_done && b_done) {
            if !a_done {
                a_done = poll_once(a.as_mut()).is_ready();
                assert_slot_empty();
            }
            if !b_done {
                b_done = poll_once(b.as_mut()).is_ready();
                assert_slot_empty();
            }
        }
    }
    let expected: Vec<_> = (0..3)
        .flat_map(|_| [("a", Some(Tenant("a"))), ("b", Some(Tenant("b")))])
        .collect();
    assert_eq!(log.into_inner(), expected);
}

fn drop_inside_the_scope() {
    struct Probe(Rc<Cell<Option<Option<RequestId>>>>);
    impl Drop for Probe {
        fn drop(&mut self) {
            self.0.set(Some(get::<RequestId>()));
        }
    }

    // Dropped while pending (cancellation).
    let seen = Rc::new(Cell::new(None));
    {
        let probe = Probe(seen.clone());
        let mut fut = pin!(async move {
            let _probe = probe;
            futures::future::pending::<()>().await;
        }
        .with_local_store(RequestId(9)));
        assert!(poll_once(fut.as_mut()).is_pending());
        assert!(seen.take().is_none(), "dropped too early");
    }
    assert_eq!(seen.take(), Some(Some(RequestId(9))));

    // Dropped without ever being polled.
    let fut = async {}.with_store(RequestId(10));
    let probe = Probe(seen.clone());
    let fut = async move {
        let _probe = probe;
        fut.await;
    }
    .with_store(RequestId(11));
    drop(fut);
    // The probe lives in the outer future's captures, so it sees the outer store.
    assert_eq!(seen.take(), Some(Some(RequestId(11))));
    assert_slot_empty();
}

fn panic_in_poll_restores_the_slot() {
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        run(async {
            yield_now().await;
            async {
                assert_eq!(get::<RequestId>(), Some(RequestId(2)));
                panic!("boom");
            }
            .with_store(RequestId(2))
            .await;
        }
        .with_store(RequestId(1)))
    }));
    panic::set_hook(hook);
    assert!(result.is_err());
    assert_slot_empty();
    // The slot still works afterwards.
    assert_eq!(
        run(async { get::<RequestId>() }.with_store(RequestId(3))),
        Some(RequestId(3))
    );
}

/// What an interrupt-driven executor does on a single core: a poll that
/// preempts another poll runs to completion inside it (LIFO).
fn preempting_poll_nests() {
    let seen = run(async {
        let mut nested = pin!(async {
            yield_now().await;
            (get::<RequestId>(), get::<Tenant>())
        }
        .with_store(Tenant("irq")));
        // The "interrupt" polls its own task to completion while this task
        // is suspended in the middle of a poll.
        let nested = loop {
            if let Poll::Ready(out) = poll_once(nested.as_mut()) {
                break out;
            }
        };
        (nested, get::<RequestId>(), get::<Tenant>())
    }
    .with_store(RequestId(5)));
    // The preempting task sees its own store, and also the preempted task's
    // stores: see the backend's docs for why that matters. After it, the
    // preempted task sees exactly what it saw before.
    assert_eq!(
        seen,
        (
            (Some(RequestId(5)), Some(Tenant("irq"))),
            Some(RequestId(5)),
            None
        )
    );
    assert_slot_empty();
}

/// `.isolated()` cuts the preempting task off from the stores of the code it
/// preempts (no allocation, so no `alloc` feature needed).
fn isolated_preempting_poll_sees_only_its_own_stores() {
    let seen = run(async {
        let mut nested = pin!(async { (get::<RequestId>(), get::<Tenant>()) }
            .with_store(Tenant("irq"))
            .isolated());
        let nested = loop {
            if let Poll::Ready(out) = poll_once(nested.as_mut()) {
                break out;
            }
        };
        (nested, get::<RequestId>())
    }
    .with_store(RequestId(5)));
    assert_eq!(seen, ((None, Some(Tenant("irq"))), Some(RequestId(5))));
    assert_slot_empty();
}

fn local_store_of_a_non_send_value() {
    let counter = Rc::new(Cell::new(0u32));
    run(async {
        for _ in 0..2 {
            with(|c: Option<&Rc<Cell<u32>>>| c.unwrap().set(c.unwrap().get() + 1));
            yield_now().await;
        }
    }
    .with_local_store(counter.clone()));
    assert_eq!(counter.get(), 2);
    assert!(!is_set::<Rc<Cell<u32>>>());
}

type Case = (&'static str, fn());

const CASES: &[Case] = &[
    ("visible_across_awaits", visible_across_awaits),
    ("nesting_shadows_and_restores", nesting_shadows_and_restores),
    ("sync_scopes", sync_scopes),
    ("two_tasks_interleave", two_tasks_interleave),
    ("drop_inside_the_scope", drop_inside_the_scope),
    (
        "panic_in_poll_restores_the_slot",
        panic_in_poll_restores_the_slot,
    ),
    ("preempting_poll_nests", preempting_poll_nests),
    (
        "isolated_preempting_poll_sees_only_its_own_stores",
        isolated_preempting_poll_sees_only_its_own_stores,
    ),
    (
        "local_store_of_a_non_send_value",
        local_store_of_a_non_send_value,
    ),
];

/// An empty snapshot isolates too (with `alloc`).
#[cfg(feature = "alloc")]
fn empty_snapshot_isolates_a_preempting_poll() {
    use async_local_storage::Snapshot;

    let seen = run(async {
        let nested = Snapshot::empty().run(get::<RequestId>);
        (nested, get::<RequestId>())
    }
    .with_store(RequestId(5)));
    assert_eq!(seen, (None, Some(RequestId(5))));
    assert_slot_empty();
}

#[cfg(feature = "alloc")]
const ALLOC_CASES: &[Case] = &[(
    "empty_snapshot_isolates_a_preempting_poll",
    empty_snapshot_isolates_a_preempting_poll,
)];
#[cfg(not(feature = "alloc"))]
const ALLOC_CASES: &[Case] = &[];

fn main() {
    check_critical_section_backend("these cases", "critical_section");

    let cases: Vec<Case> = CASES.iter().chain(ALLOC_CASES).copied().collect();
    println!(
        "\nrunning {} cases on one thread ({} backend)",
        cases.len(),
        slot::BACKEND
    );
    assert_slot_empty();
    for (name, case) in &cases {
        case();
        println!("case {name} ... ok");
    }
    println!("\n{} cases passed", cases.len());
}
