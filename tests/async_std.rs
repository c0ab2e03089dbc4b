//! The async-std adapter on async-std's global runtime: stores at every
//! poll, migration between executor threads, isolation, inheritance through
//! the adapter (and not through async-std's own spawn), cancellation, panics,
//! the runtime driven inside a scope.

mod common;

use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex, Once};
use std::time::Duration;

use async_local_storage::adapters::async_std::{self as als, BuilderExt};
use async_local_storage::{get, is_set, scope, Snapshot, WithStore};
use async_std::io::{ReadExt, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use async_std::task::{self, block_on, yield_now, Builder, JoinHandle};
use common::runtime::{
    a_task_moves_between_threads, background, checked, driven, each_task_sees_its_own_store,
    fed_by_a_plain_task, look, loopback_echo, migrating_tasks, next_drop, panicking_task,
    panicking_tasks, probe_the_threads, stores_are_captured_at_spawn, thousands_of_tasks,
    yields_and_timers, Checks, DropProbe, RuntimeUnderTest, Seen, Sightings, TaskId, PATIENCE,
    WORKERS,
};
use futures::FutureExt;

/// Fixes the size of the global runtime (to [`WORKERS`] executor threads)
/// before its first use. Every test calls it first.
fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| std::env::set_var("ASYNC_STD_THREAD_COUNT", WORKERS.to_string()));
}

// ---- helpers ----

/// async-std's global runtime, for the shared test bodies: the adapter's
/// spawn and async-std's own.
struct AsyncStd;

impl RuntimeUnderTest for AsyncStd {
    type Task<T: Send + 'static> = JoinHandle<T>;

    fn spawn_with_stores<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> JoinHandle<T> {
        als::spawn(fut)
    }

    fn spawn<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> JoinHandle<T> {
        task::spawn(fut)
    }

    fn yield_now() -> impl Future + Send + 'static {
        yield_now()
    }

    fn sleep(duration: Duration) -> impl Future + Send + 'static {
        task::sleep(duration)
    }
}

// ---- 1. every poll, across every kind of await ----

/// Awaits yields, timers, channels and loopback TCP, asserting `id` after
/// every await. Returns the number of checks.
async fn every_kind_of_await(id: TaskId) -> usize {
    let mut checks = Checks::start(id);
    yields_and_timers::<AsyncStd>(&mut checks).await;
    async_std::future::timeout(PATIENCE, task::sleep(Duration::from_millis(1)))
        .await
        .unwrap();
    checks.check();

    // A channel fed by a plain task, which never sees our store.
    fed_by_a_plain_task!(&AsyncStd, &mut checks, async_std::channel::bounded(1), Ok);

    // Loopback TCP, echoed by a server task with a store of its own.
    loopback_echo!(&AsyncStd, &mut checks, TcpListener, TcpStream);
    checks.count()
}

#[test]
fn store_visible_at_every_poll() {
    init();
    // Through the adapter: the store comes from the spawner's snapshot.
    let seen = Arc::new(Seen::default());
    let id = TaskId(1);
    let task = scope(id, || {
        als::spawn(checked(Some(id), seen.clone(), every_kind_of_await(id)))
    });
    assert_eq!(block_on(task), 59);
    assert!(seen.polls() >= 20, "only {} polls", seen.polls());

    // Set at the root of a plain task.
    let seen = Arc::new(Seen::default());
    let id = TaskId(2);
    let fut = checked(Some(id), seen.clone(), every_kind_of_await(id)).with_store(id);
    assert_eq!(block_on(task::spawn(fut)), 59);
    assert!(seen.polls() >= 20);

    // And on the `block_on` future itself.
    let fut = checked(
        Some(TaskId(3)),
        Arc::default(),
        every_kind_of_await(TaskId(3)),
    );
    assert_eq!(block_on(fut.with_store(TaskId(3))), 59);

    assert!(Snapshot::capture().is_empty());
}

// ---- 2. migration between executor threads ----

#[test]
fn a_task_that_moves_between_threads_sees_its_own_store() {
    init();
    a_task_moves_between_threads("executor threads", |seen| {
        let tasks = migrating_tasks(&AsyncStd, seen);
        block_on(async {
            for task in tasks {
                task.await;
            }
        });
    });
}

// ---- 3. isolation ----

#[test]
fn thousands_of_tasks_never_see_each_other() {
    init();
    let crowd = block_on(thousands_of_tasks(&AsyncStd));
    crowd.assert_every_task_ran("the tasks did not run on every executor thread");
    assert_eq!(crowd.probes.threads(), WORKERS);
    assert!(Snapshot::capture().is_empty());
}

// ---- 4. inheritance ----

#[test]
fn adapter_spawns_carry_the_stores_and_plain_spawns_do_not() {
    init();
    let id = Some(TaskId(1));
    block_on(
        async {
            assert_eq!(als::spawn(async { get::<TaskId>() }).await, id);
            assert_eq!(task::spawn(async { get::<TaskId>() }).await, None);

            assert_eq!(als::spawn_local(async { get::<TaskId>() }).await, id);
            assert_eq!(task::spawn_local(async { get::<TaskId>() }).await, None);

            assert_eq!(als::spawn_blocking(get::<TaskId>).await, id);
            assert_eq!(task::spawn_blocking(get::<TaskId>).await, None);

            let named = Builder::new().name("carried".into());
            let task = named.spawn_with_stores(async { get::<TaskId>() }).unwrap();
            assert_eq!(task.await, id);
            let task = Builder::new().local_with_stores(async { get::<TaskId>() });
            assert_eq!(task.unwrap().await, id);
            let task = Builder::new().spawn(async { get::<TaskId>() }).unwrap();
            assert_eq!(task.await, None);
            let task = Builder::new().local(async { get::<TaskId>() }).unwrap();
            assert_eq!(task.await, None);

            // Grandchildren: carried again by the adapter, lost by a plain spawn.
            let nested = als::spawn(async { als::spawn(async { get::<TaskId>() }).await });
            assert_eq!(nested.await, id);
            let nested = als::spawn(async { task::spawn(async { get::<TaskId>() }).await });
            assert_eq!(nested.await, None);
        }
        .with_store(TaskId(1)),
    );

    // `block_on` polls on the calling thread: no adapter needed.
    assert_eq!(
        scope(TaskId(2), || block_on(async { get::<TaskId>() })),
        Some(TaskId(2))
    );
}

#[test]
fn the_stores_are_captured_when_the_task_is_spawned() {
    init();
    block_on(async {
        let (go, wait) = futures::channel::oneshot::channel::<()>();
        let go = move || go.send(()).unwrap();
        stores_are_captured_at_spawn(&AsyncStd, go, async move { wait.await.unwrap() }).await;
    });
}

#[test]
fn local_stores_are_not_carried() {
    use std::cell::Cell;
    use std::rc::Rc;

    init();
    block_on(
        async {
            assert_eq!(get::<TaskId>(), Some(TaskId(2)));
            assert!(is_set::<Rc<Cell<u8>>>());
            // New work sees neither the local stores nor the `TaskId(1)` they shadow.
            let child = als::spawn_local(async { (get::<TaskId>(), is_set::<Rc<Cell<u8>>>()) });
            assert_eq!(child.await, (None, false));
            assert_eq!(als::spawn(async { get::<TaskId>() }).await, None);
        }
        .with_local_store(TaskId(2))
        .with_local_store(Rc::new(Cell::new(0u8)))
        .with_store(TaskId(1)),
    );
}

// ---- 5. cancellation ----

#[test]
fn cancelling_a_running_task_drops_it_with_its_store() {
    init();
    let (tx, drops) = mpsc::channel();
    block_on(async {
        let (started, running) = futures::channel::oneshot::channel();
        let probe = DropProbe(tx.clone());
        let task = scope(TaskId(5), || {
            als::spawn(probe.hold(move || started.send(()).unwrap()))
        });
        running.await.unwrap();
        assert_eq!(task.cancel().await, None);

        // Same with a plain spawn of a future that carries its own store.
        let (started, running) = futures::channel::oneshot::channel();
        let probe = DropProbe(tx.clone());
        let task = task::spawn(
            probe
                .hold(move || started.send(()).unwrap())
                .with_store(TaskId(6)),
        );
        running.await.unwrap();
        assert_eq!(task.cancel().await, None);
    });
    assert_eq!(next_drop(&drops), Some(TaskId(5)));
    assert_eq!(next_drop(&drops), Some(TaskId(6)));
}

#[test]
fn cancelling_a_task_before_its_first_poll_drops_it_with_its_store() {
    init();
    let (tx, drops) = mpsc::channel();
    let polled = Arc::new(AtomicBool::new(false));
    block_on(async {
        let probe = DropProbe(tx);
        let flag = polled.clone();
        // A local task runs on this thread, so not before this future yields.
        let task = scope(TaskId(7), || {
            als::spawn_local(async move {
                let _probe = probe;
                flag.store(true, SeqCst);
            })
        });
        assert_eq!(task.cancel().await, None);
    });
    assert!(!polled.load(SeqCst));
    assert_eq!(next_drop(&drops), Some(TaskId(7)));
}

// ---- 6. panics ----

#[test]
fn a_panicking_local_task_leaves_nothing_behind() {
    init();
    block_on(async {
        // A local task runs on this thread: the panic unwinds through it.
        let task = scope(TaskId(13), || {
            als::spawn_local(panicking_task::<AsyncStd>(TaskId(13)))
        });
        assert!(AssertUnwindSafe(task).catch_unwind().await.is_err());
        assert!(Snapshot::capture().is_empty());

        // The executor keeps working, stores and all.
        let task = scope(TaskId(17), || {
            als::spawn_local(async {
                yield_now().await;
                get::<TaskId>()
            })
        });
        assert_eq!(task.await, Some(TaskId(17)));
        assert_eq!(task::spawn_local(async { get::<TaskId>() }).await, None);
    });
    assert!(Snapshot::capture().is_empty());
}

#[test]
fn a_panicking_task_leaves_nothing_behind_on_the_executor_threads() {
    init();
    block_on(async {
        let panicked_on = Arc::new(Mutex::new(HashSet::new()));
        let tasks: Vec<_> = panicking_tasks::<AsyncStd>(&panicked_on)
            .map(|(id, task)| scope(id, || als::spawn(task)))
            .collect();
        for task in tasks {
            assert!(AssertUnwindSafe(task).catch_unwind().await.is_err());
        }

        // Probe every thread a task panicked on, with store-less tasks.
        probe_the_threads(
            &AsyncStd,
            &panicked_on,
            "a store was left behind on an executor thread",
            "some thread a task panicked on was never probed",
        )
        .await;

        // The runtime keeps working, stores and all.
        each_task_sees_its_own_store(&AsyncStd).await;
    });
    assert!(Snapshot::capture().is_empty());
}

// ---- 7. the runtime driven inside a scope ----

/// async-std's own `spawn_local` of a [`look`], during a drive.
fn locally_spawned() -> JoinHandle<[Option<TaskId>; 2]> {
    task::spawn_local(look::<AsyncStd>())
}

#[test]
fn plain_block_on_inside_a_scope_lends_the_store_to_every_local_task() {
    // The documented hazard, which the adapter's `block_on` exists for.
    init();
    let (job, report) = background::<AsyncStd>();
    task::spawn_local(job);
    let drive = scope(TaskId(1), || block_on(driven(report, locally_spawned)));
    assert_eq!(drive, Sightings::leaked(TaskId(1)));
}

#[test]
fn the_adapters_block_on_keeps_the_store_to_the_driven_future() {
    init();
    let (job, report) = background::<AsyncStd>();
    task::spawn_local(job);
    let drive = scope(TaskId(1), || als::block_on(driven(report, locally_spawned)));
    assert_eq!(drive, Sightings::isolated(TaskId(1)));

    // Tasks on the executor threads see nothing either way.
    let (job, report) = background::<AsyncStd>();
    task::spawn(job);
    let drive = scope(TaskId(2), || {
        als::block_on(driven(report, || task::spawn(look::<AsyncStd>())))
    });
    assert_eq!(drive, Sightings::isolated(TaskId(2)));

    // `Builder::blocking`, which `block_on` calls: the hazard, then the adapter.
    let (job, report) = background::<AsyncStd>();
    task::spawn_local(job);
    let drive = scope(TaskId(4), || {
        Builder::new().blocking(driven(report, locally_spawned))
    });
    assert_eq!(drive, Sightings::leaked(TaskId(4)));
    let (job, report) = background::<AsyncStd>();
    task::spawn_local(job);
    let drive = scope(TaskId(5), || {
        Builder::new()
            .name("driven".into())
            .blocking_with_stores(driven(report, locally_spawned))
    });
    assert_eq!(drive, Sightings::isolated(TaskId(5)));

    // Local stores are not carried into the driven future.
    let seen =
        async_local_storage::scope_local(TaskId(3), || als::block_on(async { get::<TaskId>() }));
    assert_eq!(seen, None);
    assert!(Snapshot::capture().is_empty());
}
