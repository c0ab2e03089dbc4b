//! The no_std recipe, run on the host: `embassy-executor` with the
//! `critical-section` slot backend. Three tasks run the same code; each
//! installs its own name as a store once, and the logging helper deep inside
//! reads it back. Nothing passes the name down.
//!
//! ```text
//! cargo run --no-default-features --features critical-section --example embassy
//! ```
//!
//! On a microcontroller the code is the same; only the set-up changes:
//!
//! ```toml
//! [dependencies]
//! async-local-storage = { version = "0.1", default-features = false, features = ["critical-section"] }
//! cortex-m = { version = "0.7", features = ["critical-section-single-core"] }
//! embassy-executor = { version = "0.10", features = ["platform-cortex-m", "executor-thread"] }
//! ```
//!
//! The firmware registers the global slot exactly as this example does
//! (`unsafe impl CriticalSectionSlot` + `set_slot!`, below: the `unsafe`
//! is the binary's promise that it runs on one core), and `main` becomes
//! `#[embassy_executor::main] async fn main(spawner: Spawner)`, whose
//! executor never returns. Here, on the host, the executor
//! is built by hand and stopped with `run_until` once every task is done, so
//! that the example ends (CI runs it).
//!
//! The critical-section slot is one global cell: sound on a single core
//! where everything that polls stored futures or reads stores runs at one
//! priority level, as here (one thread-mode executor). See the README's
//! "no_std" section before adding an `InterruptExecutor`.

use core::cell::Cell;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use async_local_storage::{with, WithStore};
use critical_section::Mutex;
use embassy_executor::{Executor, Spawner};

/// The critical-section slot, registered as a firmware would. On the host,
/// `main` runs every case on one thread, which is what the `unsafe impl`
/// asserts (the host's `critical-section` implementation is a global lock).
struct HostSlot;

// SAFETY: one context: every case runs on the main thread (`harness =
// false`, no case starts a thread that touches stores), so polls nest LIFO
// and nothing preempts a scope.
unsafe impl async_local_storage::slot::CriticalSectionSlot for HostSlot {}

async_local_storage::set_slot!(HostSlot);

/// The store: which task is running. A newtype, because stores are found by
/// type.
#[derive(Clone, Copy, Debug)]
struct TaskName(&'static str);

/// Tasks that have finished. `critical_section::Mutex` rather than an atomic
/// counter, because `thumbv6m` has no atomic read-modify-write.
static DONE: Mutex<Cell<usize>> = Mutex::new(Cell::new(0));
/// Log lines written without a `TaskName` store in sight.
static ANONYMOUS_LINES: Mutex<Cell<usize>> = Mutex::new(Cell::new(0));

const TASKS: usize = 3;

/// A logger that knows which task called it, like `defmt::info!` with a
/// task prefix. On a chip this would go to RTT or a UART.
fn log(message: core::fmt::Arguments<'_>) {
    with(|task: Option<&TaskName>| match task {
        Some(TaskName(name)) => println!("[{name:>8}] {message}"),
        None => {
            critical_section::with(|cs| {
                let lines = ANONYMOUS_LINES.borrow(cs);
                lines.set(lines.get() + 1);
            });
            println!("[       ?] {message}");
        }
    });
}

/// Application code, several calls away from the task: no name parameter.
async fn sample(channel: u8) -> u16 {
    yield_now().await; // waiting for the ADC, say
    let value = u16::from(channel) * 100 + 7;
    log(format_args!("channel {channel} reads {value}"));
    value
}

async fn run_sensor(channels: &'static [u8]) {
    log(format_args!("starting, {} channels", channels.len()));
    let mut total = 0;
    for &channel in channels {
        total += u32::from(sample(channel).await);
    }
    log(format_args!("done, total {total}"));
}

#[embassy_executor::task(pool_size = 3)]
async fn sensor(name: &'static str, channels: &'static [u8]) {
    // The one line that sets the store, for everything this task awaits.
    run_sensor(channels).with_store(TaskName(name)).await;
    critical_section::with(|cs| {
        let done = DONE.borrow(cs);
        done.set(done.get() + 1);
    });
}

/// Pending once (after waking its task), then ready: lets the other tasks run.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn yield_now() -> YieldNow {
    YieldNow(false)
}

fn spawn_tasks(spawner: Spawner) {
    spawner.spawn(sensor("pressure", &[1, 2, 3]).unwrap());
    spawner.spawn(sensor("humidity", &[4, 5]).unwrap());
    spawner.spawn(sensor("light", &[6]).unwrap());
}

fn main() {
    println!("slot backend: {}\n", async_local_storage::slot::BACKEND);
    // `Executor::run` needs `&'static mut`; a chip's `#[embassy_executor::main]`
    // does this for you.
    let executor: &'static mut Executor = Box::leak(Box::new(Executor::new()));
    executor.run_until(spawn_tasks, || {
        critical_section::with(|cs| DONE.borrow(cs).get()) == TASKS
    });

    // Outside every task, no store is visible.
    log(format_args!("all {TASKS} tasks finished"));
    let anonymous = critical_section::with(|cs| ANONYMOUS_LINES.borrow(cs).get());
    assert_eq!(anonymous, 1, "only the line above is logged outside a task");
}
