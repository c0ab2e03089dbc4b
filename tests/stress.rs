//! Stress test (issue 7): no task ever sees another task's stores.
//!
//! On each runtime (tokio multi-thread with every core, async-std, smol with
//! a multi-threaded executor), thousands of tasks run at once, each with its
//! own stores, doing random yields, short sleeps, channel hops through shared
//! relay tasks, nested scopes, `without_store`, local stores, joins inside the
//! task, `isolated` sub-futures, blocking jobs and spawns through the adapters (and plain spawns of
//! unrelated tasks). Every future is wrapped in a checker that knows exactly
//! which stores it must see and compares them with what is visible on every
//! poll (before and after polling the inner future) and on drop. Zero
//! mismatches is the only pass.
//!
//! Run it in release mode (CI does):
//!
//! ```text
//! cargo test --release --all-features --test stress -- --nocapture
//! ```
//!
//! Knobs (environment variables):
//!
//! * `ALS_STRESS_TASKS`: top-level tasks per runtime (default 10,000 in
//!   release, 1,000 in debug builds).
//! * `ALS_STRESS_SEED`: the seed of the task programs (default: from the
//!   clock; always printed, so a failure can be replayed).
//! * `ALS_STRESS_RUNTIMES`: a subset to run, e.g. `tokio,smol` (default:
//!   all three).
//! * `ALS_STRESS_SECS`: time budget per runtime (default 20). Tasks stop
//!   taking new random steps once it is spent; the run then finishes with
//!   what is in flight. It bounds the run, it is not a pass criterion.
//!
//! Under a leak checker, reduce the task count (README, "Reliability").

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_local_storage::{exit, get, isolate, scope, scope_local, Snapshot, WithStore};
use common::yield_now;
use futures::channel::{mpsc, oneshot};
use futures::future::{join, join_all, BoxFuture, FutureExt};
use futures::StreamExt;

// ---------------------------------------------------------------------------
// Stores.

/// The task's identity: the value that must never leak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TaskId(u64);

/// A second store per task (the user's organisation, say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tenant(u32);

/// Set by nested `with_store`/`scope` layers inside a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layer(u64);

/// Set by `with_local_store` (not carried) or `with_store` (carried).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Local(u64);

/// Only the relay tasks have it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Relay(u32);

/// Everything visible at one point, for every store type the test uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Seen {
    task: Option<TaskId>,
    tenant: Option<Tenant>,
    layer: Option<Layer>,
    local: Option<Local>,
    relay: Option<Relay>,
}

impl Seen {
    fn now() -> Seen {
        Seen {
            task: get(),
            tenant: get(),
            layer: get(),
            local: get(),
            relay: get(),
        }
    }
}

/// What a point must see, and what a snapshot taken there carries.
#[derive(Clone, Copy, Debug)]
struct Expect {
    seen: Seen,
    /// Whether the innermost `Local` store is carried (`with_store`) or not
    /// (`with_local_store`).
    local_carried: bool,
}

impl Expect {
    /// Nothing visible: where a runtime polls a task, outside its stores.
    fn none() -> Expect {
        Expect {
            seen: Seen::default(),
            local_carried: false,
        }
    }

    fn task(task: TaskId, tenant: Tenant) -> Expect {
        Expect::none().with(|s| {
            s.task = Some(task);
            s.tenant = Some(tenant);
        })
    }

    /// What a task spawned from here through an adapter must see.
    fn carried(mut self) -> Expect {
        if !self.local_carried {
            self.seen.local = None;
        }
        self
    }

    fn with(mut self, f: impl FnOnce(&mut Seen)) -> Expect {
        f(&mut self.seen);
        self
    }
}

// ---------------------------------------------------------------------------
// Statistics and the checker.

struct Stats {
    polls: AtomicU64,
    checks: AtomicU64,
    failures: AtomicU64,
    messages: Mutex<Vec<String>>,
    tasks: AtomicU64,
    live: AtomicU64,
    peak_live: AtomicU64,
    adapter_spawns: AtomicU64,
    plain_spawns: AtomicU64,
    blocking: AtomicU64,
    hops: AtomicU64,
    sleeps: AtomicU64,
    joins: AtomicU64,
    out_of_time: AtomicBool,
}

impl Stats {
    const fn new() -> Stats {
        Stats {
            polls: AtomicU64::new(0),
            checks: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            messages: Mutex::new(Vec::new()),
            tasks: AtomicU64::new(0),
            live: AtomicU64::new(0),
            peak_live: AtomicU64::new(0),
            adapter_spawns: AtomicU64::new(0),
            plain_spawns: AtomicU64::new(0),
            blocking: AtomicU64::new(0),
            hops: AtomicU64::new(0),
            sleeps: AtomicU64::new(0),
            joins: AtomicU64::new(0),
            out_of_time: AtomicBool::new(false),
        }
    }

    fn verify(&self, expect: &Expect, at: &str) {
        self.checks.fetch_add(1, Relaxed);
        let seen = Seen::now();
        if seen != expect.seen {
            self.fail(format!("{at}: saw {seen:?}, expected {:?}", expect.seen));
        }
    }

    fn fail(&self, message: String) {
        self.failures.fetch_add(1, Relaxed);
        let mut messages = self.messages.lock().unwrap_or_else(|e| e.into_inner());
        if messages.len() < 10 {
            messages.push(message);
        }
    }
}

/// Counts a task as live from creation to drop.
struct Live(&'static Stats);

impl Live {
    fn new(stats: &'static Stats) -> Live {
        stats.tasks.fetch_add(1, Relaxed);
        let live = stats.live.fetch_add(1, Relaxed) + 1;
        stats.peak_live.fetch_max(live, Relaxed);
        Live(stats)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Relaxed);
    }
}

/// Checks, at every poll (before and after polling `inner`) and on drop,
/// that exactly the expected stores are visible.
struct Checked<T> {
    stats: &'static Stats,
    expect: Expect,
    inner: BoxFuture<'static, T>,
    _live: Option<Live>,
}

impl<T> Checked<T> {
    fn new(stats: &'static Stats, expect: Expect, inner: BoxFuture<'static, T>) -> Checked<T> {
        Checked {
            stats,
            expect,
            inner,
            _live: None,
        }
    }

    /// The root of a task: also counted as live.
    fn task(stats: &'static Stats, expect: Expect, inner: BoxFuture<'static, T>) -> Checked<T> {
        Checked {
            stats,
            expect,
            inner,
            _live: Some(Live::new(stats)),
        }
    }
}

impl<T> Future for Checked<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = &mut *self;
        this.stats.polls.fetch_add(1, Relaxed);
        this.stats.verify(&this.expect, "before poll");
        let out = this.inner.as_mut().poll(cx);
        this.stats.verify(&this.expect, "after poll");
        out
    }
}

impl<T> Drop for Checked<T> {
    fn drop(&mut self) {
        self.stats.verify(&self.expect, "drop");
    }
}

// ---------------------------------------------------------------------------
// A seeded PRNG (SplitMix64): task programs replay from the printed seed.

#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// An independent stream for a sub-program.
    fn fork(&mut self) -> Rng {
        Rng::new(self.next())
    }
}

// ---------------------------------------------------------------------------
// Runtimes.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rt {
    Tokio,
    AsyncStd,
    Smol,
}

/// smol: a multi-threaded executor of our own (see `run_smol`).
static SMOL_EX: smol::Executor<'static> = smol::Executor::new();

type Task = BoxFuture<'static, ()>;

impl Rt {
    fn name(self) -> &'static str {
        match self {
            Rt::Tokio => "tokio",
            Rt::AsyncStd => "async-std",
            Rt::Smol => "smol",
        }
    }

    /// Spawns through the runtime's own API: no stores are carried.
    fn spawn_plain(self, fut: Checked<()>) -> Task {
        match self {
            Rt::Tokio => {
                let handle = tokio::spawn(fut);
                Box::pin(async move { handle.await.expect("task panicked") })
            }
            Rt::AsyncStd => Box::pin(async_std::task::spawn(fut)),
            Rt::Smol => Box::pin(SMOL_EX.spawn(fut)),
        }
    }

    /// Spawns through this crate's adapters (several flavours per runtime).
    fn spawn_adapter(self, fut: Checked<()>, flavour: u64) -> Task {
        match (self, flavour % 3) {
            (Rt::Tokio, 0) => {
                let handle = async_local_storage::adapters::tokio::spawn(fut);
                Box::pin(async move { handle.await.expect("task panicked") })
            }
            (Rt::Tokio, _) => {
                use async_local_storage::adapters::tokio::HandleExt;
                let handle = tokio::runtime::Handle::current().spawn_with_stores(fut);
                Box::pin(async move { handle.await.expect("task panicked") })
            }
            (Rt::AsyncStd, 0) => Box::pin(async_local_storage::adapters::async_std::spawn(fut)),
            (Rt::AsyncStd, 1) => {
                Box::pin(async_local_storage::adapters::async_std::spawn_local(fut))
            }
            (Rt::AsyncStd, _) => {
                use async_local_storage::adapters::async_std::BuilderExt;
                let builder = async_std::task::Builder::new();
                Box::pin(builder.spawn_with_stores(fut).expect("spawn"))
            }
            (Rt::Smol, 0) => Box::pin(async_local_storage::adapters::smol::spawn(fut)),
            (Rt::Smol, _) => {
                use async_local_storage::adapters::smol::ExecutorExt;
                Box::pin(SMOL_EX.spawn_with_stores(fut))
            }
        }
    }

    /// Spawns several tasks at once and waits for all of them.
    fn fan_out(self, futs: Vec<Checked<()>>) -> Task {
        match self {
            Rt::Tokio => {
                use async_local_storage::adapters::tokio::JoinSetExt;
                let mut set = tokio::task::JoinSet::new();
                for fut in futs {
                    set.spawn_with_stores(fut);
                }
                Box::pin(async move {
                    while let Some(done) = set.join_next().await {
                        done.expect("task panicked");
                    }
                })
            }
            _ => {
                let handles: Vec<Task> = futs
                    .into_iter()
                    .enumerate()
                    .map(|(i, fut)| self.spawn_adapter(fut, i as u64))
                    .collect();
                Box::pin(join_all(handles).map(drop))
            }
        }
    }

    /// Runs `f` on the runtime's blocking pool through the adapter.
    fn blocking(self, f: impl FnOnce() + Send + 'static) -> Task {
        match self {
            Rt::Tokio => {
                let handle = async_local_storage::adapters::tokio::spawn_blocking(f);
                Box::pin(async move { handle.await.expect("blocking job panicked") })
            }
            Rt::AsyncStd => Box::pin(async_local_storage::adapters::async_std::spawn_blocking(f)),
            Rt::Smol => Box::pin(async_local_storage::adapters::smol::unblock(f)),
        }
    }

    fn sleep(self, duration: Duration) -> Task {
        match self {
            Rt::Tokio => Box::pin(tokio::time::sleep(duration)),
            Rt::AsyncStd => Box::pin(async_std::task::sleep(duration)),
            Rt::Smol => Box::pin(FutureExt::map(smol::Timer::after(duration), drop)),
        }
    }
}

// ---------------------------------------------------------------------------
// Relays: long-lived tasks with stores of their own, woken by every other
// task's messages, replying with what *they* see.

struct Request {
    reply: oneshot::Sender<Option<TaskId>>,
}

const RELAYS: u32 = 4;
const RELAY_IDS: u64 = 1 << 40;

/// A relay with its stores installed around its checker.
fn relay_task(
    stats: &'static Stats,
    r: u32,
    mut inbox: mpsc::UnboundedReceiver<Request>,
) -> impl Future<Output = ()> + Send {
    let (id, tenant) = (TaskId(RELAY_IDS + u64::from(r)), Tenant(u32::MAX));
    let expect = Expect::task(id, tenant).with(|s| s.relay = Some(Relay(r)));
    let body = async move {
        let mut served = 0u64;
        while let Some(request) = inbox.next().await {
            stats.verify(&expect, "relay");
            served += 1;
            if served.is_multiple_of(3) {
                yield_now().await;
            }
            let _ = request.reply.send(get::<TaskId>());
        }
    };
    Checked::task(stats, expect, Box::pin(body))
        .with_store(Relay(r))
        .with_store(id)
        .with_store(tenant)
}

// ---------------------------------------------------------------------------
// Task programs.

struct Env {
    rt: Rt,
    stats: &'static Stats,
    relays: Vec<mpsc::UnboundedSender<Request>>,
    deadline: Instant,
}

const MAX_DEPTH: u32 = 3;

/// A task: its checker inside its own two stores, all inside a checker that
/// sees nothing (where the runtime polls it).
fn new_task(stats: &'static Stats, expect: Expect, inner: Task) -> Checked<()> {
    let task = expect.seen.task.expect("a task has an id");
    let tenant = expect.seen.tenant.expect("a task has a tenant");
    let stored = Checked::task(stats, expect, inner)
        .with_store(task)
        .with_store(tenant);
    Checked::new(stats, Expect::none(), Box::pin(stored))
}

/// One random program: a few steps, each of which checks what is visible.
fn program(env: Arc<Env>, expect: Expect, mut rng: Rng, depth: u32) -> Task {
    Box::pin(async move {
        let stats = env.stats;
        let steps = match depth {
            0 => 4 + rng.below(13),
            1 => 1 + rng.below(8),
            2 => 1 + rng.below(5),
            _ => 1 + rng.below(3),
        };
        for _ in 0..steps {
            if Instant::now() >= env.deadline {
                stats.out_of_time.store(true, Relaxed);
                break;
            }
            stats.verify(&expect, "step");
            let deeper = depth < MAX_DEPTH;
            match rng.below(100) {
                0..=17 => yield_now().await,
                18..=29 => {
                    stats.sleeps.fetch_add(1, Relaxed);
                    env.rt.sleep(Duration::from_micros(rng.below(2_001))).await;
                }
                30..=39 => {
                    // A channel hop: a relay (another task, maybe on another
                    // thread) wakes us with its answer.
                    stats.hops.fetch_add(1, Relaxed);
                    let r = rng.below(u64::from(RELAYS));
                    let (reply, answer) = oneshot::channel();
                    env.relays[r as usize]
                        .unbounded_send(Request { reply })
                        .expect("relay alive");
                    let relay_saw = answer.await.expect("relay replied");
                    if relay_saw != Some(TaskId(RELAY_IDS + r)) {
                        stats.fail(format!("relay {r} saw {relay_saw:?}"));
                    }
                }
                40..=49 if deeper => {
                    let layer = Layer(rng.next());
                    let inner = expect.with(|s| s.layer = Some(layer));
                    let sub = program(env.clone(), inner, rng.fork(), depth + 1);
                    Checked::new(stats, inner, sub).with_store(layer).await;
                }
                50..=55 if deeper => {
                    let sub_rng = rng.fork();
                    match rng.below(3) {
                        0 => {
                            let inner = expect.with(|s| s.tenant = None);
                            let sub = program(env.clone(), inner, sub_rng, depth + 1);
                            Checked::new(stats, inner, sub)
                                .without_store::<Tenant>()
                                .await;
                        }
                        1 => {
                            let inner = expect.with(|s| s.task = None);
                            let sub = program(env.clone(), inner, sub_rng, depth + 1);
                            Checked::new(stats, inner, sub)
                                .without_store::<TaskId>()
                                .await;
                        }
                        _ => {
                            let inner = expect.with(|s| s.layer = None);
                            let sub = program(env.clone(), inner, sub_rng, depth + 1);
                            Checked::new(stats, inner, sub)
                                .without_store::<Layer>()
                                .await;
                        }
                    }
                }
                56..=61 if deeper => {
                    let local = Local(rng.next());
                    let carried = rng.below(2) == 0;
                    let mut inner = expect.with(|s| s.local = Some(local));
                    inner.local_carried = carried;
                    let sub = program(env.clone(), inner, rng.fork(), depth + 1);
                    let checked = Checked::new(stats, inner, sub);
                    if carried {
                        checked.with_store(local).await;
                    } else {
                        checked.with_local_store(local).await;
                    }
                }
                62..=67 => sync_scopes(stats, &expect, rng.next()),
                68..=69 if deeper => {
                    // Cut off from every outer store, then a store of its own.
                    let layer = Layer(rng.next());
                    let inner = Expect::none().with(|s| s.layer = Some(layer));
                    let sub = program(env.clone(), inner, rng.fork(), depth + 1);
                    Checked::new(stats, inner, sub)
                        .with_store(layer)
                        .isolated()
                        .await;
                }
                70..=77 if deeper => {
                    stats.adapter_spawns.fetch_add(1, Relaxed);
                    let child = expect.carried();
                    let sub = program(env.clone(), child, rng.fork(), depth + 1);
                    let flavour = rng.next();
                    env.rt
                        .spawn_adapter(Checked::task(stats, child, sub), flavour)
                        .await;
                }
                78..=79 => {
                    stats.blocking.fetch_add(1, Relaxed);
                    let child = expect.carried();
                    env.rt
                        .blocking(move || stats.verify(&child, "blocking"))
                        .await;
                }
                80..=87 if deeper => {
                    // Two sub-programs in this task, interleaved, with
                    // different layers.
                    stats.joins.fetch_add(1, Relaxed);
                    let (a, b) = (Layer(rng.next()), Layer(rng.next()));
                    let ea = expect.with(|s| s.layer = Some(a));
                    let eb = expect.with(|s| s.layer = Some(b));
                    let left = program(env.clone(), ea, rng.fork(), depth + 1);
                    let right = program(env.clone(), eb, rng.fork(), depth + 1);
                    join(
                        Checked::new(stats, ea, left).with_store(a),
                        Checked::new(stats, eb, right).with_store(b),
                    )
                    .await;
                }
                88..=93 if deeper => {
                    // An unrelated task spawned from here with the runtime's
                    // own `spawn`: it must see its own stores, not ours.
                    stats.plain_spawns.fetch_add(1, Relaxed);
                    let id = TaskId(rng.next() >> 2 | 1 << 62);
                    let other = Expect::task(id, Tenant(rng.next() as u32));
                    let sub = program(env.clone(), other, rng.fork(), MAX_DEPTH);
                    env.rt.spawn_plain(new_task(stats, other, sub)).await;
                }
                94..=99 if deeper => {
                    let fan = 2 + rng.below(3);
                    stats.adapter_spawns.fetch_add(fan, Relaxed);
                    let child = expect.carried();
                    let futs = (0..fan)
                        .map(|_| {
                            let sub = program(env.clone(), child, rng.fork(), depth + 1);
                            Checked::task(stats, child, sub)
                        })
                        .collect();
                    env.rt.fan_out(futs).await;
                }
                _ => yield_now().await,
            }
            stats.verify(&expect, "after step");
        }
    })
}

/// Synchronous scopes inside a poll: `scope`, `exit`, `scope_local`,
/// `isolate` and a snapshot run, each checked.
fn sync_scopes(stats: &'static Stats, expect: &Expect, value: u64) {
    let layer = Layer(value);
    let inner = expect.with(|s| s.layer = Some(layer));
    scope(layer, || {
        stats.verify(&inner, "scope");
        let hidden = inner.with(|s| s.task = None);
        exit::<TaskId, _>(|| stats.verify(&hidden, "exit"));
        isolate(|| stats.verify(&Expect::none(), "isolate"));
        let local = Local(value ^ 1);
        let mut with_local = inner.with(|s| s.local = Some(local));
        with_local.local_carried = false;
        scope_local(local, || {
            stats.verify(&with_local, "scope_local");
            let snapshot = Snapshot::capture();
            snapshot.run(|| stats.verify(&with_local.carried(), "Snapshot::run"));
        });
        stats.verify(&inner, "after scope_local");
    });
    stats.verify(expect, "after scope");
}

// ---------------------------------------------------------------------------
// One run per runtime.

struct Config {
    tasks: u64,
    seed: u64,
    budget: Duration,
}

/// Spawns every task behind a gate (so they are all alive at once), opens
/// it, and waits for all of them and for the relays. Runs inside `rt`.
async fn run_all(rt: Rt, stats: &'static Stats, config: &Config) {
    let mut relays = Vec::new();
    let mut relay_handles = Vec::new();
    for r in 0..RELAYS {
        let (tx, rx) = mpsc::unbounded();
        relays.push(tx);
        let relay = relay_task(stats, r, rx);
        let relay = Checked::new(stats, Expect::none(), Box::pin(relay));
        relay_handles.push(rt.spawn_plain(relay));
    }
    let env = Arc::new(Env {
        rt,
        stats,
        relays,
        deadline: Instant::now() + config.budget,
    });

    let (open, gate) = oneshot::channel::<()>();
    let gate = gate.shared();
    let mut handles = Vec::with_capacity(config.tasks as usize);
    for i in 0..config.tasks {
        let mut rng = Rng::new(config.seed ^ i.wrapping_mul(0xA24B_AED4_963E_E407));
        let expect = Expect::task(TaskId(i), Tenant((i % 97) as u32));
        let program = program(env.clone(), expect, rng.fork(), 0);
        let gate = gate.clone();
        let body = async move {
            stats.verify(&expect, "before the gate");
            let _ = gate.await;
            stats.verify(&expect, "after the gate");
            program.await;
        };
        handles.push(rt.spawn_plain(new_task(stats, expect, Box::pin(body))));
    }
    open.send(()).expect("gate");
    join_all(handles).await;
    drop(env); // closes the relays' inboxes once the last task is gone
    join_all(relay_handles).await;
}

/// Runs every task on one runtime.
type Runner = fn(&'static Stats, &Config);

fn run_tokio(stats: &'static Stats, config: &Config) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores())
        .max_blocking_threads(16)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run_all(Rt::Tokio, stats, config));
}

fn run_async_std(stats: &'static Stats, config: &Config) {
    async_std::task::block_on(run_all(Rt::AsyncStd, stats, config));
}

fn run_smol(stats: &'static Stats, config: &Config) {
    let (stop, stopped) = smol::channel::unbounded::<()>();
    std::thread::scope(|s| {
        for _ in 0..cores() {
            let stopped = stopped.clone();
            s.spawn(move || smol::block_on(SMOL_EX.run(stopped.recv())));
        }
        smol::block_on(SMOL_EX.run(run_all(Rt::Smol, stats, config)));
        drop(stop);
    });
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

/// Aborts the process if the test hangs (a deadlock would be a bug, too).
fn watchdog(limit: Duration) -> std_mpsc::Sender<()> {
    let (done, wait) = std_mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std_mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
            eprintln!("stress: not finished after {limit:?}: hung, aborting");
            std::process::abort();
        }
    });
    done
}

fn report(rt: Rt, stats: &Stats, elapsed: Duration) {
    println!(
        "stress[{rt:?}]: {} polls checked, {} checks, {} mismatches; {} tasks (peak {} alive at once), \
         {} adapter spawns, {} plain spawns, {} blocking jobs, {} relay hops, {} sleeps, {} joins; \
         {:.2?}{}",
        stats.polls.load(Relaxed),
        stats.checks.load(Relaxed),
        stats.failures.load(Relaxed),
        stats.tasks.load(Relaxed),
        stats.peak_live.load(Relaxed),
        stats.adapter_spawns.load(Relaxed),
        stats.plain_spawns.load(Relaxed),
        stats.blocking.load(Relaxed),
        stats.hops.load(Relaxed),
        stats.sleeps.load(Relaxed),
        stats.joins.load(Relaxed),
        elapsed,
        if stats.out_of_time.load(Relaxed) {
            " (time budget spent: some programs were cut short)"
        } else {
            ""
        },
    );
}

#[test]
fn the_checker_reports_a_foreign_store() {
    // Guards the test itself: a wrong expectation must count as a failure.
    static PROBE: Stats = Stats::new();
    let stats = &PROBE;
    let mine = Expect::task(TaskId(1), Tenant(1));
    let theirs = Expect::task(TaskId(2), Tenant(1));
    scope(TaskId(2), || {
        scope(Tenant(1), || stats.verify(&mine, "probe"))
    });
    assert_eq!(stats.failures.load(Relaxed), 1);
    scope(TaskId(2), || {
        scope(Tenant(1), || stats.verify(&theirs, "probe"))
    });
    assert_eq!(stats.failures.load(Relaxed), 1);
    // A task polled inside another's stores is caught by its own checker:
    // before and after the poll, and on drop.
    futures::executor::block_on(
        async { Checked::new(stats, Expect::none(), Box::pin(async {})).await }
            .with_store(TaskId(3)),
    );
    assert_eq!(stats.failures.load(Relaxed), 4);
}

#[test]
fn no_task_sees_another_tasks_stores() {
    let default_tasks = if cfg!(debug_assertions) {
        1_000
    } else {
        10_000
    };
    let tasks = env_u64("ALS_STRESS_TASKS").unwrap_or(default_tasks);
    let seed = env_u64("ALS_STRESS_SEED").unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        now.as_secs() ^ u64::from(now.subsec_nanos())
    });
    let budget = Duration::from_secs(env_u64("ALS_STRESS_SECS").unwrap_or(20));
    let config = Config {
        tasks,
        seed,
        budget,
    };
    println!(
        "stress: {tasks} tasks per runtime, {} cores, seed {seed} (replay: ALS_STRESS_SEED={seed})",
        cores()
    );
    let done = watchdog(budget * 3 * 4 + Duration::from_secs(120));

    let mut total_polls = 0;
    let started = Instant::now();
    // Statics rather than leaked boxes: a leak checker reports nothing of ours.
    static STATS: [Stats; 3] = [Stats::new(), Stats::new(), Stats::new()];
    let runs: [(Rt, Runner, &'static Stats); 3] = [
        (Rt::Tokio, run_tokio, &STATS[0]),
        (Rt::AsyncStd, run_async_std, &STATS[1]),
        (Rt::Smol, run_smol, &STATS[2]),
    ];
    let only = std::env::var("ALS_STRESS_RUNTIMES").unwrap_or_default();
    for (rt, run, stats) in runs {
        if !only.is_empty() && !only.to_lowercase().contains(rt.name()) {
            println!("stress[{rt:?}]: skipped (ALS_STRESS_RUNTIMES={only})");
            continue;
        }
        let start = Instant::now();
        run(stats, &config);
        report(rt, stats, start.elapsed());
        let messages = stats.messages.lock().unwrap();
        assert_eq!(
            stats.failures.load(Relaxed),
            0,
            "{rt:?}: a task saw stores that are not its own (seed {seed}):\n{}",
            messages.join("\n")
        );
        // Not vacuous: every task ran, all at once, and was checked.
        assert!(stats.tasks.load(Relaxed) >= tasks + u64::from(RELAYS));
        assert!(
            stats.peak_live.load(Relaxed) >= tasks,
            "{rt:?}: tasks did not overlap"
        );
        assert!(stats.polls.load(Relaxed) > 2 * tasks);
        assert_eq!(
            stats.live.load(Relaxed),
            0,
            "{rt:?}: a task was never dropped"
        );
        total_polls += stats.polls.load(Relaxed);
    }
    let _ = done.send(());
    println!(
        "stress: {total_polls} polls checked on 3 runtimes in {:.2?}, zero cross-talk (seed {seed})",
        started.elapsed()
    );
}
