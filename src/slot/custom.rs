//! The `custom-slot` backend: the final binary provides the slot with
//! [`set_slot!`](crate::set_slot).

use crate::FramePtr;

pub(crate) const NAME: &str = "custom";

extern "Rust" {
    fn _async_local_storage_slot_get() -> FramePtr;
    fn _async_local_storage_slot_set(top: FramePtr);
}

pub(crate) fn get() -> FramePtr {
    // SAFETY: the symbol is defined by `set_slot!`, whose `Slot` impl the
    // user declared sound (`unsafe impl Slot`); it takes and returns plain
    // values.
    unsafe { _async_local_storage_slot_get() }
}

pub(crate) fn set(top: FramePtr) {
    // SAFETY: as in `get`.
    unsafe { _async_local_storage_slot_set(top) }
}

pub(crate) fn enter(link: impl FnOnce(FramePtr) -> FramePtr) -> FramePtr {
    // Reading and writing separately is enough: anything that preempts us
    // between the two nests LIFO (a `Slot` requirement) and so leaves the
    // slot as it found it.
    let prev = get();
    set(link(prev));
    prev
}
