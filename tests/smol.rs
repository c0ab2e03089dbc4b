//! The smol adapter on smol's global executor, on multi-threaded
//! `Executor`s and on `LocalExecutor`s: stores at every poll, migration
//! between threads, isolation, inheritance through the adapter (and not
//! through smol's own spawn), cancellation, panics, executors driven inside
//! a scope.

mod common;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_local_storage::adapters::smol::{self as als, ExecutorExt, LocalExecutorExt};
use async_local_storage::{get, is_set, scope, Snapshot, WithStore};
use common::runtime::{
    a_task_moves_between_threads, background, checked, driven, drop_in_scope, fed_by_a_plain_task,
    look, loopback_echo, migrating_tasks, next_drop, panicking_task, stores_are_captured_at_spawn,
    thousands_of_tasks, yields_and_timers, BetweenPolls, Checks, DropProbe, RuntimeUnderTest, Seen,
    Sightings, TaskId, PATIENCE, WORKERS,
};
use futures::FutureExt;
use smol::future::{self as lite, yield_now};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use smol::{block_on, Executor, LocalExecutor, Task, Timer};

// ---- helpers ----

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
        let between = Arc::new(BetweenPolls::new("no check ran"));
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

/// Where the shared test bodies spawn, through the adapter or plainly.
#[derive(Clone, Copy)]
enum Smol<'a> {
    /// smol's global executor.
    Global,
    /// A [`Pool`]'s executor.
    On(&'a Executor<'static>),
}

impl RuntimeUnderTest for Smol<'_> {
    type Task<T: Send + 'static> = Task<T>;

    fn spawn_with_stores<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Task<T> {
        match self {
            Smol::Global => als::spawn(fut),
            Smol::On(ex) => ex.spawn_with_stores(fut),
        }
    }

    fn spawn<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> Task<T> {
        match self {
            Smol::Global => smol::spawn(fut),
            Smol::On(ex) => ex.spawn(fut),
        }
    }

    fn yield_now() -> impl Future + Send + 'static {
        yield_now()
    }

    fn sleep(duration: Duration) -> impl Future + Send + 'static {
        Timer::after(duration)
    }
}

// ---- 1. every poll, across every kind of await ----

/// Awaits yields, timers, channels and loopback TCP, asserting `id` after
/// every await. Returns the number of checks.
async fn every_kind_of_await(id: TaskId) -> usize {
    let mut checks = Checks::start(id);
    yields_and_timers::<Smol>(&mut checks).await;
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
    checks.check();

    // A channel fed by a plain task, which never sees our store.
    fed_by_a_plain_task!(&Smol::Global, &mut checks, smol::channel::bounded(1), Ok);

    // Loopback TCP, echoed by a server task with a store of its own.
    loopback_echo!(&Smol::Global, &mut checks, TcpListener, TcpStream);
    checks.count()
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
    let pool = Pool::new(Drive::Run);
    a_task_moves_between_threads("executor threads", |seen| {
        for task in migrating_tasks(&Smol::On(&pool.ex), seen) {
            block_on(task);
        }
    });
    pool.shut_down().1.assert_clean();
}

// ---- 3. isolation ----

fn thousands_of_tasks_never_see_each_other(drive: Drive) {
    let pool = Pool::new(drive);
    let crowd = block_on(thousands_of_tasks(&Smol::On(&pool.ex)));
    let (_, between) = pool.shut_down();
    crowd.assert_every_task_ran("the tasks did not run on every thread");
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
    block_on(async {
        let (go, wait) = futures::channel::oneshot::channel::<()>();
        let go = move || go.send(()).unwrap();
        stores_are_captured_at_spawn(&Smol::Global, go, async move { wait.await.unwrap() }).await;
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
                pool.ex
                    .spawn_with_stores(probe.hold(move || started.send(()).unwrap()))
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
            let fut = probe.hold(move || started.send(()).unwrap());
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
        pool.ex
            .spawn_with_stores(probe.hold(move || started.send(()).unwrap()))
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

#[test]
fn a_panicking_local_task_leaves_nothing_behind() {
    let local = LocalExecutor::new();
    block_on(local.run(async {
        // A local task runs on this thread: the panic unwinds through it.
        let task = scope(TaskId(13), || {
            local.spawn_with_stores(panicking_task::<Smol>(TaskId(13)))
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
                scope(id, || pool.ex.spawn_with_stores(panicking_task::<Smol>(id)))
            })
            .collect();
        // And one on smol's global executor.
        tasks.push(scope(TaskId(300), || {
            als::spawn(panicking_task::<Smol>(TaskId(300)))
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

// ---- 7. executors driven inside a scope ----

/// `ex`'s own spawn of a [`look`], during a drive.
fn spawned_on<'a>(ex: &'a Executor<'static>) -> impl FnOnce() -> Task<[Option<TaskId>; 2]> + 'a {
    move || ex.spawn(look::<Smol<'static>>())
}

/// `ex`'s own spawn of a [`look`], during a drive.
fn spawned_on_local<'a>(
    ex: &'a LocalExecutor<'static>,
) -> impl FnOnce() -> Task<[Option<TaskId>; 2]> + 'a {
    move || ex.spawn(look::<Smol<'static>>())
}

#[test]
fn plain_run_inside_a_scope_lends_the_store_to_every_task() {
    // The documented hazard, which `run_with_stores` exists for.
    let ex = Executor::new();
    let (task, report) = background::<Smol>();
    ex.spawn(task).detach();
    let drive = scope(TaskId(1), || {
        block_on(ex.run(driven(report, spawned_on(&ex))))
    });
    assert_eq!(drive, Sightings::leaked(TaskId(1)));

    let local = LocalExecutor::new();
    let (task, report) = background::<Smol>();
    local.spawn(task).detach();
    let fut = async { local.run(driven(report, spawned_on_local(&local))).await };
    let drive = block_on(fut.with_store(TaskId(2)));
    assert_eq!(drive, Sightings::leaked(TaskId(2)));

    // The adapter's `block_on` carries the stores into the `run` future it
    // is given, so it does not help here (as documented).
    let (task, report) = background::<Smol>();
    local.spawn(task).detach();
    let drive = scope(TaskId(3), || {
        als::block_on(local.run(driven(report, spawned_on_local(&local))))
    });
    assert_eq!(drive, Sightings::leaked(TaskId(3)));
}

#[test]
fn run_with_stores_keeps_the_store_to_the_driven_future() {
    let ex = Executor::new();
    let local = LocalExecutor::new();

    // Driven inside a scope, by smol's `block_on` and by the adapter's.
    let (task, report) = background::<Smol>();
    ex.spawn(task).detach();
    let drive = scope(TaskId(1), || {
        block_on(ex.run_with_stores(driven(report, spawned_on(&ex))))
    });
    assert_eq!(drive, Sightings::isolated(TaskId(1)));
    let (task, report) = background::<Smol>();
    local.spawn(task).detach();
    let drive = scope(TaskId(2), || {
        als::block_on(local.run_with_stores(driven(report, spawned_on_local(&local))))
    });
    assert_eq!(drive, Sightings::isolated(TaskId(2)));

    // Awaited inside a future that has a store.
    let (task, report) = background::<Smol>();
    ex.spawn(task).detach();
    let fut = async { ex.run_with_stores(driven(report, spawned_on(&ex))).await };
    assert_eq!(
        block_on(fut.with_store(TaskId(3))),
        Sightings::isolated(TaskId(3))
    );
    let (task, report) = background::<Smol>();
    local.spawn(task).detach();
    let fut = async {
        local
            .run_with_stores(driven(report, spawned_on_local(&local)))
            .await
    };
    assert_eq!(
        block_on(fut.with_store(TaskId(4))),
        Sightings::isolated(TaskId(4))
    );
    assert!(Snapshot::capture().is_empty());
}

#[test]
fn the_adapters_block_on_carries_the_callers_stores_but_not_local_ones() {
    // smol's `block_on` runs no task: the one future sees the caller's stores...
    assert_eq!(
        scope(TaskId(1), || als::block_on(async { get::<TaskId>() })),
        Some(TaskId(1))
    );
    // ...except local ones, which a `Snapshot` does not carry.
    let seen =
        async_local_storage::scope_local(TaskId(2), || als::block_on(async { get::<TaskId>() }));
    assert_eq!(seen, None);
    assert!(Snapshot::capture().is_empty());
}

#[test]
fn an_executor_dropped_inside_a_scope_drops_plain_tasks_with_its_stores() {
    // The documented hazard: the tasks left in an executor are dropped where
    // it is dropped, so smol's own tasks drop with the caller's stores
    // visible. The remedy, dropping it inside `isolate`, shows them none.
    for isolated in [false, true] {
        let expected = (!isolated).then_some(TaskId(1));

        let (tx, drops) = mpsc::channel();
        let ex = Executor::new();
        let (started, running) = mpsc::channel();
        ex.spawn(DropProbe(tx.clone()).hold(move || started.send(()).unwrap()))
            .detach();
        assert!(ex.try_tick()); // the task has run once: it is a running task that is dropped
        running.recv_timeout(PATIENCE).unwrap();
        drop_in_scope(isolated, TaskId(1), ex);
        assert_eq!(
            next_drop(&drops),
            expected,
            "Executor, isolated: {isolated}"
        );

        let local = LocalExecutor::new();
        local.spawn(DropProbe(tx).hold(|| ())).detach();
        drop_in_scope(isolated, TaskId(1), local);
        assert_eq!(
            next_drop(&drops),
            expected,
            "LocalExecutor, isolated: {isolated}"
        );
        assert!(Snapshot::capture().is_empty());
    }
}
