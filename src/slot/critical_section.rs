//! The `critical-section` slot: one global cell for the whole program,
//! guarded by the [`critical-section`](https://docs.rs/critical-section)
//! crate.
//!
//! # When it is sound
//!
//! One global slot is right when all of the following hold:
//!
//! 1. **One core.** At most one context runs at a time. Two cores (or two
//!    threads) would share the slot: a read on one could follow a pointer
//!    into a frame the other is about to pop. On a multi-core chip, use a
//!    [custom slot](crate::Slot) with one slot per core, even if the chip's
//!    `critical-section` implementation is a multi-core spinlock: a critical
//!    section makes each access atomic, not the slot per-core. On a hosted
//!    target, use `std`.
//! 2. **LIFO nesting.** Whatever preempts code that is inside a scope runs to
//!    completion before that code resumes, so it leaves the slot as it found
//!    it. Interrupt handlers on one core behave so; a preemptive RTOS that
//!    switches between tasks does not (give each task its own slot with a
//!    custom slot instead).
//! 3. **Stores are read at one priority level.** Code that preempts a scope
//!    (an interrupt handler, an `InterruptExecutor`'s tasks) and then polls a
//!    `Scoped` future or calls [`get`](crate::get)/[`with`](crate::with) can
//!    walk into the frames of the code it preempted, and obtain a `&T` to a
//!    store that code may be using at that very moment. Stores need not be
//!    `Sync` (a `Cell`, an `Rc`), so that would be a data race. Either poll
//!    and read stores only at one priority (for example one thread-mode
//!    executor, with interrupt handlers that never touch this crate), or
//!    isolate everything that runs at a higher priority: wrap each future it
//!    polls in `.isolated()` and each synchronous read in `isolate(..)` (no
//!    allocation), so its reads stop at its own frames; or give each
//!    priority level its own custom slot.
//!
//! Within those conditions safe code cannot cause undefined behaviour: a
//! frame is only published while its owner is blocked in a poll further up
//! the same stack, and every context that can observe it either is that
//! owner or has been isolated from it.
//!
//! # Cost
//!
//! Critical sections per operation, whatever the target (`thumbv6m`
//! included, which has no compare-and-swap):
//!
//! | operation | critical sections |
//! |---|---|
//! | entering a scope (each `Scoped` layer, on every poll and on drop) | 1: read the top, link the frame, publish it |
//! | leaving it | 1: put the previous top back |
//! | a read (`get`, `with`, `is_set`) | 1: load the top; the walk itself needs none, because nothing can unlink a frame below the reader on the same stack |
//!
//! So a poll of a future with one store costs 2 critical sections plus 1 per
//! read inside it. On a Cortex-M with `critical-section-single-core` each is
//! a `cpsid i` / restore pair: a few cycles, but interrupts are masked
//! meanwhile (never for longer than one pointer load or store).

use core::cell::Cell;

use critical_section::Mutex;

use crate::FramePtr;

pub(crate) const NAME: &str = "critical-section";

static TOP: Mutex<Cell<FramePtr>> = Mutex::new(Cell::new(FramePtr::NULL));

#[inline]
pub(crate) fn get() -> FramePtr {
    critical_section::with(|cs| TOP.borrow(cs).get())
}

#[inline]
pub(crate) fn set(top: FramePtr) {
    critical_section::with(|cs| TOP.borrow(cs).set(top));
}

#[inline]
pub(crate) fn enter(link: impl FnOnce(FramePtr) -> FramePtr) -> FramePtr {
    critical_section::with(|cs| {
        let cell = TOP.borrow(cs);
        let prev = cell.get();
        cell.set(link(prev));
        prev
    })
}
