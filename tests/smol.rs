//! The smol adapter on smol's global executor, on multi-threaded
//! `Executor`s and on `LocalExecutor`s: stores at every poll, migration
//! between threads, isolation, inheritance through the adapter (and not
//! through smol's own spawn), cancellation, panics.

use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use async_local_storage::smol::{self as als, ExecutorExt, LocalExecutorExt};
use async_local_storage::{exit, get, is_set, scope, Snapshot, WithStore};
use futures::FutureExt;
use smol::future::{self as lite, yield_now};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use smol::{block_on, Executor, LocalExecutor, Timer};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct TaskId(u64);

const WORKERS: usize = 2;
/// Upper bound for waits on work done in the background.
const PATIENCE: Duration = Duration::from_secs(30);

// ---- helpers ----

/// Asserts that exactly `id` is the visible `TaskId`.
#[track_caller]
fn assert_id(id: TaskId) {
    assert_eq!(get::<TaskId>(), Some(id));
}

/// What the polls of a [`checked`] future saw.
#[derive(Default)]
struct Seen {
    polls: AtomicUsize,
    threads: Mutex<HashSet<ThreadId>>,
}

impl Seen {
    fn polls(&self) -> usize {
        self.polls.load(SeqCst)
    }

    fn threads(&self) -> usize {
        self.threads.lock().unwrap().len()
    }
}

/// Wraps `fut`: before and after each of its polls, asserts that the visible
/// `TaskId` is `expected`, and records the poll and the thread it ran on.
fn checked<F: Future>(
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
#[derive(Default)]
struct BetweenPolls {
    checks: AtomicUsize,
    violations: AtomicUsize,
}

impl BetweenPolls {
    fn check(&self) {
        self.checks.fetch_add(1, SeqCst);
        if !Snapshot::capture().is_empty() || is_set::<TaskId>() {
            self.violations.fetch_add(1, SeqCst);
        }
    }

    #[track_caller]
    fn assert_clean(&self) {
        assert!(self.checks.load(SeqCst) > 0, "no check ran");
        assert_eq!(
            self.violations.load(SeqCst),
            0,
            "a worker thread saw a store between polls"
        );
    }
}

/// How the threads of a [`Pool`] drive its executor.
#[derive(Clone, Copy)]
enum Drive {
    /// `ex.run(..)`, the usual way.
    Run,
    /// One `ex.tick()` (one poll of one task) at a time, checking between
    /// ticks that no store is visible.
    Tick,
}

/// A multi-threaded smol `Executor`, as smol's docs build one.
struct Pool {
    ex: Arc<Executor<'static>>,
    stop: Option<smol::channel::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
    between: Arc<BetweenPolls>,
}

impl Pool {
    fn new(drive: Drive) -> Pool {
        let ex = Arc::new(Executor::new());
        let between = Arc::new(BetweenPolls::default());
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let threads = (0..WORKERS)
            .map(|_| {
                let (ex, between, stopped) = (ex.clone(), between.clone(), stopped.clone());
                std::thread::spawn(move || match drive {
                    Drive::Run => {
                        let _ = block_on(ex.run(stopped.recv()));
                        between.check();
                    }
                    Drive::Tick => loop {
                        let ticked = block_on(lite::or(
                            async {
                                ex.tick().await;
                                true
                            },
                            async {
                                let _ = stopped.recv().await;
                                false
                            },
                        ));
                        between.check();
                        if !ticked {
                            break;
                        }
                    },
                })
            })
            .collect();
        Pool {
            ex,
            stop: Some(stop),
            threads,
            between,
        }
    }

    /// Stops the threads and returns the executor (dropping it drops the
    /// tasks still in it).
    fn shut_down(mut self) -> (Arc<Executor<'static>>, Arc<BetweenPolls>) {
        drop(self.stop.take());
        for thread in self.threads.drain(..) {
            thread.join().unwrap();
        }
        (self.ex.clone(), self.between.clone())
    }
}

/// Waits (boundedly) until `done` holds.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        Timer::after(Duration::from_millis(1)).await;
    }
}

/// Reports what is visible when it is dropped.
struct DropProbe(mpsc::Sender<Option<TaskId>>);

impl Drop for DropProbe {
    fn drop(&mut self) {
        let _ = self.0.send(get::<TaskId>());
    }
}

/// The next report of a [`DropProbe`], waiting boundedly for it.
fn next_drop(drops: &mpsc::Receiver<Option<TaskId>>) -> Option<TaskId> {
    drops
        .recv_timeout(PATIENCE)
        .expect("the task's future was never dropped")
}

// ---- 1. every poll, across every kind of await ----

/// Awaits yields, timers, channels and loopback TCP, asserting `id` after
/// every await. Returns the number of checks.
async fn every_kind_of_await(id: TaskId) -> usize {
    let mut checks = 0;
    let mut check = || {
        assert_id(id);
        checks += 1;
    };
    check();

    for _ in 0..20 {
        yield_now().await;
        check();
    }

    for _ in 0..3 {
        Timer::after(Duration::from_millis(1)).await;
        check();
    }
    let timed_out = async {
        Timer::after(PATIENCE).await;
        panic!("timed out");
    };
    lite::or(
        async {
            Timer::after(Duration::from_millis(1)).await;
        },
        timed_out,
    )
    .await;
    check();

    // A channel fed by a plain task, which never sees our store.
    let (tx, rx) = smol::channel::bounded(1);
    let feeder = smol::spawn(async move {
        for i in 0..10u32 {
            assert!(!is_set::<TaskId>());
            tx.send(i).await.unwrap();
        }
    });
    for i in 0..10 {
        assert_eq!(rx.recv().await, Ok(i));
        check();
    }
    feeder.await;
    check();

    // Loopback TCP, echoed by a server task with a store of its own.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    check();
    let addr = listener.local_addr().unwrap();
    let server_id = TaskId(id.0 + 1_000_000);
    let server = scope(server_id, || {
        als::spawn(async move {
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
    let mut stream = TcpStream::connect(addr).await.unwrap();
    check();
    for round in 0..10u8 {
        stream.write_all(&[round; 64]).await.unwrap();
        check();
        let mut buf = [0; 64];
        stream.read_exact(&mut buf).await.unwrap();
        check();
        assert_eq!(buf, [round; 64]);
    }
    drop(stream);
    server.await;
    check();
    checks
}

#[test]
fn store_visible_at_every_poll() {
    // smol's global executor, through the adapter.
    let seen = Arc::new(Seen::default());
    let id = TaskId(1);
    let task = scope(id, || {
        als::spawn(checked(Some(id), seen.clone(), every_kind_of_await(id)))
    });
    assert_eq!(block_on(task), 59);
    assert!(seen.polls() >= 20, "only {} polls", seen.polls());

    // A multi-threaded executor, through the extension trait.
    let pool = Pool::new(Drive::Run);
    let seen = Arc::new(Seen::default());
    let id = TaskId(2);
    let task = scope(id, || {
        pool.ex
            .spawn_with_stores(checked(Some(id), seen.clone(), every_kind_of_await(id)))
    });
    assert_eq!(block_on(task), 59);
    assert!(seen.polls() >= 20);

    // Set at the root of a plain task.
    let seen = Arc::new(Seen::default());
    let id = TaskId(3);
    let fut = checked(Some(id), seen.clone(), every_kind_of_await(id)).with_store(id);
    assert_eq!(block_on(pool.ex.spawn(fut)), 59);
    assert!(seen.polls() >= 20);
    pool.shut_down().1.assert_clean();

    // And on the `block_on` future itself.
    let fut = checked(
        Some(TaskId(4)),
        Arc::default(),
        every_kind_of_await(TaskId(4)),
    );
    assert_eq!(block_on(fut.with_store(TaskId(4))), 59);

    assert!(Snapshot::capture().is_empty());
}

// ---- 2. migration between executor threads ----

#[test]
fn a_task_that_moves_between_threads_sees_its_own_store() {
    const TASKS: u64 = 4;
    const YIELDS: usize = 100;
    let pool = Pool::new(Drive::Run);
    for _attempt in 0..20 {
        let seen: Vec<Arc<Seen>> = (0..TASKS).map(|_| Arc::default()).collect();
        let tasks: Vec<_> = (0..TASKS)
            .map(|i| {
                let id = TaskId(i);
                let fut = checked(Some(id), seen[i as usize].clone(), async move {
                    for _ in 0..YIELDS {
                        yield_now().await;
                        assert_id(id);
                        // Keep this thread busy so that another one picks
                        // the next poll up.
                        std::thread::sleep(Duration::from_micros(50));
                    }
                });
                scope(id, || pool.ex.spawn_with_stores(fut))
            })
            .collect();
        for task in tasks {
            block_on(task);
        }
        for seen in &seen {
            assert!(seen.polls() > YIELDS);
        }
        if seen.iter().any(|seen| seen.threads() > 1) {
            pool.shut_down().1.assert_clean();
            return;
        }
    }
    panic!("no task moved between executor threads in 20 attempts");
}

// ---- 3. isolation ----

fn thousands_of_tasks_never_see_each_other(drive: Drive) {
    const TASKS: u64 = 3_000;
    let pool = Pool::new(drive);
    let stored = Arc::new(Seen::default());
    let probes = Arc::new(Seen::default());
    let arrived = Arc::new(AtomicUsize::new(0));

    block_on(async {
        let (open, gate) = futures::channel::oneshot::channel::<()>();
        let gate = gate.shared();
        let mut tasks = Vec::new();
        let mut probe_tasks = Vec::new();
        for i in 0..TASKS {
            let id = TaskId(i);
            let (gate, arrived) = (gate.clone(), arrived.clone());
            let body = checked(Some(id), stored.clone(), async move {
                assert_id(id);
                arrived.fetch_add(1, SeqCst);
                gate.await.unwrap();
                assert_id(id);
                for _ in 0..3 {
                    yield_now().await;
                    assert_id(id);
                }
                Timer::after(Duration::from_millis(1)).await;
                assert_id(id);
                yield_now().await;
                assert_id(id);
                id
            });
            // Half through the adapter, half carrying their own store.
            tasks.push(if i % 2 == 0 {
                scope(id, || pool.ex.spawn_with_stores(body))
            } else {
                pool.ex.spawn(body.with_store(id))
            });
            // Store-less tasks in between, on the same threads: each poll
            // starts between two polls of other tasks, and sees nothing.
            if i % 4 == 0 {
                probe_tasks.push(pool.ex.spawn(checked(None, probes.clone(), async {
                    for _ in 0..3 {
                        yield_now().await;
                    }
                    Timer::after(Duration::from_millis(1)).await;
                })));
            }
        }
        // Every task is suspended at once before any goes on.
        wait_for("every task to reach the gate", || {
            arrived.load(SeqCst) == TASKS as usize
        })
        .await;
        open.send(()).unwrap();
        for (i, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.await, TaskId(i as u64));
        }
        for task in probe_tasks {
            task.await;
        }
    });

    let (_, between) = pool.shut_down();
    assert!(stored.polls() >= 6 * TASKS as usize);
    assert_eq!(
        stored.threads(),
        WORKERS,
        "the tasks did not run on every thread"
    );
    // Three yields, then a timer that may already have fired.
    assert!(probes.polls() >= 4 * (TASKS as usize / 4));
    between.assert_clean();
    assert!(Snapshot::capture().is_empty());
}

#[test]
fn thousands_of_tasks_never_see_each_other_run() {
    thousands_of_tasks_never_see_each_other(Drive::Run);
}

#[test]
fn thousands_of_tasks_never_see_each_other_tick_by_tick() {
    thousands_of_tasks_never_see_each_other(Drive::Tick);
}

// ---- 4. inheritance ----

#[test]
fn adapter_spawns_carry_the_stores_and_plain_spawns_do_not() {
    let id = Some(TaskId(1));
    let ex = Executor::new();
    let local = LocalExecutor::new();
    block_on(
        local.run(
            ex.run(
                async {
                    assert_eq!(als::spawn(async { get::<TaskId>() }).await, id);
                    assert_eq!(smol::spawn(async { get::<TaskId>() }).await, None);

                    assert_eq!(als::unblock(get::<TaskId>).await, id);
                    assert_eq!(smol::unblock(get::<TaskId>).await, None);

                    assert_eq!(ex.spawn_with_stores(async { get::<TaskId>() }).await, id);
                    assert_eq!(ex.spawn(async { get::<TaskId>() }).await, None);

                    assert_eq!(local.spawn_with_stores(async { get::<TaskId>() }).await, id);
                    assert_eq!(local.spawn(async { get::<TaskId>() }).await, None);

                    // Grandchildren: carried again by the adapter, lost by a plain spawn.
                    let nested = als::spawn(async { als::spawn(async { get::<TaskId>() }).await });
                    assert_eq!(nested.await, id);
                    let nested = als::spawn(async { smol::spawn(async { get::<TaskId>() }).await });
                    assert_eq!(nested.await, None);

                    // Borrowing, non-'static tasks on a scoped executor.
                    let borrowed = &id;
                    let task = ex.spawn_with_stores(async move { get::<TaskId>() == *borrowed });
                    assert!(task.await);
                }
                .with_store(TaskId(1)),
            ),
        ),
    );

    // `block_on` polls on the calling thread: no adapter needed.
    assert_eq!(
        scope(TaskId(2), || block_on(async { get::<TaskId>() })),
        Some(TaskId(2))
    );
}

#[test]
fn the_stores_are_captured_when_the_task_is_spawned() {
    #[derive(Clone, Debug, PartialEq)]
    struct Tenant(&'static str);

    block_on(async {
        let (go, wait) = futures::channel::oneshot::channel::<()>();
        let child = scope(TaskId(1), || {
            scope(Tenant("acme"), || {
                als::spawn(async move {
                    wait.await.unwrap();
                    (get::<TaskId>(), get::<Tenant>())
                })
            })
        });
        // The spawner's scopes are gone by the time the child reads.
        assert!(!is_set::<TaskId>());
        go.send(()).unwrap();
        assert_eq!(child.await, (Some(TaskId(1)), Some(Tenant("acme"))));

        // Hidden types stay hidden; the rest is carried.
        let child = scope(TaskId(1), || {
            scope(Tenant("acme"), || {
                exit::<TaskId, _>(|| als::spawn(async { (get::<TaskId>(), get::<Tenant>()) }))
            })
        });
        assert_eq!(child.await, (None, Some(Tenant("acme"))));
    });
}

#[test]
fn local_stores_are_not_carried() {
    use std::cell::Cell;
    use std::rc::Rc;

    let local = LocalExecutor::new();
    block_on(
        local.run(
            async {
                assert_eq!(get::<TaskId>(), Some(TaskId(2)));
                assert!(is_set::<Rc<Cell<u8>>>());
                // New work sees neither the local stores nor the `TaskId(1)` they shadow.
                let child =
                    local.spawn_with_stores(async { (get::<TaskId>(), is_set::<Rc<Cell<u8>>>()) });
                assert_eq!(child.await, (None, false));
                assert_eq!(als::unblock(get::<TaskId>).await, None);
            }
            .with_local_store(TaskId(2))
            .with_local_store(Rc::new(Cell::new(0u8)))
            .with_store(TaskId(1)),
        ),
    );
}

// ---- 5. cancellation ----

#[test]
fn dropping_or_cancelling_a_running_task_drops_it_with_its_store() {
    let (tx, drops) = mpsc::channel();
    let pool = Pool::new(Drive::Run);
    block_on(async {
        for (id, cancel) in [(TaskId(5), false), (TaskId(6), true)] {
            let (started, running) = futures::channel::oneshot::channel();
            let probe = DropProbe(tx.clone());
            let task = scope(id, || {
                pool.ex.spawn_with_stores(async move {
                    let _probe = probe;
                    started.send(()).unwrap();
                    std::future::pending::<()>().await;
                })
            });
            running.await.unwrap();
            if cancel {
                assert_eq!(task.cancel().await, None);
            } else {
                drop(task);
            }
        }

        // The global executor, and a plain spawn of a future that carries
        // its own store.
        for (id, adapter) in [(TaskId(7), true), (TaskId(8), false)] {
            let (started, running) = futures::channel::oneshot::channel();
            let probe = DropProbe(tx.clone());
            let fut = async move {
                let _probe = probe;
                started.send(()).unwrap();
                std::future::pending::<()>().await;
            };
            let task = if adapter {
                scope(id, || als::spawn(fut))
            } else {
                smol::spawn(fut.with_store(id))
            };
            running.await.unwrap();
            drop(task);
        }
    });
    let mut seen: Vec<_> = (0..4).map(|_| next_drop(&drops)).collect();
    seen.sort_by_key(|id| id.map(|id| id.0));
    let expected: Vec<_> = (5..9).map(|i| Some(TaskId(i))).collect();
    assert_eq!(seen, expected);

    // Tasks still in an executor when it is dropped.
    let (started, running) = mpsc::channel();
    let probe = DropProbe(tx);
    let task = scope(TaskId(20), || {
        pool.ex.spawn_with_stores(async move {
            let _probe = probe;
            started.send(()).unwrap();
            std::future::pending::<()>().await;
        })
    });
    task.detach();
    running.recv_timeout(PATIENCE).unwrap();
    let (ex, between) = pool.shut_down();
    drop(ex);
    assert_eq!(next_drop(&drops), Some(TaskId(20)));
    between.assert_clean();
}

#[test]
fn dropping_a_task_before_its_first_poll_drops_it_with_its_store() {
    let (tx, drops) = mpsc::channel();
    let polled = Arc::new(AtomicBool::new(false));
    let local = LocalExecutor::new();
    let probe = DropProbe(tx);
    let flag = polled.clone();
    let task = scope(TaskId(9), || {
        local.spawn_with_stores(async move {
            let _probe = probe;
            flag.store(true, SeqCst);
        })
    });
    drop(task);
    // The executor drops the cancelled future when it next runs it.
    let deadline = Instant::now() + PATIENCE;
    while local.try_tick() {
        assert!(Instant::now() < deadline);
    }
    assert!(!polled.load(SeqCst));
    assert_eq!(next_drop(&drops), Some(TaskId(9)));
    assert!(Snapshot::capture().is_empty());
}

// ---- 6. panics ----

async fn panicking_task(id: TaskId) {
    assert_id(id);
    yield_now().await;
    async {
        assert_id(TaskId(id.0 + 1));
        panic!("task {} fails on purpose", id.0);
    }
    .with_store(TaskId(id.0 + 1))
    .await;
}

#[test]
fn a_panicking_local_task_leaves_nothing_behind() {
    let local = LocalExecutor::new();
    block_on(local.run(async {
        // A local task runs on this thread: the panic unwinds through it.
        let task = scope(TaskId(13), || {
            local.spawn_with_stores(panicking_task(TaskId(13)))
        });
        assert!(AssertUnwindSafe(task).catch_unwind().await.is_err());
        assert!(Snapshot::capture().is_empty());

        // The executor keeps working, stores and all.
        let task = scope(TaskId(17), || {
            local.spawn_with_stores(async {
                yield_now().await;
                get::<TaskId>()
            })
        });
        assert_eq!(task.await, Some(TaskId(17)));
        assert_eq!(local.spawn(async { get::<TaskId>() }).await, None);
    }));
    assert!(Snapshot::capture().is_empty());
}

#[test]
fn a_panicking_task_leaves_nothing_behind_on_the_executor_threads() {
    const PANICS: u64 = 8;
    // Every thread checks after every single poll, the panicking ones too.
    let pool = Pool::new(Drive::Tick);
    block_on(async {
        let mut tasks: Vec<_> = (0..PANICS)
            .map(|i| {
                let id = TaskId(200 + 2 * i);
                scope(id, || pool.ex.spawn_with_stores(panicking_task(id)))
            })
            .collect();
        // And one on smol's global executor.
        tasks.push(scope(TaskId(300), || {
            als::spawn(panicking_task(TaskId(300)))
        }));
        for task in tasks {
            assert!(AssertUnwindSafe(task).catch_unwind().await.is_err());
        }

        // The executors keep working, stores and all.
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                scope(TaskId(i), || {
                    if i % 2 == 0 {
                        pool.ex.spawn_with_stores(async { get::<TaskId>() })
                    } else {
                        als::spawn(async { get::<TaskId>() })
                    }
                })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.await, Some(TaskId(i as u64)));
        }
        // smol's global thread sees nothing between polls either.
        for _ in 0..10 {
            let clean = smol::spawn(async { Snapshot::capture().is_empty() });
            assert!(clean.await);
        }
    });
    let (_, between) = pool.shut_down();
    between.assert_clean();
    assert!(Snapshot::capture().is_empty());
}
