//! The tokio adapter on tokio's own runtimes (current-thread and
//! multi-thread): stores at every poll, migration between workers,
//! isolation, inheritance through the adapter (and not through tokio's own
//! spawn), cancellation, panics, runtimes driven inside a scope.

mod common;

use std::cell::Cell;
use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use async_local_storage::adapters::tokio::{self as als, HandleExt, JoinSetExt, LocalSetExt};
use async_local_storage::{get, is_set, scope, with, Snapshot, WithStore};
use common::runtime::{
    a_task_moves_between_threads, background, checked, driven, drop_in_scope,
    each_task_sees_its_own_store, fed_by_a_plain_task, look, loopback_echo, migrating_tasks,
    next_drop, panicking_task, panicking_tasks, probe_the_threads, stores_are_captured_at_spawn,
    thousands_of_tasks, yields_and_timers, BetweenPolls, Checks, DropProbe, RuntimeUnderTest, Seen,
    Sightings, TaskId, PATIENCE, WORKERS,
};
use futures::future::Map;
use futures::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::{yield_now, JoinError, JoinHandle, JoinSet, LocalSet};

// ---- helpers ----

fn current_thread() -> Runtime {
    Builder::new_current_thread().enable_all().build().unwrap()
}

fn multi_thread() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .unwrap()
}

/// A multi-thread runtime whose workers check, each time they park and
/// unpark (between polls), that no store is visible.
fn watched_multi_thread(between: &Arc<BetweenPolls>) -> Runtime {
    let (park, unpark) = (between.clone(), between.clone());
    Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .on_thread_park(move || park.check())
        .on_thread_unpark(move || unpark.check())
        .build()
        .unwrap()
}

/// tokio, for the shared test bodies: the adapter's spawn and tokio's own,
/// on the current runtime, their join errors unwrapped.
struct Tokio;

impl RuntimeUnderTest for Tokio {
    type Task<T: Send + 'static> = Map<JoinHandle<T>, fn(Result<T, JoinError>) -> T>;

    fn spawn_with_stores<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Self::Task<T> {
        als::spawn(fut).map(Result::unwrap as fn(_) -> _)
    }

    fn spawn<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Self::Task<T> {
        tokio::spawn(fut).map(Result::unwrap as fn(_) -> _)
    }

    fn yield_now() -> impl Future + Send + 'static {
        yield_now()
    }

    fn sleep(duration: Duration) -> impl Future + Send + 'static {
        tokio::time::sleep(duration)
    }
}

// ---- 1. every poll, across every kind of await ----

/// Awaits yields, timers, channels and loopback TCP, asserting `id` after
/// every await. Returns the number of checks.
async fn every_kind_of_await(id: TaskId) -> usize {
    let mut checks = Checks::start(id);
    yields_and_timers::<Tokio>(&mut checks).await;
    tokio::time::timeout(PATIENCE, tokio::time::sleep(Duration::from_millis(1)))
        .await
        .unwrap();
    checks.check();

    // A channel fed by a plain task, which never sees our store.
    fed_by_a_plain_task!(&Tokio, &mut checks, tokio::sync::mpsc::channel(1), Some);
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        yield_now().await;
        tx.send(5u8).unwrap();
    });
    assert_eq!(rx.await.unwrap(), 5);
    checks.check();

    // Loopback TCP, echoed by a server task with a store of its own.
    loopback_echo!(&Tokio, &mut checks, TcpListener, TcpStream);
    checks.count()
}

fn store_visible_at_every_poll(rt: &Runtime) {
    // Through the adapter: the store comes from the spawner's snapshot.
    let seen = Arc::new(Seen::default());
    let id = TaskId(1);
    let task = {
        let _runtime = rt.enter();
        scope(id, || {
            als::spawn(checked(Some(id), seen.clone(), every_kind_of_await(id)))
        })
    };
    assert_eq!(rt.block_on(task).unwrap(), 60);
    assert!(seen.polls() >= 20, "only {} polls", seen.polls());

    // Set at the root of a plain task.
    let seen = Arc::new(Seen::default());
    let id = TaskId(2);
    let fut = checked(Some(id), seen.clone(), every_kind_of_await(id)).with_store(id);
    assert_eq!(rt.block_on(rt.spawn(fut)).unwrap(), 60);
    assert!(seen.polls() >= 20);

    // And on the `block_on` future itself.
    let fut = checked(
        Some(TaskId(3)),
        Arc::default(),
        every_kind_of_await(TaskId(3)),
    );
    assert_eq!(rt.block_on(fut.with_store(TaskId(3))), 60);

    assert!(Snapshot::capture().is_empty());
}

#[test]
fn store_visible_at_every_poll_current_thread() {
    store_visible_at_every_poll(&current_thread());
}

#[test]
fn store_visible_at_every_poll_multi_thread() {
    store_visible_at_every_poll(&multi_thread());
}

// ---- 2. migration between worker threads ----

#[test]
fn a_task_that_moves_between_workers_sees_its_own_store() {
    let rt = multi_thread();
    a_task_moves_between_threads("worker threads", |seen| {
        rt.block_on(async {
            for task in migrating_tasks(&Tokio, seen) {
                task.await;
            }
        })
    });
}

// ---- 3. isolation ----

#[test]
fn thousands_of_tasks_never_see_each_other() {
    let between = Arc::new(BetweenPolls::new("no worker ever parked"));
    let rt = watched_multi_thread(&between);
    let crowd = rt.block_on(thousands_of_tasks(&Tokio));
    crowd.assert_every_task_ran("the tasks did not run on every worker");
    between.assert_clean();
    assert!(Snapshot::capture().is_empty());
}

// ---- 4. inheritance ----

#[test]
fn adapter_spawns_carry_the_stores_and_plain_spawns_do_not() {
    let rt = multi_thread();
    let id = Some(TaskId(1));
    rt.block_on(
        async {
            assert_eq!(als::spawn(async { get::<TaskId>() }).await.unwrap(), id);
            assert_eq!(tokio::spawn(async { get::<TaskId>() }).await.unwrap(), None);

            assert_eq!(als::spawn_blocking(get::<TaskId>).await.unwrap(), id);
            let plain = tokio::task::spawn_blocking(get::<TaskId>);
            assert_eq!(plain.await.unwrap(), None);

            let handle = Handle::current();
            let task = handle.spawn_with_stores(async { get::<TaskId>() });
            assert_eq!(task.await.unwrap(), id);
            let job = handle.spawn_blocking_with_stores(get::<TaskId>);
            assert_eq!(job.await.unwrap(), id);
            assert_eq!(handle.spawn(async { get::<TaskId>() }).await.unwrap(), None);
            assert_eq!(handle.spawn_blocking(get::<TaskId>).await.unwrap(), None);

            let mut set = JoinSet::new();
            set.spawn_with_stores(async { get::<TaskId>() });
            set.spawn_blocking_with_stores(get::<TaskId>);
            assert_eq!(set.join_next().await.unwrap().unwrap(), id);
            assert_eq!(set.join_next().await.unwrap().unwrap(), id);
            set.spawn(async { get::<TaskId>() });
            set.spawn_blocking(get::<TaskId>);
            assert_eq!(set.join_next().await.unwrap().unwrap(), None);
            assert_eq!(set.join_next().await.unwrap().unwrap(), None);

            // Grandchildren: carried again by the adapter, lost by a plain spawn.
            let nested = als::spawn(async { als::spawn(async { get::<TaskId>() }).await });
            assert_eq!(nested.await.unwrap().unwrap(), id);
            let nested = als::spawn(async { tokio::spawn(async { get::<TaskId>() }).await });
            assert_eq!(nested.await.unwrap().unwrap(), None);

            // No adapter needed: same thread, same poll.
            let in_place = als::spawn(async { tokio::task::block_in_place(get::<TaskId>) });
            assert_eq!(in_place.await.unwrap(), id);
        }
        .with_store(TaskId(1)),
    );

    // `Runtime` itself, outside any task.
    let (task, job) = scope(TaskId(2), || {
        (
            rt.spawn_with_stores(async { get::<TaskId>() }),
            rt.spawn_blocking_with_stores(get::<TaskId>),
        )
    });
    assert_eq!(rt.block_on(task).unwrap(), Some(TaskId(2)));
    assert_eq!(rt.block_on(job).unwrap(), Some(TaskId(2)));
    let plain = scope(TaskId(2), || rt.spawn(async { get::<TaskId>() }));
    assert_eq!(rt.block_on(plain).unwrap(), None);

    // `block_on` polls on the calling thread: no adapter needed.
    let seen = scope(TaskId(3), || rt.block_on(async { get::<TaskId>() }));
    assert_eq!(seen, Some(TaskId(3)));
}

#[test]
fn local_spawns_carry_the_stores_and_plain_ones_do_not() {
    let rt = current_thread();
    let local = LocalSet::new();
    let id = Some(TaskId(3));
    local.block_on(
        &rt,
        async {
            assert_eq!(
                als::spawn_local(async { get::<TaskId>() }).await.unwrap(),
                id
            );
            let plain = tokio::task::spawn_local(async { get::<TaskId>() });
            assert_eq!(plain.await.unwrap(), None);

            let mut set = JoinSet::new();
            set.spawn_local_with_stores(async { get::<TaskId>() });
            assert_eq!(set.join_next().await.unwrap().unwrap(), id);
            set.spawn_local(async { get::<TaskId>() });
            assert_eq!(set.join_next().await.unwrap().unwrap(), None);
        }
        .with_store(TaskId(3)),
    );

    let carried = scope(TaskId(4), || {
        local.spawn_local_with_stores(async { get::<TaskId>() })
    });
    let plain = scope(TaskId(4), || local.spawn_local(async { get::<TaskId>() }));
    assert_eq!(local.block_on(&rt, carried).unwrap(), Some(TaskId(4)));
    assert_eq!(local.block_on(&rt, plain).unwrap(), None);
}

#[test]
fn the_stores_are_captured_when_the_task_is_spawned() {
    let rt = multi_thread();
    rt.block_on(async {
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let go = move || go.send(()).unwrap();
        stores_are_captured_at_spawn(&Tokio, go, async move { wait.await.unwrap() }).await;
        let child = async { als::spawn(async { get::<TaskId>() }).await.unwrap() }
            .without_store::<TaskId>()
            .with_store(TaskId(1));
        assert_eq!(child.await, None);
    });
}

/// A carried store changed through interior mutability (a `Cell`) at every
/// poll of the task: each poll sees the last change, whether the task
/// carries the store alone (the one-word case) or with another store, and
/// the spawner's own store is not changed.
#[test]
fn a_change_made_through_a_carried_store_lasts_across_the_tasks_polls() {
    async fn doubling() -> Vec<u64> {
        let mut seen = Vec::new();
        for _ in 0..4 {
            with(|cell: Option<&Cell<u64>>| {
                let cell = cell.unwrap();
                seen.push(cell.get());
                cell.set(cell.get() * 2);
            });
            yield_now().await;
        }
        seen
    }
    for rt in [current_thread(), multi_thread()] {
        let _in_rt = rt.enter();
        let alone = scope(Cell::new(1u64), || {
            let task = als::spawn(doubling());
            (rt.block_on(task).unwrap(), get::<Cell<u64>>())
        });
        assert_eq!(alone, (vec![1, 2, 4, 8], Some(Cell::new(1))));
        let with_another = scope(TaskId(3), || {
            scope(Cell::new(1u64), || {
                rt.block_on(als::spawn(doubling())).unwrap()
            })
        });
        assert_eq!(with_another, [1, 2, 4, 8]);
    }
}

#[test]
fn local_stores_are_not_carried() {
    use std::cell::Cell;
    use std::rc::Rc;

    let rt = current_thread();
    let local = LocalSet::new();
    local.block_on(
        &rt,
        async {
            // The parent sees its local stores...
            assert_eq!(get::<TaskId>(), Some(TaskId(2)));
            assert!(is_set::<Rc<Cell<u8>>>());
            // ...new work sees neither them nor the outer `TaskId(1)` they shadow.
            let child = als::spawn_local(async { (get::<TaskId>(), is_set::<Rc<Cell<u8>>>()) });
            assert_eq!(child.await.unwrap(), (None, false));
            assert_eq!(als::spawn_blocking(get::<TaskId>).await.unwrap(), None);
        }
        .with_local_store(TaskId(2))
        .with_local_store(Rc::new(Cell::new(0u8)))
        .with_store(TaskId(1)),
    );
}

// ---- 5. cancellation ----

#[test]
fn aborting_a_running_task_drops_it_with_its_store() {
    let rt = multi_thread();
    let (tx, drops) = mpsc::channel();
    rt.block_on(async {
        let (started, running) = tokio::sync::oneshot::channel();
        let probe = DropProbe(tx.clone());
        let task = scope(TaskId(5), || {
            als::spawn(probe.hold(move || started.send(()).unwrap()))
        });
        running.await.unwrap();
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());

        // Same with a plain spawn of a future that carries its own store.
        let (started, running) = tokio::sync::oneshot::channel();
        let probe = DropProbe(tx.clone());
        let task = tokio::spawn(
            probe
                .hold(move || started.send(()).unwrap())
                .with_store(TaskId(6)),
        );
        running.await.unwrap();
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
    });
    assert_eq!(next_drop(&drops), Some(TaskId(5)));
    assert_eq!(next_drop(&drops), Some(TaskId(6)));
}

#[test]
fn aborting_a_task_before_its_first_poll_drops_it_with_its_store() {
    let rt = current_thread();
    let (tx, drops) = mpsc::channel();
    let polled = Arc::new(AtomicBool::new(false));
    rt.block_on(async {
        let probe = DropProbe(tx);
        let flag = polled.clone();
        let task = scope(TaskId(7), || {
            als::spawn(async move {
                let _probe = probe;
                flag.store(true, SeqCst);
            })
        });
        // Current-thread runtime: the task cannot run before this yields.
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
    });
    assert!(!polled.load(SeqCst));
    assert_eq!(next_drop(&drops), Some(TaskId(7)));
}

#[test]
fn dropping_a_join_set_or_the_runtime_drops_tasks_with_their_stores() {
    let (tx, drops) = mpsc::channel();
    let rt = multi_thread();
    rt.block_on(async {
        let mut set = JoinSet::new();
        let (started, mut running) = tokio::sync::mpsc::channel(3);
        for i in 10..13 {
            let (probe, started) = (DropProbe(tx.clone()), started.clone());
            scope(TaskId(i), || {
                set.spawn_with_stores(async move {
                    let _probe = probe;
                    started.send(()).await.unwrap();
                    std::future::pending::<()>().await;
                })
            });
        }
        for _ in 0..3 {
            running.recv().await.unwrap();
        }
        drop(set);
    });
    let mut seen: Vec<_> = (0..3).map(|_| next_drop(&drops)).collect();
    seen.sort_by_key(|id| id.map(|id| id.0));
    assert_eq!(seen, [Some(TaskId(10)), Some(TaskId(11)), Some(TaskId(12))]);

    // Tasks still pending when the runtime shuts down.
    let probe = DropProbe(tx);
    let (started, running) = mpsc::channel();
    scope(TaskId(20), || {
        rt.spawn_with_stores(probe.hold(move || started.send(()).unwrap()))
    });
    running.recv_timeout(PATIENCE).unwrap();
    drop(rt);
    assert_eq!(next_drop(&drops), Some(TaskId(20)));
}

// ---- 6. panics ----

#[test]
fn a_panicking_task_leaves_nothing_behind_current_thread() {
    let rt = current_thread();
    rt.block_on(async {
        let err = scope(TaskId(13), || {
            als::spawn(panicking_task::<Tokio>(TaskId(13)))
        })
        .await
        .unwrap_err();
        assert!(err.is_panic());
        // This future runs on the very thread that unwound out of the task.
        assert!(Snapshot::capture().is_empty());
        let err = tokio::spawn(panicking_task::<Tokio>(TaskId(15)).with_store(TaskId(15)))
            .await
            .unwrap_err();
        assert!(err.is_panic());
        assert!(Snapshot::capture().is_empty());

        // The runtime keeps working, stores and all.
        let task = scope(TaskId(17), || {
            als::spawn(async {
                yield_now().await;
                get::<TaskId>()
            })
        });
        assert_eq!(task.await.unwrap(), Some(TaskId(17)));
        assert_eq!(tokio::spawn(async { get::<TaskId>() }).await.unwrap(), None);
    });
    assert!(Snapshot::capture().is_empty());
}

#[test]
fn a_panicking_task_leaves_nothing_behind_multi_thread() {
    let between = Arc::new(BetweenPolls::new("no worker ever parked"));
    let rt = watched_multi_thread(&between);
    rt.block_on(async {
        let panicked_on = Arc::new(Mutex::new(HashSet::new()));
        let tasks: Vec<_> = panicking_tasks::<Tokio>(&panicked_on)
            .map(|(id, task)| scope(id, || als::spawn(task)))
            .collect();
        for task in tasks {
            assert!(task.await.unwrap_err().is_panic());
        }

        // Probe every worker a task panicked on, with store-less tasks.
        probe_the_threads(
            &Tokio,
            &panicked_on,
            "a store was left behind on a worker thread",
            "some worker a task panicked on was never probed",
        )
        .await;

        // The runtime keeps working, stores and all.
        each_task_sees_its_own_store(&Tokio).await;
    });
    drop(rt);
    between.assert_clean();
    assert!(Snapshot::capture().is_empty());
}

// ---- 7. runtimes driven inside a scope ----

/// tokio's own spawn of a [`look`], during a drive.
fn tokio_spawned() -> impl Future<Output = [Option<TaskId>; 2]> {
    tokio::spawn(look::<Tokio>()).map(Result::unwrap)
}

/// tokio's own `spawn_local` of a [`look`], during a drive.
fn locally_spawned() -> impl Future<Output = [Option<TaskId>; 2]> {
    tokio::task::spawn_local(look::<Tokio>()).map(Result::unwrap)
}

#[test]
fn plain_block_on_inside_a_scope_lends_the_store_to_every_task() {
    // The documented hazard, which `block_on_with_stores` exists for.
    let rt = current_thread();
    let (task, report) = background::<Tokio>();
    rt.spawn(task);
    let drive = scope(TaskId(1), || rt.block_on(driven(report, tokio_spawned)));
    assert_eq!(drive, Sightings::leaked(TaskId(1)));
}

#[test]
fn block_on_with_stores_keeps_the_store_to_the_driven_future() {
    // Current-thread: the runtime polls every task inside `block_on`.
    let rt = current_thread();
    let (task, report) = background::<Tokio>();
    rt.spawn(task);
    let drive = scope(TaskId(1), || {
        rt.block_on_with_stores(driven(report, tokio_spawned))
    });
    assert_eq!(drive, Sightings::isolated(TaskId(1)));
    assert!(Snapshot::capture().is_empty());

    // Multi-thread, through the `Runtime` and through a `Handle`.
    let rt = multi_thread();
    for through_handle in [false, true] {
        let (task, report) = background::<Tokio>();
        rt.spawn(task);
        let fut = driven(report, tokio_spawned);
        let drive = scope(TaskId(2), || {
            if through_handle {
                rt.handle().block_on_with_stores(fut)
            } else {
                rt.block_on_with_stores(fut)
            }
        });
        assert_eq!(drive, Sightings::isolated(TaskId(2)));
    }

    // Local stores are not carried into the driven future.
    let seen = async_local_storage::scope_local(TaskId(3), || {
        rt.block_on_with_stores(async { get::<TaskId>() })
    });
    assert_eq!(seen, None);
    assert!(Snapshot::capture().is_empty());
}

#[test]
fn plain_local_set_drivers_inside_a_scope_lend_the_store_to_every_task() {
    // The documented hazard, which the `LocalSetExt` drivers exist for.
    let rt = current_thread();
    let local = LocalSet::new();
    let (task, report) = background::<Tokio>();
    local.spawn_local(task);
    let drive = scope(TaskId(1), || {
        local.block_on(&rt, driven(report, locally_spawned))
    });
    assert_eq!(drive, Sightings::leaked(TaskId(1)));

    let (task, report) = background::<Tokio>();
    local.spawn_local(task);
    let drive = rt.block_on(
        async { local.run_until(driven(report, locally_spawned)).await }.with_store(TaskId(2)),
    );
    assert_eq!(drive, Sightings::leaked(TaskId(2)));
}

#[test]
fn local_set_drivers_with_stores_keep_the_store_to_the_driven_future() {
    let rt = current_thread();
    let local = LocalSet::new();

    // `block_on_with_stores`: local tasks, and the runtime's own.
    let (task, report) = background::<Tokio>();
    local.spawn_local(task);
    let drive = scope(TaskId(1), || {
        local.block_on_with_stores(&rt, driven(report, locally_spawned))
    });
    assert_eq!(drive, Sightings::isolated(TaskId(1)));
    let (task, report) = background::<Tokio>();
    rt.spawn(task);
    let drive = scope(TaskId(2), || {
        local.block_on_with_stores(&rt, driven(report, tokio_spawned))
    });
    assert_eq!(drive, Sightings::isolated(TaskId(2)));

    // `run_until_with_stores`, awaited inside a future that has a store.
    let (task, report) = background::<Tokio>();
    local.spawn_local(task);
    let drive = rt.block_on(
        async {
            local
                .run_until_with_stores(driven(report, locally_spawned))
                .await
        }
        .with_store(TaskId(3)),
    );
    assert_eq!(drive, Sightings::isolated(TaskId(3)));
    assert!(Snapshot::capture().is_empty());
}

#[test]
fn a_runtime_or_local_set_dropped_inside_a_scope_drops_plain_tasks_with_its_stores() {
    // The documented hazard: the tasks left in a runtime (or a `LocalSet`)
    // are dropped where it is dropped, so tokio's own tasks drop with the
    // caller's stores visible. The remedy, dropping it inside `isolate`,
    // shows them none.
    for isolated in [false, true] {
        let expected = (!isolated).then_some(TaskId(1));

        let (tx, drops) = mpsc::channel();
        let rt = current_thread();
        let (started, running) = mpsc::channel();
        rt.spawn(DropProbe(tx.clone()).hold(move || started.send(()).unwrap()));
        rt.block_on(yield_now()); // the task has run once: it is a running task that is dropped
        running.recv_timeout(PATIENCE).unwrap();
        drop_in_scope(isolated, TaskId(1), rt);
        assert_eq!(next_drop(&drops), expected, "runtime, isolated: {isolated}");

        let local = LocalSet::new();
        local.spawn_local(DropProbe(tx).hold(|| ()));
        drop_in_scope(isolated, TaskId(1), local);
        assert_eq!(
            next_drop(&drops),
            expected,
            "LocalSet, isolated: {isolated}"
        );
        assert!(Snapshot::capture().is_empty());
    }
}
