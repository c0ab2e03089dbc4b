//! The `std` slot: one `const`-initialised thread-local cell per thread.
//!
//! Sound on every hosted target: a thread's polls nest LIFO on its own stack,
//! and no other thread can see its slot. The cell has no destructor and needs
//! no lazy initialisation, so every access is a plain TLS load or store; it
//! stays usable while other thread-locals are being destroyed.

use core::cell::Cell;

use crate::FramePtr;

pub(crate) const NAME: &str = "thread-local";

std::thread_local! {
    static TOP: Cell<FramePtr> = const { Cell::new(FramePtr::NULL) };
}

#[inline]
pub(crate) fn get() -> FramePtr {
    TOP.with(Cell::get)
}

#[inline]
pub(crate) fn set(top: FramePtr) {
    TOP.with(|cell| cell.set(top));
}

#[inline]
pub(crate) fn enter(link: impl FnOnce(FramePtr) -> FramePtr) -> FramePtr {
    TOP.with(|cell| {
        let prev = cell.get();
        cell.set(link(prev));
        prev
    })
}
