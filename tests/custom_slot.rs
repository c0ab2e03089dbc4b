//! The `custom-slot` backend on the host, with a slot supplied by this test
//! binary through `set_slot!`.
//!
//! Run it with the backend selected:
//!
//! ```text
//! cargo test --no-default-features --features custom-slot --test custom_slot
//! ```
//!
//! The slot is a thread-local, so it meets the `Slot` contract on every
//! thread (each thread is one context whose polls nest LIFO), and libtest's
//! parallel threads are fine here: the `threads_have_their_own_slot` case
//! relies on it. Every access is counted, so each case also proves that the
//! crate really goes through this slot, as often as documented.
//!
//! With `std` enabled too (`cargo test --all-features`), the thread-local
//! backend wins and the registration is ignored: the cases check that the
//! expected backend is selected and that this slot is then never called.

mod common;

use std::cell::Cell;
use std::pin::pin;
use std::task::Poll;

use async_local_storage::{get, scope, slot, FramePtr, Slot, WithStore};
use common::{block_on, poll_once, yield_now, RequestId};

/// The backend the enabled features select: `std` wins over `custom-slot`.
const EXPECTED_BACKEND: &str = if cfg!(feature = "std") {
    "thread-local"
} else {
    "custom"
};

std::thread_local! {
    static TOP: Cell<FramePtr> = const { Cell::new(FramePtr::NULL) };
    static GETS: Cell<usize> = const { Cell::new(0) };
    static SETS: Cell<usize> = const { Cell::new(0) };
}

/// One slot per thread.
struct ThreadSlot;

// SAFETY: (1) each thread has its own `TOP`, and a thread is one context;
// (2) a thread's polls nest LIFO on its stack, and no other context preempts
// it through this slot; (3) only the crate calls `set`, and neither function
// calls into the crate or unwinds; (4) a thread sees its own writes in
// program order.
unsafe impl Slot for ThreadSlot {
    fn get() -> FramePtr {
        GETS.with(|n| n.set(n.get() + 1));
        TOP.with(Cell::get)
    }

    unsafe fn set(top: FramePtr) {
        SETS.with(|n| n.set(n.get() + 1));
        TOP.with(|cell| cell.set(top));
    }
}

async_local_storage::set_slot!(ThreadSlot);

/// Slot accesses made by this thread so far: (gets, sets).
fn accesses() -> (usize, usize) {
    (GETS.with(Cell::get), SETS.with(Cell::get))
}

/// Asserts that running `f` went through `ThreadSlot` exactly as often as
/// the backend in use implies, and that the slot is empty again afterwards.
fn through_slot<R>(expected: (usize, usize), f: impl FnOnce() -> R) -> R {
    assert_eq!(slot::BACKEND, EXPECTED_BACKEND);
    let before = accesses();
    let out = f();
    let after = accesses();
    let made = (after.0 - before.0, after.1 - before.1);
    if EXPECTED_BACKEND == "custom" {
        assert_eq!(made, expected, "slot accesses (gets, sets)");
        assert!(TOP.with(Cell::get).is_null(), "slot not restored");
    } else {
        assert_eq!(made, (0, 0), "the std backend must not use the custom slot");
    }
    out
}

#[test]
fn read_outside_any_scope_costs_one_get() {
    let seen = through_slot((1, 0), get::<RequestId>);
    assert_eq!(seen, None);
}

#[test]
fn sync_scope_costs_one_get_and_two_sets() {
    // Enter: get + set; leave: set; the read inside: get.
    let seen = through_slot((2, 2), || scope(RequestId(1), get::<RequestId>));
    assert_eq!(seen, Some(RequestId(1)));
}

#[test]
fn store_is_visible_across_awaits() {
    let mut fut = pin!(async {
        let first = get::<RequestId>();
        yield_now().await;
        (first, get::<RequestId>())
    }
    .with_store(RequestId(7)));
    // Two polls: each enters and leaves the frame (get + 2 sets) and reads once.
    let seen = through_slot((4, 4), || {
        assert!(poll_once(fut.as_mut()).is_pending());
        match poll_once(fut.as_mut()) {
            Poll::Ready(seen) => seen,
            Poll::Pending => panic!("ready on the second poll"),
        }
    });
    assert_eq!(seen, (Some(RequestId(7)), Some(RequestId(7))));
}

#[test]
fn nested_stores_shadow_and_restore() {
    // Each of the two `Scoped` is entered twice (its poll, then its drop,
    // which also runs inside the scope): get + 2 sets each time, so 4 gets
    // and 8 sets; the drops check the slot once more as they leave (2
    // gets), and the three reads: 9 gets.
    let seen = through_slot((9, 8), || {
        block_on(
            async {
                let inner = async { get::<RequestId>() }.with_store(RequestId(2)).await;
                (get::<RequestId>(), inner, get::<RequestId>())
            }
            .with_store(RequestId(1)),
        )
    });
    assert_eq!(
        seen,
        (Some(RequestId(1)), Some(RequestId(2)), Some(RequestId(1)))
    );
}

#[test]
fn drop_runs_inside_the_scope() {
    struct Probe(std::rc::Rc<Cell<Option<RequestId>>>);
    impl Drop for Probe {
        fn drop(&mut self) {
            self.0.set(get::<RequestId>());
        }
    }
    let seen = std::rc::Rc::new(Cell::new(None));
    let probe = Probe(seen.clone());
    let fut = async move {
        let _probe = probe;
        std::future::pending::<()>().await;
    }
    .with_local_store(RequestId(3));
    // Drop enters (get + set), the probe reads (get), leaving checks that
    // the slot still holds the frame (get) and sets.
    through_slot((3, 2), || drop(fut));
    assert_eq!(seen.take(), Some(RequestId(3)));
}

#[test]
fn threads_have_their_own_slot() {
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        for id in [10, 20] {
            let barrier = &barrier;
            s.spawn(move || {
                scope(RequestId(id), || {
                    // Both threads are inside their scope at the same time.
                    barrier.wait();
                    assert_eq!(get::<RequestId>(), Some(RequestId(id)));
                    barrier.wait();
                });
                assert_eq!(get::<RequestId>(), None);
            });
        }
    });
}
