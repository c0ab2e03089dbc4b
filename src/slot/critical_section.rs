//! The `critical-section` slot: one global cell for the whole program.
//!
//! Sound where every poll and every read happens in one execution context
//! whose nested activations are LIFO: a single-core microcontroller, with or
//! without interrupt-driven executors (an interrupt runs to completion before
//! the code it preempted resumes, so it restores the slot before that code
//! looks again). Not sound where two threads or cores poll stored futures at
//! the same time: use `std` there, or a per-core [`custom slot`](crate::Slot).
//!
//! Cost: one critical section to enter a scope (read the top, link the frame,
//! publish it), one to leave it, and one per read (to load the top; the walk
//! itself needs none, because nothing can unlink a frame that is below the
//! reader on the same stack).

use core::cell::Cell;

use critical_section::Mutex;

use crate::FramePtr;

pub(crate) const NAME: &str = "critical-section";

static TOP: Mutex<Cell<FramePtr>> = Mutex::new(Cell::new(FramePtr::NULL));

pub(crate) fn get() -> FramePtr {
    critical_section::with(|cs| TOP.borrow(cs).get())
}

pub(crate) fn set(top: FramePtr) {
    critical_section::with(|cs| TOP.borrow(cs).set(top));
}

pub(crate) fn enter(link: impl FnOnce(FramePtr) -> FramePtr) -> FramePtr {
    critical_section::with(|cs| {
        let cell = TOP.borrow(cs);
        let prev = cell.get();
        cell.set(link(prev));
        prev
    })
}
