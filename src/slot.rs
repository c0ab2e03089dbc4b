//! Where the innermost frame is recorded: the slot backend, chosen at compile
//! time.
//!
//! | enabled features | backend | sound where |
//! |---|---|---|
//! | `std` (default) | a `const` thread-local per thread | everywhere `std` runs |
//! | `custom-slot` without `std` | the binary's [`Slot`], via [`set_slot!`](crate::set_slot) | as its `unsafe impl` promises |
//! | `critical-section` without the two above | one global cell behind `critical_section::with` | single-core targets |
//!
//! Features are additive, so the most capable backend wins: `std` over the
//! others, and `custom-slot` over `critical-section` (a binary that brings its
//! own slot, say one per core, must not be overruled by a dependency that
//! merely asked for `critical-section`).

#[cfg(feature = "custom-slot")]
use crate::FramePtr;

/// The name of the slot backend this build selected: `"thread-local"`,
/// `"custom"` or `"critical-section"`. Handy in logs and benchmark output.
///
/// # Examples
///
/// ```
/// // With the default `std` feature:
/// assert_eq!(async_local_storage::slot::BACKEND, "thread-local");
/// ```
pub const BACKEND: &str = imp::NAME;

#[cfg(feature = "std")]
#[path = "slot/thread_local.rs"]
pub(crate) mod imp;

#[cfg(all(not(feature = "std"), feature = "custom-slot"))]
#[path = "slot/custom.rs"]
pub(crate) mod imp;

#[cfg(all(
    not(feature = "std"),
    not(feature = "custom-slot"),
    feature = "critical-section"
))]
#[path = "slot/critical_section.rs"]
pub(crate) mod imp;

#[cfg(not(any(feature = "std", feature = "custom-slot", feature = "critical-section")))]
compile_error!(
    "async-local-storage needs a slot backend: enable feature `std` (the default, for hosted \
     targets), `critical-section` (single-core no_std targets) or `custom-slot` (your binary \
     provides the slot with `async_local_storage::set_slot!`)"
);

#[cfg(not(any(feature = "std", feature = "custom-slot", feature = "critical-section")))]
pub(crate) mod imp {
    //! Placeholder so that the `compile_error!` above is the only error.
    use crate::FramePtr;
    pub(crate) const NAME: &str = "none";
    pub(crate) fn get() -> FramePtr {
        FramePtr::NULL
    }
    pub(crate) fn set(_: FramePtr) {}
    pub(crate) fn enter(link: impl FnOnce(FramePtr) -> FramePtr) -> FramePtr {
        link(FramePtr::NULL)
    }
}

/// A slot supplied by the final binary, for platforms this crate does not
/// know: one slot per core on a multi-core MCU, an RTOS task-local word, a
/// per-priority slot for interrupt executors.
///
/// Enable the `custom-slot` feature (and not `std`), implement this trait on
/// a type of yours and register it once, in the final binary, with
/// [`set_slot!`](crate::set_slot). Like the `critical-section` crate, the
/// registration is resolved by the linker: forgetting it is a link error
/// (`undefined symbol: _async_local_storage_slot_get`), registering two is a
/// duplicate-symbol error.
///
/// The slot stores one [`FramePtr`]. The crate calls [`get`](Slot::get) to
/// read it and [`set`](Slot::set) to replace it: twice per poll of a
/// `Scoped` future (enter and leave) plus one `get` to enter, and one `get`
/// per read.
///
/// # Safety
///
/// The crate dereferences the pointer it gets back, so an implementation must
/// guarantee all of the following:
///
/// 1. **Per context.** `get` returns the value most recently passed to `set`
///    *by the same context of execution*, or [`FramePtr::NULL`] if there was
///    none. Two contexts that can run at the same time (threads, cores) or
///    that can be suspended and resumed in any order (preemptive RTOS tasks)
///    must never share a slot.
/// 2. **LIFO nesting.** Contexts that share a slot may only preempt each
///    other in nested fashion: whatever interrupts a context runs to
///    completion before it resumes (interrupt handlers on one core do).
/// 3. **No other writers.** Only this crate calls `set`, and `get`/`set`
///    never call back into this crate.
///
/// # Examples
///
/// A slot for a two-core chip, one cell per core. The `critical_section`
/// mutex only makes the `static` shareable; each core uses its own cell.
///
/// ```ignore
/// use core::cell::Cell;
/// use async_local_storage::{FramePtr, Slot};
/// use critical_section::Mutex;
///
/// static SLOTS: [Mutex<Cell<FramePtr>>; 2] = [
///     Mutex::new(Cell::new(FramePtr::NULL)),
///     Mutex::new(Cell::new(FramePtr::NULL)),
/// ];
///
/// struct PerCore;
///
/// // SAFETY: each core has its own cell (1); on a core, interrupts nest (2);
/// // nothing else touches SLOTS (3).
/// unsafe impl Slot for PerCore {
///     fn get() -> FramePtr {
///         critical_section::with(|cs| SLOTS[my_hal::core_id()].borrow(cs).get())
///     }
///     fn set(top: FramePtr) {
///         critical_section::with(|cs| SLOTS[my_hal::core_id()].borrow(cs).set(top))
///     }
/// }
///
/// async_local_storage::set_slot!(PerCore);
/// ```
///
/// `examples/custom_slot.rs` is a complete program.
#[cfg(feature = "custom-slot")]
#[cfg_attr(docsrs, doc(cfg(feature = "custom-slot")))]
pub unsafe trait Slot {
    /// Returns the value last stored by this context, or [`FramePtr::NULL`].
    fn get() -> FramePtr;
    /// Stores `top` for this context.
    fn set(top: FramePtr);
}

/// Registers the [`Slot`] implementation used by the `custom-slot` backend.
///
/// Call it once, at the top level of the final binary (not in a library).
/// With the `std` feature on, the thread-local slot is used and the
/// registration is ignored.
///
/// # Examples
///
/// ```ignore
/// struct MySlot;
/// unsafe impl async_local_storage::Slot for MySlot {
///     fn get() -> async_local_storage::FramePtr { /* ... */ }
///     fn set(top: async_local_storage::FramePtr) { /* ... */ }
/// }
/// async_local_storage::set_slot!(MySlot);
/// ```
#[cfg(feature = "custom-slot")]
#[cfg_attr(docsrs, doc(cfg(feature = "custom-slot")))]
#[macro_export]
macro_rules! set_slot {
    ($slot:ty) => {
        const _: () = {
            #[no_mangle]
            fn _async_local_storage_slot_get() -> $crate::FramePtr {
                <$slot as $crate::Slot>::get()
            }
            #[no_mangle]
            fn _async_local_storage_slot_set(top: $crate::FramePtr) {
                <$slot as $crate::Slot>::set(top)
            }
        };
    };
}

/// Unit tests of the slot backend this build selected.
#[cfg(all(test, feature = "std"))]
mod tests {
    use super::imp;
    use crate::FramePtr;

    #[test]
    fn starts_empty_on_every_thread() {
        assert!(imp::get().is_null());
        std::thread::spawn(|| assert!(imp::get().is_null()))
            .join()
            .unwrap();
    }

    #[test]
    fn enter_links_then_publishes_and_returns_previous() {
        let mut word = 0u8;
        // SAFETY: test-only token, never dereferenced: the slot is reset
        // before anything could read stores through it.
        let fake = unsafe { FramePtr::from_raw((&mut word as *mut u8).cast()) };
        let mut seen = None;
        let prev = imp::enter(|p| {
            seen = Some(p);
            fake
        });
        assert_eq!(seen, Some(FramePtr::NULL));
        assert!(prev.is_null());
        assert_eq!(imp::get(), fake);
        imp::set(prev);
        assert!(imp::get().is_null());
    }

    #[test]
    fn threads_do_not_share_the_slot() {
        let mut word = 0u8;
        // SAFETY: as above; never dereferenced.
        let fake = unsafe { FramePtr::from_raw((&mut word as *mut u8).cast()) };
        imp::set(fake);
        std::thread::spawn(|| assert!(imp::get().is_null()))
            .join()
            .unwrap();
        assert_eq!(imp::get(), fake);
        imp::set(FramePtr::NULL);
    }
}
