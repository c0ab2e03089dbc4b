//! A slot supplied by the final binary: one slot per core on a dual-core
//! microcontroller (think RP2040), simulated on the host with one thread per
//! "core".
//!
//! ```text
//! cargo run --no-default-features --features custom-slot --example custom_slot
//! ```
//!
//! The built-in `critical-section` backend keeps a single global slot, which
//! is wrong on two cores: core 1 would see, and follow pointers into, the
//! frames core 0 is polling. A custom slot fixes that by giving each core its
//! own slot, found through the core-id register.
//!
//! It is also cheaper: on one core, everything that shares a slot nests
//! (an interrupt runs to completion before the code it interrupted resumes),
//! so a plain word load/store is enough and no critical section is needed.
//! Entering a scope costs one load and one store, leaving it one store, and a
//! read one load.
//!
//! On a chip, `chip::core_id()` reads the CPUID register (`SIO.CPUID` on the
//! RP2040), each core runs its own executor (for instance an embassy
//! `Executor` per core), and the `Cargo.toml` lines are:
//!
//! ```toml
//! [dependencies]
//! async-local-storage = { version = "0.1", default-features = false, features = ["custom-slot"] }
//! ```

use core::ptr;
use core::sync::atomic::{compiler_fence, AtomicPtr, Ordering};

use async_local_storage::{get, slot, FramePtr, Slot, WithStore};

/// What the chip provides. Here: a simulation in which each "core" is a
/// thread that claimed a core id, and no other thread may touch a slot.
mod chip {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicBool, Ordering};

    pub(crate) const CORES: usize = 2;

    static CLAIMED: [AtomicBool; CORES] = [AtomicBool::new(false), AtomicBool::new(false)];

    std::thread_local! {
        static CORE_ID: Cell<Option<usize>> = const { Cell::new(None) };
    }

    /// The id of the core running this code (the CPUID register).
    ///
    /// Code that is not on a core cannot happen on a chip; in this simulation
    /// it is a bug, and it aborts rather than unwinds, because a `Slot` must
    /// not unwind.
    pub(crate) fn core_id() -> usize {
        CORE_ID.with(Cell::get).unwrap_or_else(|| {
            eprintln!("slot used by a thread that is not a simulated core");
            std::process::abort()
        })
    }

    /// Runs `main` as core `id`, on a thread of its own: what the boot ROM
    /// does when it starts a core.
    pub(crate) fn start_core<'scope, R: Send + 'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        id: usize,
        main: impl FnOnce() -> R + Send + 'scope,
    ) -> std::thread::ScopedJoinHandle<'scope, R> {
        assert!(
            !CLAIMED[id].swap(true, Ordering::SeqCst),
            "core {id} started twice"
        );
        std::thread::Builder::new()
            .name(format!("core{id}"))
            .spawn_scoped(scope, move || {
                CORE_ID.with(|c| c.set(Some(id)));
                main()
            })
            .expect("start core thread")
    }
}

/// One slot per core. Only its own core ever touches a slot, so `Relaxed`
/// is enough between cores; the compiler fences order the slot against the
/// frame it points to for interrupts on the same core.
static SLOTS: [AtomicPtr<()>; chip::CORES] = [
    AtomicPtr::new(ptr::null_mut()),
    AtomicPtr::new(ptr::null_mut()),
];

struct PerCoreSlot;

// SAFETY: the four requirements of `Slot`:
// 1. Per context: a core has its own slot, and a core runs one context at a
//    time (its thread mode, or an interrupt handler that preempted it).
// 2. LIFO, no reads across preemption: on one core, an interrupt handler runs
//    to completion before the code it preempted resumes, and this program
//    polls and reads stores only in thread mode.
// 3. Only the crate calls `set`; neither function calls into the crate, and
//    neither unwinds (`core_id` aborts in the simulation's error case).
// 4. Visibility: the `Release` fence before the store and the `Acquire`
//    fence after the load order the frame's contents against the slot for
//    anything on the same core; no other core reads this slot.
unsafe impl Slot for PerCoreSlot {
    fn get() -> FramePtr {
        let raw = SLOTS[chip::core_id()].load(Ordering::Relaxed);
        compiler_fence(Ordering::Acquire);
        // SAFETY: `raw` is null or was stored by `set` below, from a
        // `FramePtr` the crate gave to this very slot.
        unsafe { FramePtr::from_raw(raw) }
    }

    unsafe fn set(top: FramePtr) {
        compiler_fence(Ordering::Release);
        SLOTS[chip::core_id()].store(top.into_raw(), Ordering::Relaxed);
    }
}

// Once, in the final binary. Forgetting it is a link error; with `std`
// enabled it is ignored (the thread-local slot wins).
async_local_storage::set_slot!(PerCoreSlot);

/// The store: which job a core is working on.
#[derive(Clone, Debug, PartialEq)]
struct Job(&'static str);

/// Deep inside the application: no job parameter, the store says which.
async fn step(n: u32, both_inside: &std::sync::Barrier) -> String {
    // Make the two cores overlap: both are inside their scope right now.
    both_inside.wait();
    let job = get::<Job>().expect("inside the job's scope");
    format!("core {} step {n} of {job:?}", chip::core_id())
}

async fn job(both_inside: &std::sync::Barrier) -> Vec<String> {
    let mut lines = Vec::new();
    for n in 0..3 {
        lines.push(step(n, both_inside).await);
    }
    lines
}

fn main() {
    println!("slot backend: {}", slot::BACKEND);
    let both_inside = std::sync::Barrier::new(chip::CORES);
    let jobs = ["flash-write", "radio-rx"];

    let lines: Vec<Vec<String>> = std::thread::scope(|s| {
        let cores: Vec<_> = jobs
            .iter()
            .enumerate()
            .map(|(id, &name)| {
                let both_inside = &both_inside;
                chip::start_core(s, id, move || {
                    // Each core's executor; on a chip, an embassy `Executor`.
                    futures::executor::block_on(job(both_inside).with_store(Job(name)))
                })
            })
            .collect();
        cores.into_iter().map(|c| c.join().unwrap()).collect()
    });

    for (id, (lines, name)) in lines.iter().zip(jobs).enumerate() {
        for line in lines {
            println!("{line}");
        }
        // Each core saw only its own job, while the other core was inside
        // its own scope.
        let expected: Vec<String> = (0..3)
            .map(|n| format!("core {id} step {n} of Job({name:?})"))
            .collect();
        assert_eq!(lines, &expected);
    }
    if slot::BACKEND == "custom" {
        for (id, slot) in SLOTS.iter().enumerate() {
            assert!(
                slot.load(Ordering::Relaxed).is_null(),
                "core {id} slot restored"
            );
        }
        println!("both per-core slots are empty again");
    }
}
