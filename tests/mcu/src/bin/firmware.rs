//! async-local-storage on a Cortex-M, under QEMU (issue 14).
//!
//! One firmware for two machines: `microbit` (nRF51, Cortex-M0,
//! `thumbv6m-none-eabi`) and `lm3s6965evb` (Cortex-M3, `thumbv7m-none-eabi`).
//! It registers the crate's global critical-section slot as an embedded
//! application would (`unsafe impl CriticalSectionSlot` + `set_slot!`), and
//! checks, at every step, that each context sees only its own stores:
//!
//! * three embassy worker tasks and a consumer task on the thread-mode
//!   `Executor`, each with its own store, interleaving through yields and an
//!   embassy-sync channel; every poll of every task checks its store;
//! * nesting, `without_store`, `exit`, `isolated`, `isolate`, and the drop of
//!   a pending `Scoped` inside its own scope;
//! * SysTick (timer-driven) and a pended interrupt that preempt thread mode
//!   while a task is inside a scope, many times, and read stores only inside
//!   `isolate`; the pended interrupt also preempts SysTick inside *its*
//!   scope;
//! * an embassy `InterruptExecutor` at a higher priority whose tasks have
//!   their own stores (`.isolated()`), woken while thread-mode tasks are
//!   inside scopes;
//! * with the `snapshot` feature (on by default), `Snapshot` (the crate's
//!   `alloc`, an `embedded-alloc` heap) carrying a task's stores into newly
//!   spawned embassy tasks, on both machines.
//!
//! The verdict is the exit status (semihosting); `scripts/mcu.sh` runs it.
//! With the `expect-fail` feature one read that must be `None` is asserted
//! `Some`, and the run must fail.
#![no_std]
#![no_main]

use core::cell::Cell;
use core::fmt;
use core::future::{poll_fn, Future};
use core::pin::pin;
use core::sync::atomic::{AtomicU32, Ordering};
use core::task::{Context, Poll};

use async_local_storage::{exit, get, is_set, isolate, scope, WithStore};
use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::scb::SystemHandler;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{NVIC, SCB};
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::{debug, hprintln};
use critical_section::Mutex;
use embassy_executor::{Executor, InterruptExecutor, SendSpawner, Spawner};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;

// ---- the slot: the final binary asserts the conditions and registers it ----

struct AppSlot;

// SAFETY: one core; interrupt handlers run to completion (they nest LIFO);
// code that preempts a scope (SysTick, the pended interrupt, the
// InterruptExecutor's tasks) reads stores only inside `isolate(..)` /
// `.isolated()`.
unsafe impl async_local_storage::slot::CriticalSectionSlot for AppSlot {}
async_local_storage::set_slot!(AppSlot);

// ---- the machine ----

#[cfg(m3)]
const MACHINE: &str = "lm3s6965evb (Cortex-M3, thumbv7m-none-eabi)";
#[cfg(not(m3))]
const MACHINE: &str = "microbit (nRF51, Cortex-M0, thumbv6m-none-eabi)";
/// CPUID.PARTNO of the core the firmware is built for.
#[cfg(m3)]
const PARTNO: u32 = 0xC23;
#[cfg(not(m3))]
const PARTNO: u32 = 0xC20;

/// Two interrupt lines only software pends here: SWI0/SWI1 on the nRF51,
/// Timer0B/Timer1A on the LM3S6965 (timers this firmware never enables).
/// Without a device crate,
/// cortex-m-rt routes every interrupt to `DefaultHandler`, which dispatches
/// on the number (the same on both machines).
const EXECUTOR_IRQ: u16 = 20;
const READER_IRQ: u16 = 21;

/// Priorities (lower is more urgent; the M0 implements the top two bits).
const EXECUTOR_PRIO: u8 = 0x40;
const READER_PRIO: u8 = 0x80;
const SYSTICK_PRIO: u8 = 0xC0;
/// SysTick period in core cycles: short, so that it hits scopes often.
const SYSTICK_RELOAD: u32 = 4_000;

#[derive(Clone, Copy)]
struct Irq(u16);

// SAFETY: 20 and 21 are valid interrupt numbers on both machines (32
// interrupts on the nRF51, more on the LM3S6965).
unsafe impl InterruptNumber for Irq {
    fn number(self) -> u16 {
        self.0
    }
}

// ---- stores: one newtype per role, since stores are found by type ----

/// The store of a thread-mode task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TaskId(u32);
/// A store nested inside a task's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Inner(u32);
/// The store of an exception handler (SysTick, the pended interrupt).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HandlerId(u32);
/// The store of an `InterruptExecutor` task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct IrqTaskId(u32);

const WORKERS: u32 = 3;
const ROUNDS: u32 = 8;
const CONSUMER: u32 = 10;

// ---- counters ----

struct Counter(Mutex<Cell<u32>>);

impl Counter {
    const fn new() -> Self {
        Counter(Mutex::new(Cell::new(0)))
    }
    /// Adds one and returns the new value.
    fn inc(&self) -> u32 {
        critical_section::with(|cs| {
            let cell = self.0.borrow(cs);
            cell.set(cell.get() + 1);
            cell.get()
        })
    }
    fn get(&self) -> u32 {
        critical_section::with(|cs| self.0.borrow(cs).get())
    }
}

static CHECKS: Counter = Counter::new();
static THREAD_POLLS: Counter = Counter::new();
static SYSTICKS: Counter = Counter::new();
static SYSTICKS_PENDED: Counter = Counter::new();
static SYSTICK_HITS: Counter = Counter::new();
static READER_IRQS: Counter = Counter::new();
static READER_HITS: Counter = Counter::new();
static READER_NESTED_HITS: Counter = Counter::new();
static IRQ_TASK_POLLS: Counter = Counter::new();
static IRQ_TASK_HITS: Counter = Counter::new();
static SWITCHES: Counter = Counter::new();
#[cfg(feature = "snapshot")]
static CARRIED_POLLS: Counter = Counter::new();

/// Above zero while a thread-mode task is being polled inside its own scope. Written
/// by thread mode only (load + store: `thumbv6m` has no atomic add), read by
/// the handlers to count the preemptions that hit inside a scope.
static THREAD_DEPTH: AtomicU32 = AtomicU32::new(0);
/// 1 while SysTick is inside its own scope; written by SysTick only.
static SYSTICK_IN_SCOPE: AtomicU32 = AtomicU32::new(0);

// ---- checks ----

fn fail(what: fmt::Arguments<'_>) -> ! {
    hprintln!("FAIL [{}]: {}", MACHINE, what);
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}

macro_rules! check {
    ($cond:expr, $($what:tt)+) => {
        if $cond {
            CHECKS.inc();
        } else {
            fail(format_args!($($what)+))
        }
    };
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fail(format_args!("panic: {info}"))
}

// ---- helpers ----

/// Pending once (after waking its task), then ready: lets other tasks run.
fn yield_now() -> impl Future<Output = ()> {
    let mut yielded = false;
    poll_fn(move |cx: &mut Context<'_>| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
}

/// Wraps the body of thread-mode task `id`, *inside* its `with_store`:
/// checks the task's store before and after every poll, and marks thread
/// mode as "inside a scope" for the handlers while the body is polled.
async fn in_task<F: Future>(id: u32, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        THREAD_POLLS.inc();
        check!(
            get::<TaskId>() == Some(TaskId(id)),
            "task {id}: own store at poll"
        );
        // Stores of other contexts: never visible here. (`Inner` is set only
        // inside task bodies, so none is visible where a poll starts.)
        check!(
            get::<Inner>().is_none()
                && get::<HandlerId>().is_none()
                && get::<IrqTaskId>().is_none(),
            "task {id}: no other context's store at poll"
        );
        THREAD_DEPTH.store(THREAD_DEPTH.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        let out = fut.as_mut().poll(cx);
        THREAD_DEPTH.store(THREAD_DEPTH.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
        check!(
            get::<TaskId>() == Some(TaskId(id)),
            "task {id}: own store after poll"
        );
        out
    })
    .await
}

/// Spins inside the caller's scope until SysTick has preempted it. If the
/// timer does not fire within the spin budget, pends SysTick by software
/// (counted apart), so the run never depends on emulated timing.
fn wait_for_systick() {
    let before = SYSTICKS.get();
    let mut spins = 0u32;
    while SYSTICKS.get() == before {
        spins += 1;
        if spins == 100_000 {
            SYSTICKS_PENDED.inc();
            SCB::set_pendst();
        }
    }
}

/// Pends the reader interrupt and checks that it ran before this returns.
fn pend_reader() {
    let before = READER_IRQS.get();
    NVIC::pend(Irq(READER_IRQ));
    cortex_m::asm::dsb();
    cortex_m::asm::isb();
    check!(
        READER_IRQS.get() > before,
        "the pended interrupt preempted at once"
    );
}

// ---- exception handlers: they read stores only inside `isolate` ----

#[exception]
fn SysTick() {
    let n = SYSTICKS.inc();
    if THREAD_DEPTH.load(Ordering::Relaxed) > 0 {
        SYSTICK_HITS.inc();
    }
    isolate(|| {
        check!(
            get::<TaskId>().is_none(),
            "SysTick: no task store inside isolate"
        );
        check!(
            get::<Inner>().is_none(),
            "SysTick: no nested task store inside isolate"
        );
        #[cfg(feature = "expect-fail")]
        check!(
            get::<TaskId>().is_some(),
            "expect-fail: SysTick asserted that it sees a task's store inside isolate"
        );
        scope(HandlerId(n), || {
            SYSTICK_IN_SCOPE.store(1, Ordering::Relaxed);
            check!(
                get::<HandlerId>() == Some(HandlerId(n)),
                "SysTick: own store"
            );
            if n.is_multiple_of(4) {
                // The reader interrupt (higher priority) preempts this scope.
                pend_reader();
                check!(
                    get::<HandlerId>() == Some(HandlerId(n)),
                    "SysTick: own store after nesting"
                );
            }
            SYSTICK_IN_SCOPE.store(0, Ordering::Relaxed);
        });
        check!(
            get::<HandlerId>().is_none(),
            "SysTick: store gone after scope"
        );
    });
}

fn reader_interrupt() {
    let n = READER_IRQS.inc();
    if THREAD_DEPTH.load(Ordering::Relaxed) > 0 {
        READER_HITS.inc();
    }
    if SYSTICK_IN_SCOPE.load(Ordering::Relaxed) > 0 {
        READER_NESTED_HITS.inc();
    }
    isolate(|| {
        check!(
            get::<TaskId>().is_none(),
            "pended IRQ: no task store inside isolate"
        );
        check!(
            get::<HandlerId>().is_none(),
            "pended IRQ: no SysTick store inside isolate"
        );
        let own = HandlerId(1_000_000 + n);
        scope(own, || {
            check!(get::<HandlerId>() == Some(own), "pended IRQ: own store");
        });
    });
}

static IRQ_EXECUTOR: InterruptExecutor = InterruptExecutor::new();

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    match irqn {
        // SAFETY: called from the executor's interrupt handler only, after
        // `start` (the interrupt is unmasked by `start`).
        n if n == EXECUTOR_IRQ as i16 => unsafe { IRQ_EXECUTOR.on_interrupt() },
        n if n == READER_IRQ as i16 => reader_interrupt(),
        n => fail(format_args!("unexpected exception or interrupt {n}")),
    }
}

// ---- channels ----

/// Worker → consumer: (worker id, round). Capacity 1, so senders wait.
static LOG: Channel<CriticalSectionRawMutex, (u32, u32), 1> = Channel::new();
/// Worker → InterruptExecutor task `k`, in `REQUESTS[k]`: (worker id, value).
/// One channel per receiving task: an embassy-sync channel keeps one
/// receiver waker, and two receivers waiting on one channel would wake each
/// other forever (at interrupt priority, starving thread mode).
static REQUESTS: [Channel<CriticalSectionRawMutex, (u32, u32), 2>; 2] =
    [Channel::new(), Channel::new()];
/// InterruptExecutor task → worker `i`, in `REPLIES[i - 1]`.
static REPLIES: [Channel<CriticalSectionRawMutex, u32, 1>; WORKERS as usize] =
    [Channel::new(), Channel::new(), Channel::new()];
/// Task finished: its id.
static DONE: Channel<CriticalSectionRawMutex, u32, 4> = Channel::new();

// ---- thread-mode tasks ----

/// The API cases, inside task `id`'s scope.
async fn api_checks(id: u32) {
    let me = Some(TaskId(id));

    // Nesting: an inner store of the same type shadows, then the outer is back.
    let inner = async {
        yield_now().await;
        get::<TaskId>()
    }
    .with_store(TaskId(id + 50))
    .await;
    check!(
        inner == Some(TaskId(id + 50)),
        "task {id}: nested store shadows"
    );
    check!(
        get::<TaskId>() == me,
        "task {id}: outer store back after nesting"
    );
    scope(Inner(1), || {
        scope(Inner(2), || {
            check!(
                get::<Inner>() == Some(Inner(2)),
                "task {id}: innermost scope"
            );
            check!(
                get::<TaskId>() == me,
                "task {id}: other types pass through scopes"
            );
        });
        check!(
            get::<Inner>() == Some(Inner(1)),
            "task {id}: scope restored"
        );
    });

    // without_store / exit hide one type, nothing else.
    let (task, inner) = async {
        yield_now().await;
        (get::<TaskId>(), get::<Inner>())
    }
    .without_store::<TaskId>()
    .with_store(Inner(3))
    .await;
    check!(task.is_none(), "task {id}: without_store hides its type");
    check!(
        inner == Some(Inner(3)),
        "task {id}: without_store hides nothing else"
    );
    check!(
        exit::<TaskId, _>(get::<TaskId>).is_none(),
        "task {id}: exit hides its type"
    );

    // isolated / isolate hide everything from outside, not what is set inside.
    let (task, inner) = async {
        yield_now().await;
        (get::<TaskId>(), scope(Inner(4), get::<Inner>))
    }
    .isolated()
    .await;
    check!(task.is_none(), "task {id}: isolated hides the task's store");
    check!(
        inner == Some(Inner(4)),
        "task {id}: stores set inside isolated are visible"
    );
    check!(
        isolate(|| !is_set::<TaskId>()),
        "task {id}: isolate hides the task's store"
    );

    // Drop of a pending `Scoped`: its store is visible while it is dropped.
    let seen = Cell::new(None);
    {
        struct ReadOnDrop<'a>(&'a Cell<Option<Inner>>);
        impl Drop for ReadOnDrop<'_> {
            fn drop(&mut self) {
                self.0.set(get::<Inner>());
            }
        }
        let seen = &seen;
        let mut pending = pin!(async move {
            let _guard = ReadOnDrop(seen);
            core::future::pending::<()>().await;
        }
        .with_store(Inner(5)));
        poll_fn(|cx| {
            check!(
                pending.as_mut().poll(cx).is_pending(),
                "task {id}: future is pending"
            );
            Poll::Ready(())
        })
        .await;
        // `pending` is dropped here, still pending.
    }
    check!(
        seen.get() == Some(Inner(5)),
        "task {id}: a pending Scoped is dropped inside its scope"
    );
    check!(
        get::<Inner>().is_none(),
        "task {id}: and leaves nothing behind"
    );
    check!(
        get::<TaskId>() == me,
        "task {id}: own store after the API cases"
    );
}

async fn work(id: u32, #[allow(unused_variables)] spawner: Spawner) {
    api_checks(id).await;
    for round in 0..ROUNDS {
        yield_now().await;

        // Nested store across an await.
        let nested = Inner(id * 100 + round);
        async {
            yield_now().await;
            check!(
                get::<Inner>() == Some(nested),
                "task {id}: nested store across await"
            );
            check!(
                get::<TaskId>() == Some(TaskId(id)),
                "task {id}: outer store in nested"
            );
        }
        .with_store(nested)
        .await;
        check!(get::<Inner>().is_none(), "task {id}: nested store gone");

        // Through the channel: waits while the consumer is busy.
        LOG.send((id, round)).await;

        // SysTick preempts us here, inside this task's scope (and a nested one).
        scope(Inner(7), || {
            wait_for_systick();
            check!(
                get::<Inner>() == Some(Inner(7)),
                "task {id}: own scope after SysTick"
            );
            // The pended interrupt preempts us inside the scope too.
            pend_reader();
            check!(
                get::<TaskId>() == Some(TaskId(id)),
                "task {id}: own store after IRQ"
            );
        });

        // The InterruptExecutor's task is woken by this send and preempts us.
        let value = id * 1000 + round;
        REQUESTS[(id % 2) as usize].send((id, value)).await;
        let reply = REPLIES[id as usize - 1].receive().await;
        check!(
            reply == value * 2 + 1,
            "task {id}: reply from the interrupt executor"
        );
    }

    #[cfg(feature = "snapshot")]
    carry_snapshot(id, spawner).await;
}

#[embassy_executor::task(pool_size = 3)]
async fn worker(id: u32, spawner: Spawner) {
    check!(
        get::<TaskId>().is_none(),
        "task {id}: a new task starts with no store"
    );
    in_task(id, work(id, spawner)).with_store(TaskId(id)).await;
    check!(
        get::<TaskId>().is_none(),
        "task {id}: store gone after with_store"
    );
    DONE.send(id).await;
}

#[embassy_executor::task]
async fn consumer() {
    in_task(CONSUMER, async {
        let mut last = 0;
        for _ in 0..WORKERS * ROUNDS {
            let (from, _round) = LOG.receive().await;
            if last != 0 && from != last {
                SWITCHES.inc();
            }
            last = from;
            check!(
                get::<TaskId>() == Some(TaskId(CONSUMER)),
                "consumer: own store"
            );
        }
    })
    .with_store(TaskId(CONSUMER))
    .await;
    DONE.send(CONSUMER).await;
}

// ---- InterruptExecutor tasks (higher priority): isolated, own stores ----

async fn irq_work(k: u32) {
    loop {
        let (from, value) = REQUESTS[k as usize].receive().await;
        check!(
            get::<IrqTaskId>() == Some(IrqTaskId(k)),
            "irq task {k}: own store"
        );
        check!(
            get::<TaskId>().is_none(),
            "irq task {k}: no thread task's store"
        );
        yield_now().await;
        REPLIES[from as usize - 1].send(value * 2 + 1).await;
    }
}

#[embassy_executor::task(pool_size = 2)]
async fn irq_task(k: u32) {
    let mut body = pin!(irq_work(k));
    poll_fn(|cx| {
        IRQ_TASK_POLLS.inc();
        if THREAD_DEPTH.load(Ordering::Relaxed) > 0 {
            IRQ_TASK_HITS.inc();
        }
        check!(
            get::<IrqTaskId>() == Some(IrqTaskId(k)),
            "irq task {k}: own store at poll"
        );
        check!(
            get::<TaskId>().is_none() && get::<Inner>().is_none() && get::<HandlerId>().is_none(),
            "irq task {k}: isolated from thread mode and handlers"
        );
        body.as_mut().poll(cx)
    })
    .with_store(IrqTaskId(k))
    .isolated()
    .await;
}

// ---- Snapshot (feature `snapshot`: alloc + embedded-alloc) ----

#[cfg(feature = "snapshot")]
#[global_allocator]
static HEAP: embedded_alloc::LlffHeap = embedded_alloc::LlffHeap::empty();

#[cfg(feature = "snapshot")]
/// Carried task → worker `i`, in `CARRIED[i - 1]` (one receiver per channel).
static CARRIED: [Channel<CriticalSectionRawMutex, u32, 1>; WORKERS as usize] =
    [Channel::new(), Channel::new(), Channel::new()];

#[cfg(feature = "snapshot")]
async fn carry_snapshot(id: u32, spawner: Spawner) {
    use async_local_storage::Snapshot;
    let snapshot = scope(Inner(id + 200), Snapshot::capture);
    check!(snapshot.len() == 2, "task {id}: snapshot holds two stores");
    check!(
        snapshot.run(|| (get::<TaskId>(), get::<Inner>()))
            == (Some(TaskId(id)), Some(Inner(id + 200))),
        "task {id}: Snapshot::run"
    );
    spawner.spawn(carried(id, snapshot).unwrap());
    check!(
        CARRIED[id as usize - 1].receive().await == id,
        "task {id}: carried task done"
    );
}

#[cfg(feature = "snapshot")]
#[embassy_executor::task(pool_size = 3)]
async fn carried(id: u32, snapshot: async_local_storage::Snapshot) {
    check!(
        get::<TaskId>().is_none(),
        "carried {id}: starts with no store"
    );
    let mut body = pin!(async {
        for _ in 0..3 {
            yield_now().await;
        }
    });
    poll_fn(|cx| {
        CARRIED_POLLS.inc();
        check!(
            get::<TaskId>() == Some(TaskId(id)),
            "carried {id}: the spawner's store"
        );
        check!(
            get::<Inner>() == Some(Inner(id + 200)),
            "carried {id}: the nested store"
        );
        body.as_mut().poll(cx)
    })
    .with_snapshot(snapshot)
    .await;
    check!(
        get::<TaskId>().is_none(),
        "carried {id}: nothing after the snapshot"
    );
    CARRIED[id as usize - 1].send(id).await;
}

// ---- supervisor and main ----

#[embassy_executor::task]
async fn supervisor(spawner: Spawner, irq_spawner: SendSpawner) {
    irq_spawner.spawn(irq_task(0).unwrap());
    irq_spawner.spawn(irq_task(1).unwrap());
    spawner.spawn(consumer().unwrap());
    for id in 1..=WORKERS {
        spawner.spawn(worker(id, spawner).unwrap());
    }
    for _ in 0..=WORKERS {
        DONE.receive().await;
    }
    check!(get::<TaskId>().is_none(), "supervisor: no store");

    let systick_hits = SYSTICK_HITS.get();
    let reader_hits = READER_HITS.get();
    let irq_hits = IRQ_TASK_HITS.get();
    check!(
        systick_hits >= WORKERS * ROUNDS,
        "SysTick hit scopes {systick_hits} times"
    );
    check!(
        reader_hits >= WORKERS * ROUNDS,
        "the pended IRQ hit scopes {reader_hits} times"
    );
    check!(
        irq_hits >= WORKERS * ROUNDS,
        "InterruptExecutor polls hit scopes {irq_hits} times"
    );
    check!(
        SWITCHES.get() >= 2,
        "the consumer saw the workers interleave"
    );

    hprintln!("machine: {}", MACHINE);
    hprintln!(
        "preemptions inside a scope: {} (SysTick {} of {} [{} pended by software], pended IRQ {} of {} [{} of them inside SysTick's scope], InterruptExecutor polls {} of {})",
        systick_hits + reader_hits + irq_hits,
        systick_hits,
        SYSTICKS.get(),
        SYSTICKS_PENDED.get(),
        reader_hits,
        READER_IRQS.get(),
        READER_NESTED_HITS.get(),
        irq_hits,
        IRQ_TASK_POLLS.get()
    );
    hprintln!(
        "tasks: {} workers x {} rounds + consumer ({} thread-mode polls, {} channel switches), 2 InterruptExecutor tasks",
        WORKERS,
        ROUNDS,
        THREAD_POLLS.get(),
        SWITCHES.get()
    );
    #[cfg(feature = "snapshot")]
    hprintln!(
        "snapshot: {} carried tasks, {} polls with the spawner's stores",
        WORKERS,
        CARRIED_POLLS.get()
    );
    #[cfg(not(feature = "snapshot"))]
    hprintln!("snapshot: not built (feature `snapshot`)");
    hprintln!(
        "checks: {} passed (own store at every task poll; no other context's store in tasks, handlers and interrupt-executor tasks; nesting; without_store/exit; isolated/isolate; drop of a pending Scoped in its scope; snapshots)",
        CHECKS.get()
    );
    hprintln!("PASS [{}]", MACHINE);
    debug::exit(debug::EXIT_SUCCESS);
}

/// The synchronous API before any executor runs.
fn sync_checks() {
    check!(get::<TaskId>().is_none(), "main: nothing set");
    let seen = scope(TaskId(1), || {
        scope(Inner(2), || (get::<TaskId>(), get::<Inner>()))
    });
    check!(
        seen == (Some(TaskId(1)), Some(Inner(2))),
        "main: nested scopes"
    );
    check!(
        scope(TaskId(1), || isolate(get::<TaskId>)).is_none(),
        "main: isolate"
    );
    check!(get::<TaskId>().is_none(), "main: nothing left set");
}

#[entry]
fn main() -> ! {
    let mut cp = cortex_m::Peripherals::take().unwrap();
    let partno = (cp.CPUID.base.read() >> 4) & 0xFFF;
    hprintln!(
        "async-local-storage on {} (CPUID part {:#x}), slot: CriticalSectionSlot registered with set_slot! (backend `{}`)",
        MACHINE,
        partno,
        async_local_storage::slot::BACKEND
    );
    check!(
        partno == PARTNO,
        "running on the expected core (CPUID part {partno:#x})"
    );

    #[cfg(feature = "snapshot")]
    {
        use core::mem::MaybeUninit;
        const HEAP_SIZE: usize = 4096;
        static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];
        // SAFETY: called once, before any allocation; the memory is used by
        // the heap only.
        unsafe { HEAP.init(core::ptr::addr_of_mut!(HEAP_MEM) as usize, HEAP_SIZE) }
    }

    sync_checks();

    // SAFETY: priorities are set before the interrupts are unmasked and the
    // executor started; nothing relies on priority-based critical sections.
    unsafe {
        cp.SCB.set_priority(SystemHandler::SysTick, SYSTICK_PRIO);
        cp.NVIC.set_priority(Irq(READER_IRQ), READER_PRIO);
        cp.NVIC.set_priority(Irq(EXECUTOR_IRQ), EXECUTOR_PRIO);
        NVIC::unmask(Irq(READER_IRQ));
    }
    let irq_spawner = IRQ_EXECUTOR.start(Irq(EXECUTOR_IRQ));

    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(SYSTICK_RELOAD);
    cp.SYST.clear_current();
    cp.SYST.enable_interrupt();
    cp.SYST.enable_counter();

    let executor = cortex_m::singleton!(: Executor = Executor::new()).unwrap();
    executor.run(|spawner| spawner.spawn(supervisor(spawner, irq_spawner).unwrap()))
}
