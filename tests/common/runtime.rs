//! Helpers shared by the adapter tests (`tests/tokio.rs`, `tests/async_std.rs`,
//! `tests/smol.rs`): the store they track, a wrapper that checks it at every
//! poll, drop probes, and the test bodies that are the same on every runtime.
//! Where the runtimes differ (spawning, yielding, timers), the bodies are
//! generic over [`RuntimeUnderTest`], which each test file implements.
// Only the adapter tests invoke the macros below; every other binary compiles them unused.
#![allow(unused_macros)]

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use async_local_storage::{exit, get, is_set, scope, Snapshot, WithStore};
use futures::FutureExt;

/// The store the adapter tests track: which task is being polled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TaskId(pub u64);

/// A second store, for the tests that carry more than one.
#[derive(Clone, Debug, PartialEq)]
pub struct Tenant(pub &'static str);

/// Threads of each multi-threaded runtime under test.
pub const WORKERS: usize = 2;
/// Upper bound for waits on work done in the background.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// What the shared test bodies need from a runtime.
pub trait RuntimeUnderTest {
    /// A spawned task: awaiting it gives the task's output (join errors
    /// unwrapped, for runtimes that report them).
    type Task<T: Send + 'static>: Future<Output = T>;

    /// Spawns through the adapter: the task carries the spawner's stores.
    fn spawn_with_stores<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Self::Task<T>;

    /// The runtime's own spawn: the task carries nothing.
    fn spawn<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Self::Task<T>;

    /// The runtime's yield.
    fn yield_now() -> impl Future + Send + 'static;

    /// The runtime's timer.
    fn sleep(duration: Duration) -> impl Future + Send + 'static;
}

/// Asserts that exactly `id` is the visible `TaskId`.
#[track_caller]
pub fn assert_id(id: TaskId) {
    assert_eq!(get::<TaskId>(), Some(id));
}

/// What the polls of a [`checked`] future saw.
#[derive(Default)]
pub struct Seen {
    polls: AtomicUsize,
    threads: Mutex<HashSet<ThreadId>>,
}

impl Seen {
    pub fn polls(&self) -> usize {
        self.polls.load(SeqCst)
    }

    pub fn threads(&self) -> usize {
        self.threads.lock().unwrap().len()
    }
}

/// Wraps `fut`: before and after each of its polls, asserts that the visible
/// `TaskId` is `expected`, and records the poll and the thread it ran on.
pub fn checked<F: Future>(
    expected: Option<TaskId>,
    seen: Arc<Seen>,
    fut: F,
) -> impl Future<Output = F::Output> {
    let mut fut = Box::pin(fut);
    std::future::poll_fn(move |cx| {
        assert_eq!(get::<TaskId>(), expected, "wrong store before a poll");
        seen.polls.fetch_add(1, SeqCst);
        seen.threads
            .lock()
            .unwrap()
            .insert(std::thread::current().id());
        let poll = fut.as_mut().poll(cx);
        assert_eq!(get::<TaskId>(), expected, "wrong store after a poll");
        poll
    })
}

/// Counts checks made between two polls on a worker thread, and those that
/// found any store visible.
pub struct BetweenPolls {
    checks: AtomicUsize,
    violations: AtomicUsize,
    /// What [`BetweenPolls::assert_clean`] says if no check ran at all.
    unchecked: &'static str,
}

impl BetweenPolls {
    pub fn new(unchecked: &'static str) -> BetweenPolls {
        BetweenPolls {
            checks: AtomicUsize::new(0),
            violations: AtomicUsize::new(0),
            unchecked,
        }
    }

    pub fn check(&self) {
        self.checks.fetch_add(1, SeqCst);
        if !Snapshot::capture().is_empty() || is_set::<TaskId>() {
            self.violations.fetch_add(1, SeqCst);
        }
    }

    #[track_caller]
    pub fn assert_clean(&self) {
        assert!(self.checks.load(SeqCst) > 0, "{}", self.unchecked);
        assert_eq!(
            self.violations.load(SeqCst),
            0,
            "a worker thread saw a store between polls"
        );
    }
}

/// Waits (boundedly) until `done` holds.
async fn wait_for<R: RuntimeUnderTest>(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        R::sleep(Duration::from_millis(1)).await;
    }
}

/// Reports what is visible when it is dropped.
pub struct DropProbe(pub mpsc::Sender<Option<TaskId>>);

impl Drop for DropProbe {
    fn drop(&mut self) {
        let _ = self.0.send(get::<TaskId>());
    }
}

impl DropProbe {
    /// A future that holds this probe, calls `started` on its first poll and
    /// then never completes: it reports when it is dropped.
    pub async fn hold(self, started: impl FnOnce()) {
        let _probe = self;
        started();
        std::future::pending::<()>().await;
    }
}

/// Drops `value` inside a scope of `id`: as it is (the hazard of dropping a
/// runtime there), or inside [`isolate`](async_local_storage::isolate) (the
/// remedy the adapters' docs give).
pub fn drop_in_scope<V>(isolated: bool, id: TaskId, value: V) {
    scope(id, || {
        if isolated {
            async_local_storage::isolate(|| drop(value))
        } else {
            drop(value)
        }
    })
}

/// The next report of a [`DropProbe`], waiting boundedly for it.
pub fn next_drop(drops: &mpsc::Receiver<Option<TaskId>>) -> Option<TaskId> {
    drops
        .recv_timeout(PATIENCE)
        .expect("the task's future was never dropped")
}

// ---- 1. every poll, across every kind of await ----

/// The checks of a runtime's `every_kind_of_await`: each asserts that the
/// task's own `id` is visible, and is counted.
pub struct Checks {
    id: TaskId,
    count: usize,
}

impl Checks {
    /// Starts counting with a first check.
    #[track_caller]
    pub fn start(id: TaskId) -> Checks {
        let mut checks = Checks { id, count: 0 };
        checks.check();
        checks
    }

    #[track_caller]
    pub fn check(&mut self) {
        assert_id(self.id);
        self.count += 1;
    }

    pub fn id(&self) -> TaskId {
        self.id
    }

    pub fn count(&self) -> usize {
        self.count
    }
}

/// Twenty yields, then three short timers, checking after each.
pub async fn yields_and_timers<R: RuntimeUnderTest>(checks: &mut Checks) {
    for _ in 0..20 {
        R::yield_now().await;
        checks.check();
    }

    for _ in 0..3 {
        R::sleep(Duration::from_millis(1)).await;
        checks.check();
    }
}

/// A channel fed by a plain task (`$rt`'s own spawn), which never sees our
/// store: ten values, with a check (`$checks`, a `&mut Checks`) after each
/// receive and after the feeder's end. `$channel` makes the channel (of
/// capacity 1); its `recv` gives `$received(value)`.
///
/// A macro, not a generic function, as the runtimes' channels share no
/// trait.
macro_rules! fed_by_a_plain_task {
    ($rt:expr, $checks:expr, $channel:expr, $received:path) => {{
        let checks: &mut $crate::common::runtime::Checks = $checks;
        #[allow(unused_mut)]
        let (tx, mut rx) = $channel;
        let feeder = $crate::common::runtime::RuntimeUnderTest::spawn($rt, async move {
            for i in 0..10u32 {
                assert!(!async_local_storage::is_set::<
                    $crate::common::runtime::TaskId,
                >());
                tx.send(i).await.unwrap();
            }
        });
        for i in 0..10 {
            assert_eq!(rx.recv().await, $received(i));
            checks.check();
        }
        feeder.await;
        checks.check();
    }};
}
#[allow(unused_imports)]
pub(crate) use fed_by_a_plain_task;

/// Loopback TCP, echoed by a server task (spawned through `$rt`'s adapter)
/// with a store of its own: ten rounds, with a check (`$checks`, a
/// `&mut Checks`) after each of the client's awaits, and after the server's
/// end.
///
/// A macro, not a generic function: the runtimes' sockets share no I/O
/// traits (tokio's are not `futures`' ones). The runtime's read and write
/// extension traits must be in scope where it is invoked.
macro_rules! loopback_echo {
    ($rt:expr, $checks:expr, $listener:ty, $stream:ty) => {{
        use $crate::common::runtime::{assert_id, RuntimeUnderTest, TaskId};

        let checks: &mut $crate::common::runtime::Checks = $checks;
        let listener = <$listener>::bind("127.0.0.1:0").await.unwrap();
        checks.check();
        let addr = listener.local_addr().unwrap();
        let server_id = TaskId(checks.id().0 + 1_000_000);
        let server = async_local_storage::scope(server_id, || {
            RuntimeUnderTest::spawn_with_stores($rt, async move {
                let (mut conn, _) = listener.accept().await.unwrap();
                assert_id(server_id);
                let mut buf = [0; 64];
                loop {
                    let n = conn.read(&mut buf).await.unwrap();
                    assert_id(server_id);
                    if n == 0 {
                        break;
                    }
                    conn.write_all(&buf[..n]).await.unwrap();
                    assert_id(server_id);
                }
            })
        });
        let mut stream = <$stream>::connect(addr).await.unwrap();
        checks.check();
        for round in 0..10u8 {
            stream.write_all(&[round; 64]).await.unwrap();
            checks.check();
            let mut buf = [0; 64];
            stream.read_exact(&mut buf).await.unwrap();
            checks.check();
            assert_eq!(buf, [round; 64]);
        }
        drop(stream);
        server.await;
        checks.check();
    }};
}
#[allow(unused_imports)]
pub(crate) use loopback_echo;

// ---- 2. migration between threads ----

/// Tasks of [`migrating_tasks`].
pub const MIGRATING: u64 = 4;
/// Yields of each of them.
pub const YIELDS: usize = 100;

/// Up to 20 attempts to see a task move between threads (`threads` names
/// them in the failure): each runs `attempt`, which spawns and awaits the
/// [`migrating_tasks`] of these `Seen`s.
#[track_caller]
pub fn a_task_moves_between_threads(threads: &str, mut attempt: impl FnMut(&[Arc<Seen>])) {
    for _attempt in 0..20 {
        let seen: Vec<Arc<Seen>> = (0..MIGRATING).map(|_| Arc::default()).collect();
        attempt(&seen);
        for seen in &seen {
            assert!(seen.polls() > YIELDS);
        }
        if seen.iter().any(|seen| seen.threads() > 1) {
            return;
        }
    }
    panic!("no task moved between {threads} in 20 attempts");
}

/// Spawns, through the adapter, one task per `Seen` that keeps its thread
/// busy between yields, checked at every poll.
pub fn migrating_tasks<R: RuntimeUnderTest>(rt: &R, seen: &[Arc<Seen>]) -> Vec<R::Task<()>> {
    (0..)
        .zip(seen)
        .map(|(i, seen)| {
            let id = TaskId(i);
            let fut = checked(Some(id), seen.clone(), async move {
                for _ in 0..YIELDS {
                    R::yield_now().await;
                    assert_id(id);
                    // Keep this thread busy so that another one picks the
                    // next poll up.
                    std::thread::sleep(Duration::from_micros(50));
                }
            });
            scope(id, || rt.spawn_with_stores(fut))
        })
        .collect()
}

// ---- 3. isolation ----

/// Tasks of [`thousands_of_tasks`].
pub const THOUSANDS: u64 = 3_000;

/// What the tasks of [`thousands_of_tasks`] saw.
pub struct Crowd {
    /// The tasks with a store.
    pub stored: Arc<Seen>,
    /// The store-less tasks in between.
    pub probes: Arc<Seen>,
}

impl Crowd {
    /// Every task ran, on every thread (`not_everywhere` says otherwise).
    #[track_caller]
    pub fn assert_every_task_ran(&self, not_everywhere: &str) {
        assert!(self.stored.polls() >= 6 * THOUSANDS as usize);
        assert_eq!(self.stored.threads(), WORKERS, "{not_everywhere}");
        // Three yields, then a timer that may already have fired.
        assert!(self.probes.polls() >= 4 * (THOUSANDS as usize / 4));
    }
}

/// Thousands of tasks, each with its own store, all suspended at once, with
/// store-less tasks in between: each is checked at every poll.
pub async fn thousands_of_tasks<R: RuntimeUnderTest>(rt: &R) -> Crowd {
    let stored = Arc::new(Seen::default());
    let probes = Arc::new(Seen::default());
    let arrived = Arc::new(AtomicUsize::new(0));

    let (open, gate) = futures::channel::oneshot::channel::<()>();
    let gate = gate.shared();
    let mut tasks = Vec::new();
    let mut probe_tasks = Vec::new();
    for i in 0..THOUSANDS {
        let id = TaskId(i);
        let (gate, arrived) = (gate.clone(), arrived.clone());
        let body = checked(Some(id), stored.clone(), async move {
            assert_id(id);
            arrived.fetch_add(1, SeqCst);
            gate.await.unwrap();
            assert_id(id);
            for _ in 0..3 {
                R::yield_now().await;
                assert_id(id);
            }
            R::sleep(Duration::from_millis(1)).await;
            assert_id(id);
            R::yield_now().await;
            assert_id(id);
            id
        });
        // Half through the adapter, half carrying their own store.
        tasks.push(if i % 2 == 0 {
            scope(id, || rt.spawn_with_stores(body))
        } else {
            rt.spawn(body.with_store(id))
        });
        // Store-less tasks in between, on the same threads: each poll
        // starts between two polls of other tasks, and sees nothing.
        if i % 4 == 0 {
            probe_tasks.push(rt.spawn(checked(None, probes.clone(), async {
                for _ in 0..3 {
                    R::yield_now().await;
                }
                R::sleep(Duration::from_millis(1)).await;
            })));
        }
    }
    // Every task is suspended at once before any goes on.
    wait_for::<R>("every task to reach the gate", || {
        arrived.load(SeqCst) == THOUSANDS as usize
    })
    .await;
    open.send(()).unwrap();
    for (i, task) in tasks.into_iter().enumerate() {
        assert_eq!(task.await, TaskId(i as u64));
    }
    for task in probe_tasks {
        task.await;
    }
    Crowd { stored, probes }
}

// ---- 4. inheritance ----

/// The stores are captured when the task is spawned through the adapter:
/// the child waits for `wait`, which `go` releases once the spawner's scopes
/// are gone. Hidden types stay hidden.
pub async fn stores_are_captured_at_spawn<R: RuntimeUnderTest>(
    rt: &R,
    go: impl FnOnce(),
    wait: impl Future<Output = ()> + Send + 'static,
) {
    let child = scope(TaskId(1), || {
        scope(Tenant("acme"), || {
            rt.spawn_with_stores(async move {
                wait.await;
                (get::<TaskId>(), get::<Tenant>())
            })
        })
    });
    // The spawner's scopes are gone by the time the child reads.
    assert!(!is_set::<TaskId>());
    go();
    assert_eq!(child.await, (Some(TaskId(1)), Some(Tenant("acme"))));

    // Hidden types stay hidden; the rest is carried.
    let child = scope(TaskId(1), || {
        scope(Tenant("acme"), || {
            exit::<TaskId, _>(|| rt.spawn_with_stores(async { (get::<TaskId>(), get::<Tenant>()) }))
        })
    });
    assert_eq!(child.await, (None, Some(Tenant("acme"))));
}

// ---- 6. panics ----

/// Panics inside a nested store, after a yield.
pub async fn panicking_task<R: RuntimeUnderTest>(id: TaskId) {
    assert_id(id);
    R::yield_now().await;
    async {
        assert_id(TaskId(id.0 + 1));
        panic!("task {} fails on purpose", id.0);
    }
    .with_store(TaskId(id.0 + 1))
    .await;
}

/// Tasks of [`panicking_tasks`].
pub const PANICS: u64 = 8;

/// [`PANICS`] tasks, with the ids to spawn them under: each notes the
/// thread it runs on in `panicked_on`, then is a [`panicking_task`].
pub fn panicking_tasks<R: RuntimeUnderTest>(
    panicked_on: &Arc<Mutex<HashSet<ThreadId>>>,
) -> impl Iterator<Item = (TaskId, impl Future<Output = ()> + Send + 'static)> + '_ {
    (0..PANICS).map(|i| {
        let id = TaskId(200 + 2 * i);
        let panicked_on = panicked_on.clone();
        let task = async move {
            panicked_on
                .lock()
                .unwrap()
                .insert(std::thread::current().id());
            panicking_task::<R>(id).await;
        };
        (id, task)
    })
}

/// Probes every thread a task panicked on, with store-less tasks that find
/// nothing left behind (else `left_behind`); `never_probed` if some thread
/// was never reached.
pub async fn probe_the_threads<R: RuntimeUnderTest>(
    rt: &R,
    panicked_on: &Mutex<HashSet<ThreadId>>,
    left_behind: &str,
    never_probed: &str,
) {
    let panicked_on = panicked_on.lock().unwrap().clone();
    let mut probed = HashSet::new();
    for _round in 0..100 {
        let probes: Vec<_> = (0..32)
            .map(|_| {
                rt.spawn(async {
                    R::yield_now().await;
                    (std::thread::current().id(), Snapshot::capture().is_empty())
                })
            })
            .collect();
        for probe in probes {
            let (thread, clean) = probe.await;
            assert!(clean, "{left_behind}");
            probed.insert(thread);
        }
        if panicked_on.is_subset(&probed) {
            break;
        }
    }
    assert!(panicked_on.is_subset(&probed), "{never_probed}");
}

/// The runtime keeps working, stores and all: a hundred tasks spawned
/// through the adapter each see their own.
pub async fn each_task_sees_its_own_store<R: RuntimeUnderTest>(rt: &R) {
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            scope(TaskId(i), || {
                rt.spawn_with_stores(async { get::<TaskId>() })
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        assert_eq!(task.await, Some(TaskId(i as u64)));
    }
}

// ---- 7. runtimes driven inside a scope ----

/// What the three parties of a drive saw (see [`driven`]): each reads the
/// visible `TaskId` at its first poll and again after a yield.
#[derive(Debug, PartialEq, Eq)]
pub struct Sightings {
    /// The driven future (the one given to `block_on`, `run_until`, `run`).
    pub driven: [Option<TaskId>; 2],
    /// A task spawned before the drive began, by other code.
    pub background: [Option<TaskId>; 2],
    /// A task spawned during the drive, with the runtime's own spawn.
    pub spawned: [Option<TaskId>; 2],
}

impl Sightings {
    /// The driven future saw `id`, every other task nothing.
    pub fn isolated(id: TaskId) -> Sightings {
        Sightings {
            driven: [Some(id); 2],
            background: [None; 2],
            spawned: [None; 2],
        }
    }

    /// Everyone saw `id`: the driver lent its store to every task it polled.
    pub fn leaked(id: TaskId) -> Sightings {
        Sightings {
            driven: [Some(id); 2],
            background: [Some(id); 2],
            spawned: [Some(id); 2],
        }
    }
}

/// Reads the visible `TaskId` at its first poll, and again after a yield.
pub async fn look<R: RuntimeUnderTest>() -> [Option<TaskId>; 2] {
    let first = get::<TaskId>();
    R::yield_now().await;
    [first, get::<TaskId>()]
}

/// What a background task saw, reported to the driven future.
pub type Report = futures::channel::oneshot::Receiver<[Option<TaskId>; 2]>;

/// A task to spawn before the drive: it [`look`]s and sends what it saw
/// through the [`Report`] that [`driven`] awaits.
pub fn background<R: RuntimeUnderTest>() -> (impl Future<Output = ()> + Send + 'static, Report) {
    let (tx, rx) = futures::channel::oneshot::channel();
    let task = async move {
        let _ = tx.send(look::<R>().await);
    };
    (task, rx)
}

/// The future to drive: it reads its own store, starts a task with `spawn`
/// (the runtime's own spawn of a [`look`]), then awaits the background task's report and the spawned task. It cannot
/// complete before both tasks have run, so both are polled while it is
/// being driven.
pub async fn driven<S: Future<Output = [Option<TaskId>; 2]>>(
    report: Report,
    spawn: impl FnOnce() -> S,
) -> Sightings {
    let first = get::<TaskId>();
    let spawned = spawn();
    let background = report.await.expect("the background task was dropped");
    let spawned = spawned.await;
    Sightings {
        driven: [first, get::<TaskId>()],
        background,
        spawned,
    }
}
