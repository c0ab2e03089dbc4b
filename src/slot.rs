//! Where the innermost frame is recorded: the slot backend, chosen at compile
//! time.
//!
//! | enabled features | backend | sound where |
//! |---|---|---|
//! | `std` (default) | a `const` thread-local per thread | everywhere `std` runs |
//! | `custom-slot` or `critical-section`, without `std` | the slot your final binary registers with [`set_slot!`] | as the binary's `unsafe impl` asserts |
//!
//! Features are additive, so `std` wins whenever any crate in the graph turns
//! it on. Without `std`, no slot is ever chosen for you: the final binary
//! registers one with [`set_slot!`], either its own
//! [`Slot`] (one per core, one per RTOS task, ...) or, with the
//! `critical-section` feature, the ready-made global cell, by asserting its
//! conditions with `unsafe impl` [`CriticalSectionSlot`]:
//!
//! ```ignore
//! struct AppSlot;
//! // SAFETY: one core; interrupts nest; code that preempts a scope reads stores only inside `isolate`.
//! unsafe impl async_local_storage::slot::CriticalSectionSlot for AppSlot {}
//! async_local_storage::set_slot!(AppSlot);
//! ```
//!
//! A library can turn features on, but it cannot write that `unsafe impl`
//! for the binary: a program that ends up without `std` and without a
//! registration fails to link, the linker reporting `undefined symbol:
//! _async_local_storage_0_1_slot_get` (and `_set`). The fix: register a
//! slot with [`set_slot!`] in the final binary, or, on a
//! hosted target, enable `std`. With none of the three features, the build
//! stops with a `compile_error!` that names them. [`BACKEND`] says which
//! backend a build selected.
//!
//! # Soundness
//!
//! A slot holds a pointer to the innermost frame, and reads follow it, so a
//! slot must never be shared by two contexts that run at the same time.
//!
//! * **`std`**: each thread has its own slot, and a thread's polls nest LIFO
//!   on its stack. Sound everywhere.
//! * **registered**: the conditions are the [`Slot`] trait's `# Safety`
//!   section (for the ready-made global cell, [`CriticalSectionSlot`]'s);
//!   the final binary asserts them with `unsafe impl`.
//!
//! Under those conditions, safe code cannot cause undefined behaviour.
//!
//! # Cost
//!
//! Per `Scoped` layer, a poll (or the drop) enters the frame and leaves it;
//! the drop also reads the slot once more as it leaves, to check that
//! nothing inside it was torn down (see `std::process::exit` in
//! RELIABILITY.md). Each read loads the slot once and then walks frames
//! without touching it.
//!
//! | backend | enter | leave | read |
//! |---|---|---|---|
//! | `std` | 1 TLS load + 1 store | 1 TLS store | 1 TLS load |
//! | registered | `Slot::get` + `Slot::set` | `Slot::set` | `Slot::get` |
//! | registered [`CriticalSectionSlot`] | 2 critical sections | 1 critical section | 1 critical section |
//!
//! A registered slot is reached through a symbol resolved at link time (a
//! call, inlined only with cross-crate LTO). Under [`CriticalSectionSlot`],
//! polling a future with one store costs three critical sections, plus one
//! per read inside it, on every target (`thumbv6m` included, which has no
//! compare-and-swap).
//!

// Links to the items of features that are off in this build go to docs.rs
// (rather than brackets around a name that resolves to nothing).
#![cfg_attr(feature = "custom-slot", doc = "[`set_slot!`]: crate::set_slot")]
#![cfg_attr(
    not(feature = "custom-slot"),
    doc = "[`set_slot!`]: https://docs.rs/async-local-storage/latest/async_local_storage/macro.set_slot.html"
)]
#![cfg_attr(feature = "custom-slot", doc = "[`Slot`]: Slot")]
#![cfg_attr(
    not(feature = "custom-slot"),
    doc = "[`Slot`]: https://docs.rs/async-local-storage/latest/async_local_storage/slot/trait.Slot.html"
)]
#![cfg_attr(
    feature = "critical-section",
    doc = "[`CriticalSectionSlot`]: CriticalSectionSlot"
)]
#![cfg_attr(
    not(feature = "critical-section"),
    doc = "[`CriticalSectionSlot`]: https://docs.rs/async-local-storage/latest/async_local_storage/slot/trait.CriticalSectionSlot.html"
)]

#[cfg(feature = "custom-slot")]
use crate::FramePtr;

/// The name of the slot backend this build selected: `"thread-local"`
/// (`std`) or `"custom"` (a slot the final binary registers with
/// [`set_slot!`], the `critical-section` one included).
/// Handy in logs and benchmark output.
///
/// # Examples
///
/// ```
/// // With the default `std` feature:
/// assert_eq!(async_local_storage::slot::BACKEND, "thread-local");
/// ```
///
#[cfg_attr(feature = "custom-slot", doc = "[`set_slot!`]: crate::set_slot")]
#[cfg_attr(
    not(feature = "custom-slot"),
    doc = "[`set_slot!`]: https://docs.rs/async-local-storage/latest/async_local_storage/macro.set_slot.html"
)]
pub const BACKEND: &str = imp::NAME;

#[cfg(feature = "std")]
#[path = "slot/thread_local.rs"]
pub(crate) mod imp;

// `critical-section` implies `custom-slot`: its slot is registered too.
#[cfg(all(not(feature = "std"), feature = "custom-slot"))]
#[path = "slot/custom.rs"]
pub(crate) mod imp;

#[cfg(feature = "critical-section")]
#[path = "slot/critical_section.rs"]
mod critical_section;
#[cfg(feature = "critical-section")]
#[cfg_attr(docsrs, doc(cfg(feature = "critical-section")))]
pub use critical_section::CriticalSectionSlot;

#[cfg(not(any(feature = "std", feature = "custom-slot", feature = "critical-section")))]
compile_error!(
    "async-local-storage needs a slot backend: enable feature `std` (the default, for hosted \
     targets), or, for no_std, `critical-section` (then register the global slot in your binary: \
     `unsafe impl async_local_storage::slot::CriticalSectionSlot for AppSlot {}` and \
     `async_local_storage::set_slot!(AppSlot);`) or `custom-slot` (your binary registers its own \
     `Slot` with `async_local_storage::set_slot!`)"
);

#[cfg(not(any(feature = "std", feature = "custom-slot")))]
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
/// slot per priority level for interrupt executors.
///
/// Enable the `custom-slot` feature (and not `std`), implement this trait on
/// a type of yours and register it once, in the final binary, with
/// [`set_slot!`](crate::set_slot). As with the `critical-section` crate's
/// `set_impl!`, the registration is resolved by the linker: forgetting it is
/// a link error (`undefined symbol: _async_local_storage_0_1_slot_get`),
/// registering two is a duplicate-symbol error. The symbols carry the
/// crate's semver-compatible version (`0_1` for 0.1.x), so each major
/// version in a dependency graph needs, and gets, its own registration: two
/// versions can never walk each other's frames.
///
/// With the `critical-section` feature, every type that implements
/// [`CriticalSectionSlot`] is a `Slot`:
/// the ready-made global cell for single-core targets.
///
/// The slot stores one [`FramePtr`]. The crate calls [`get`](Slot::get) to
/// read it and [`set`](Slot::set) to replace it: entering a scope (each
/// `Scoped` layer, on every poll and on drop) is one `get` and one `set`,
/// leaving it one `set` (after a drop, one more `get` first), and every read
/// ([`get`](crate::get), [`with`](crate::with), ...) one `get`.
///
/// # Safety
///
/// The crate dereferences the pointer it gets back, so the implementation,
/// together with the program that registers it, must guarantee all of the
/// following:
///
/// 1. **Per context.** `get` returns the value most recently passed to `set`
///    *by the same context of execution*, or [`FramePtr::NULL`] if there was
///    none. Two contexts that can run at the same time (threads, cores) or
///    that can be suspended and resumed in any order (preemptive RTOS tasks)
///    must never share a slot.
/// 2. **LIFO nesting, no reads across preemption.** Contexts that share a
///    slot may only preempt each other in nested fashion: whatever
///    interrupts a context runs to completion before it resumes (interrupt
///    handlers on one core do). Moreover, while a context is inside a scope,
///    a context that preempts it through the same slot must not poll or
///    drop [`Scoped`](crate::Scoped) futures (a drop enters the frame, so
///    that destructors see its store) or read stores except inside
///    [`isolate`](crate::isolate) or
///    [`.isolated()`](crate::WithStore::isolated): otherwise it could reach a store of the
///    preempted code, which need not be `Sync`. One slot per priority level
///    lifts this restriction.
/// 3. **No other writers, no re-entry, no unwinding.** Only this crate calls
///    `set`. `get` and `set` never call into this crate and never unwind (a
///    `set` that stored its value and then panicked would leave a frame
///    published after its owner is gone).
/// 4. **Visibility.** What the context wrote before calling `set` (the
///    frame the new value points to) is visible to every later `get` in that
///    context or in a context that preempts it. Program order gives this
///    within a thread; towards interrupt handlers, use critical sections, or
///    atomics with `compiler_fence(Release)` before the store and
///    `compiler_fence(Acquire)` after the load.
///
/// # Examples
///
/// A slot for a two-core chip, one word per core and no critical section:
/// only its own core touches a slot, so `Relaxed` atomics suffice, and the
/// compiler fences order the slot against the frame it points to for
/// interrupt handlers on the same core. `AtomicPtr` load and store exist on
/// every Cortex-M, `thumbv6m` included.
///
/// ```
/// use core::ptr;
/// use core::sync::atomic::{compiler_fence, AtomicPtr, Ordering};
///
/// use async_local_storage::{FramePtr, Slot};
/// # mod my_hal { pub fn core_id() -> usize { 0 } }
///
/// static SLOTS: [AtomicPtr<()>; 2] = [AtomicPtr::new(ptr::null_mut()), AtomicPtr::new(ptr::null_mut())];
///
/// struct PerCore;
///
/// // SAFETY: (1) each core has its own word; (2) on a core, interrupts nest,
/// // and this program polls and reads stores in thread mode only; (3)
/// // nothing else touches SLOTS, and neither function can panic (core_id
/// // reads a register); (4) the fences.
/// unsafe impl Slot for PerCore {
///     fn get() -> FramePtr {
///         let raw = SLOTS[my_hal::core_id()].load(Ordering::Relaxed);
///         compiler_fence(Ordering::Acquire);
///         // SAFETY: null, or stored by `set` from a `FramePtr` the crate
///         // handed to this slot.
///         unsafe { FramePtr::from_raw(raw) }
///     }
///     unsafe fn set(top: FramePtr) {
///         compiler_fence(Ordering::Release);
///         SLOTS[my_hal::core_id()].store(top.into_raw(), Ordering::Relaxed);
///     }
/// }
///
/// async_local_storage::set_slot!(PerCore);
/// ```
///
/// `examples/custom_slot.rs` is a complete program (two simulated cores on
/// the host), and `tests/custom_slot.rs` tests a thread-local slot.
///
#[cfg_attr(
    feature = "critical-section",
    doc = "[`CriticalSectionSlot`]: CriticalSectionSlot"
)]
#[cfg_attr(
    not(feature = "critical-section"),
    doc = "[`CriticalSectionSlot`]: https://docs.rs/async-local-storage/latest/async_local_storage/slot/trait.CriticalSectionSlot.html"
)]
#[cfg(feature = "custom-slot")]
#[cfg_attr(docsrs, doc(cfg(feature = "custom-slot")))]
pub unsafe trait Slot {
    /// Returns the value last stored by this context, or [`FramePtr::NULL`].
    fn get() -> FramePtr;
    /// Stores `top` for this context.
    ///
    /// # Safety
    ///
    /// Only this crate calls it (condition 3 above), with a frame that stays
    /// alive for as long as it is stored. Called with any other value (a
    /// `FramePtr` kept from an earlier [`get`](Slot::get), whose frame has
    /// since gone away), later reads would follow a dangling pointer: so it
    /// is `unsafe` to call, and implementations write `unsafe fn set`.
    unsafe fn set(top: FramePtr);
}

/// Registers the [`Slot`] used when `std` is off (features `custom-slot` and
/// `critical-section`).
///
/// Call it once, at the top level of the final binary (not in a library):
/// it defines the two functions the backend calls, under the versioned
/// symbols `_async_local_storage_0_1_slot_get` and `_set`. Forgetting it is a
/// link error naming those symbols; calling it twice, a duplicate-symbol
/// error. With the `std` feature on, the thread-local slot is used and the
/// registration is ignored.
///
/// # Examples
///
/// With the `critical-section` feature, the ready-made global cell, for a
/// single-core target (see [`CriticalSectionSlot`]
/// for the conditions the `unsafe impl` asserts):
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
/// Your own slot: here one for a single-core chip that costs no critical
/// section at all. Like the global cell, it is sound only under its
/// conditions: one core, and stores polled and read at one priority level.
///
/// ```
/// use core::sync::atomic::{compiler_fence, AtomicPtr, Ordering};
///
/// use async_local_storage::{FramePtr, Slot};
///
/// static TOP: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
///
/// struct SingleCore;
///
/// // SAFETY: (1) a single-core target, so one context runs at a time;
/// // (2) interrupts nest, and stores are only used in thread mode;
/// // (3) nothing else touches TOP, and nothing here can panic; (4) the fences.
/// unsafe impl Slot for SingleCore {
///     fn get() -> FramePtr {
///         let raw = TOP.load(Ordering::Relaxed);
///         compiler_fence(Ordering::Acquire);
///         // SAFETY: null, or stored by `set` from a `FramePtr` of this slot.
///         unsafe { FramePtr::from_raw(raw) }
///     }
///     unsafe fn set(top: FramePtr) {
///         compiler_fence(Ordering::Release);
///         TOP.store(top.into_raw(), Ordering::Relaxed);
///     }
/// }
///
/// async_local_storage::set_slot!(SingleCore);
/// ```
///
#[cfg_attr(
    feature = "critical-section",
    doc = "[`CriticalSectionSlot`]: crate::slot::CriticalSectionSlot"
)]
#[cfg_attr(
    not(feature = "critical-section"),
    doc = "[`CriticalSectionSlot`]: https://docs.rs/async-local-storage/latest/async_local_storage/slot/trait.CriticalSectionSlot.html"
)]
#[cfg(feature = "custom-slot")]
#[cfg_attr(docsrs, doc(cfg(feature = "custom-slot")))]
#[macro_export]
macro_rules! set_slot {
    ($slot:ty) => {
        const _: () = {
            // The names carry the crate's semver-compatible version: see `Slot`.
            #[export_name = "_async_local_storage_0_1_slot_get"]
            fn get() -> $crate::FramePtr {
                <$slot as $crate::Slot>::get()
            }
            #[export_name = "_async_local_storage_0_1_slot_set"]
            fn set(top: $crate::FramePtr) {
                // SAFETY: only the crate's slot backend calls this symbol,
                // with the frames it publishes: the contract of `Slot::set`.
                unsafe { <$slot as $crate::Slot>::set(top) }
            }
        };
    };
}

/// The version in the registration symbols (`set_slot!`, `slot/custom.rs`)
/// must follow the crate's semver-compatible version: this fails when the
/// version changes and the symbols do not.
#[cfg(test)]
#[test]
fn slot_symbols_carry_the_crate_version() {
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        version.starts_with("0.1."),
        "bump `_async_local_storage_0_1_slot_*` in set_slot! and slot/custom.rs to {version}"
    );
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
