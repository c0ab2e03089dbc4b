//! The registered backend (`custom-slot`, `critical-section`): the final
//! binary provides the slot with [`set_slot!`](crate::set_slot).
//!
//! Sound exactly when the registered [`Slot`](crate::Slot) meets the
//! requirements of its `# Safety` section, which the binary asserts by
//! writing `unsafe impl Slot`.
//!
//! Cost: entering a scope is one `Slot::get` and one `Slot::set`, leaving it
//! one `Slot::set`, and a read one `Slot::get`. Each is a call through a
//! symbol resolved at link time (inlined only with cross-crate LTO), plus
//! whatever the slot does: with an atomic word per core and compiler fences,
//! a plain load or store and no critical section.

use crate::FramePtr;

pub(crate) const NAME: &str = "custom";

// Defined by `set_slot!` in the final binary. Versioned (`0_1`): see `Slot`.
//
// A link error "undefined symbol: _async_local_storage_0_1_slot_get" (or
// `_set`) pointing here means the final binary registered no slot: call
// `async_local_storage::set_slot!` there (see the `slot` module docs), or,
// on a hosted target, enable the crate's `std` feature.
extern "Rust" {
    fn _async_local_storage_0_1_slot_get() -> FramePtr;
    fn _async_local_storage_0_1_slot_set(top: FramePtr);
}

#[inline]
pub(crate) fn get() -> FramePtr {
    // SAFETY: the symbol is defined by `set_slot!`, whose `Slot` impl the
    // user declared sound (`unsafe impl Slot`); it takes and returns plain
    // values.
    unsafe { _async_local_storage_0_1_slot_get() }
}

#[inline]
pub(crate) fn set(top: FramePtr) {
    // SAFETY: as in `get`.
    unsafe { _async_local_storage_0_1_slot_set(top) }
}

#[inline]
pub(crate) fn enter(link: impl FnOnce(FramePtr) -> FramePtr) -> FramePtr {
    // Reading and writing separately is enough: anything that preempts us
    // between the two nests LIFO (a `Slot` requirement) and so leaves the
    // slot as it found it. `link` writes the frame's parent link before `set`
    // publishes the frame, and the slot orders the two (requirement 4).
    let prev = get();
    set(link(prev));
    prev
}
