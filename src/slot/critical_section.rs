//! The ready-made global slot of the `critical-section` feature: one cell for
//! the whole program, guarded by the
//! [`critical-section`](https://docs.rs/critical-section) crate, which the
//! final binary registers by asserting [`CriticalSectionSlot`].

use core::cell::Cell;

use critical_section::Mutex;

use crate::{FramePtr, Slot};

/// The global critical-section cell as a [`Slot`], for single-core targets;
/// implement it (with `unsafe impl`, in the final binary) on a type of yours
/// and register that type with [`set_slot!`](crate::set_slot).
///
/// The feature alone selects nothing: a library that turns
/// `critical-section` on cannot hand a program a slot shared by several
/// threads or cores. Only the final binary knows whether the conditions
/// below hold, so only it can assert them, and it has to write `unsafe` to
/// do so. A binary that does not fails to link (`undefined symbol:
/// _async_local_storage_0_1_slot_get`).
///
/// Every critical section is `critical_section::with`, so the binary also
/// needs a `critical-section` implementation (for example `cortex-m`'s
/// `critical-section-single-core` feature).
///
/// # Safety
///
/// By implementing this trait the final binary asserts that one global slot
/// is sound in this program:
///
/// 1. **One core.** At most one context runs at a time. Two cores (or two
///    threads) would share the slot: a read on one could follow a pointer
///    into a frame the other is about to pop. A critical section that is a
///    multi-core spinlock makes each access atomic, not the slot per core:
///    on a multi-core chip, implement [`Slot`] with one slot per core
///    instead. On a hosted target, use the `std` feature.
/// 2. **LIFO nesting.** Whatever preempts code that is inside a scope runs to
///    completion before that code resumes, so it leaves the slot as it found
///    it. Interrupt handlers on one core behave so; a preemptive RTOS that
///    switches between tasks does not (give each task its own [`Slot`]).
/// 3. **Stores are read at one priority level, or isolated.** Code that
///    preempts a scope (an interrupt handler, an `InterruptExecutor`'s tasks)
///    and then polls or drops a `Scoped` future or calls [`get`](crate::get) /
///    [`with`](crate::with) could walk into the frames of the code it
///    preempted and obtain a `&T` to a store that code is using at that very
///    moment; stores need not be `Sync`, so that would be a data race.
///    Either poll and read stores at one priority (one thread-mode executor,
///    interrupt handlers that never touch this crate), or wrap everything
///    that runs at a higher priority in [`.isolated()`](crate::WithStore::isolated)
///    (futures) and [`isolate(..)`](crate::isolate) (synchronous reads), so
///    that its reads stop at its own frames.
///
/// # Examples
///
/// The three lines of a single-core firmware (built with
/// `default-features = false, features = ["critical-section"]`):
///
/// ```ignore
/// struct AppSlot;
///
/// // SAFETY: one core; interrupt handlers run to completion; code that
/// // preempts a scope reads stores only inside `isolate` / `.isolated()`.
/// unsafe impl async_local_storage::slot::CriticalSectionSlot for AppSlot {}
///
/// async_local_storage::set_slot!(AppSlot);
/// ```
///
/// # Cost
///
/// | operation | critical sections |
/// |---|---|
/// | entering a scope (each `Scoped` layer, on every poll and on drop) | 2: read the top; link the frame and publish it |
/// | leaving it | 1: put the previous top back |
/// | a read (`get`, `with`, `is_set`) | 1: load the top; the walk itself needs none, because nothing can unlink a frame below the reader on the same stack |
///
/// On a Cortex-M with `critical-section-single-core` each is a `cpsid i` /
/// restore pair: a few cycles, with interrupts masked for no longer than one
/// pointer load or store.
pub unsafe trait CriticalSectionSlot {}

/// The one global cell.
static TOP: Mutex<Cell<FramePtr>> = Mutex::new(Cell::new(FramePtr::NULL));

// SAFETY: (1)-(3) of `Slot` are what `CriticalSectionSlot`'s implementer
// asserted: one core, LIFO preemption, stores read at one priority level or
// isolated; only this crate calls `set`, and neither function calls into the
// crate or unwinds. (4) every access is inside a critical section, which
// orders it against the frame it publishes, for interrupt handlers too.
unsafe impl<S: CriticalSectionSlot> Slot for S {
    #[inline]
    fn get() -> FramePtr {
        critical_section::with(|cs| TOP.borrow(cs).get())
    }

    #[inline]
    unsafe fn set(top: FramePtr) {
        critical_section::with(|cs| TOP.borrow(cs).set(top));
    }
}
