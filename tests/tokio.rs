//! The tokio adapter on tokio's own runtimes (current-thread and
//! multi-thread): stores at every poll, migration between workers,
//! isolation, inheritance through the adapter (and not through tokio's own
//! spawn), cancellation, panics.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use async_local_storage::tokio::{self as als, HandleExt, JoinSetExt, LocalSetExt};
use async_local_storage::{exit, get, is_set, scope, Snapshot, WithStore};
use futures::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::{yield_now, JoinSet, LocalSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct TaskId(u64);

const WORKERS: usize = 2;
/// Upper bound for waits on work the runtime does in the background.
const PATIENCE: Duration = Duration::from_secs(30);

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

/// Counts the worker threads' park/unpark hooks (called between polls) and
/// those that found any store visible.
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
        assert!(self.checks.load(SeqCst) > 0, "no worker ever parked");
        assert_eq!(
            self.violations.load(SeqCst),
            0,
            "a worker thread saw a store between polls"
        );
    }
}

/// A multi-thread runtime whose workers check, each time they park and
/// unpark, that no store is visible.
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

/// Waits (boundedly) until `done` holds.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
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
        tokio::time::sleep(Duration::from_millis(1)).await;
        check();
    }
    tokio::time::timeout(PATIENCE, tokio::time::sleep(Duration::from_millis(1)))
        .await
        .unwrap();
    check();

    // A channel fed by a plain task, which never sees our store.
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let feeder = tokio::spawn(async move {
        for i in 0..10u32 {
            assert!(!is_set::<TaskId>());
            tx.send(i).await.unwrap();
        }
    });
    for i in 0..10 {
        assert_eq!(rx.recv().await, Some(i));
        check();
    }
    feeder.await.unwrap();
    check();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        yield_now().await;
        tx.send(5u8).unwrap();
    });
    assert_eq!(rx.await.unwrap(), 5);
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
    server.await.unwrap();
    check();
    checks
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
    const TASKS: u64 = 4;
    const YIELDS: usize = 100;
    let rt = multi_thread();
    for _attempt in 0..20 {
        let seen: Vec<Arc<Seen>> = (0..TASKS).map(|_| Arc::default()).collect();
        rt.block_on(async {
            let handles: Vec<_> = (0..TASKS)
                .map(|i| {
                    let id = TaskId(i);
                    let fut = checked(Some(id), seen[i as usize].clone(), async move {
                        for _ in 0..YIELDS {
                            yield_now().await;
                            assert_id(id);
                            // Keep this worker busy so that the other one
                            // steals from its queue.
                            std::thread::sleep(Duration::from_micros(50));
                        }
                    });
                    scope(id, || als::spawn(fut))
                })
                .collect();
            for handle in handles {
                handle.await.unwrap();
            }
        });
        for seen in &seen {
            assert!(seen.polls() > YIELDS);
        }
        if seen.iter().any(|seen| seen.threads() > 1) {
            return;
        }
    }
    panic!("no task moved between worker threads in 20 attempts");
}

// ---- 3. isolation ----

#[test]
fn thousands_of_tasks_never_see_each_other() {
    const TASKS: u64 = 3_000;
    let between = Arc::new(BetweenPolls::default());
    let rt = watched_multi_thread(&between);
    let stored = Arc::new(Seen::default());
    let probes = Arc::new(Seen::default());
    let arrived = Arc::new(AtomicUsize::new(0));

    rt.block_on(async {
        let (open, gate) = futures::channel::oneshot::channel::<()>();
        let gate = gate.shared();
        let mut handles = Vec::new();
        let mut probe_handles = Vec::new();
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
                tokio::time::sleep(Duration::from_millis(1)).await;
                assert_id(id);
                yield_now().await;
                assert_id(id);
                id
            });
            // Half through the adapter, half carrying their own store.
            handles.push(if i % 2 == 0 {
                scope(id, || als::spawn(body))
            } else {
                tokio::spawn(body.with_store(id))
            });
            // Store-less tasks in between, on the same workers: each poll
            // starts between two polls of other tasks, and sees nothing.
            if i % 4 == 0 {
                probe_handles.push(tokio::spawn(checked(None, probes.clone(), async {
                    for _ in 0..3 {
                        yield_now().await;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                })));
            }
        }
        // Every task is suspended at once before any goes on.
        wait_for("every task to reach the gate", || {
            arrived.load(SeqCst) == TASKS as usize
        })
        .await;
        open.send(()).unwrap();
        for (i, handle) in handles.into_iter().enumerate() {
            assert_eq!(handle.await.unwrap(), TaskId(i as u64));
        }
        for handle in probe_handles {
            handle.await.unwrap();
        }
    });

    assert!(stored.polls() >= 6 * TASKS as usize);
    assert_eq!(
        stored.threads(),
        WORKERS,
        "the tasks did not run on every worker"
    );
    // Three yields, then a timer that may already have fired.
    assert!(probes.polls() >= 4 * (TASKS as usize / 4));
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
    #[derive(Clone, Debug, PartialEq)]
    struct Tenant(&'static str);

    let rt = multi_thread();
    rt.block_on(async {
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
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
        assert_eq!(
            child.await.unwrap(),
            (Some(TaskId(1)), Some(Tenant("acme")))
        );

        // Hidden types stay hidden; the rest is carried.
        let child = scope(TaskId(1), || {
            scope(Tenant("acme"), || {
                exit::<TaskId, _>(|| als::spawn(async { (get::<TaskId>(), get::<Tenant>()) }))
            })
        });
        assert_eq!(child.await.unwrap(), (None, Some(Tenant("acme"))));
        let child = async { als::spawn(async { get::<TaskId>() }).await.unwrap() }
            .without_store::<TaskId>()
            .with_store(TaskId(1));
        assert_eq!(child.await, None);
    });
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
            als::spawn(async move {
                let _probe = probe;
                started.send(()).unwrap();
                std::future::pending::<()>().await;
            })
        });
        running.await.unwrap();
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());

        // Same with a plain spawn of a future that carries its own store.
        let (started, running) = tokio::sync::oneshot::channel();
        let probe = DropProbe(tx.clone());
        let task = tokio::spawn(
            async move {
                let _probe = probe;
                started.send(()).unwrap();
                std::future::pending::<()>().await;
            }
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
        rt.spawn_with_stores(async move {
            let _probe = probe;
            started.send(()).unwrap();
            std::future::pending::<()>().await;
        })
    });
    running.recv_timeout(PATIENCE).unwrap();
    drop(rt);
    assert_eq!(next_drop(&drops), Some(TaskId(20)));
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
fn a_panicking_task_leaves_nothing_behind_current_thread() {
    let rt = current_thread();
    rt.block_on(async {
        let err = scope(TaskId(13), || als::spawn(panicking_task(TaskId(13))))
            .await
            .unwrap_err();
        assert!(err.is_panic());
        // This future runs on the very thread that unwound out of the task.
        assert!(Snapshot::capture().is_empty());
        let err = tokio::spawn(panicking_task(TaskId(15)).with_store(TaskId(15)))
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
    const PANICS: u64 = 8;
    let between = Arc::new(BetweenPolls::default());
    let rt = watched_multi_thread(&between);
    rt.block_on(async {
        let panicked_on = Arc::new(Mutex::new(HashSet::new()));
        let mut tasks = Vec::new();
        for i in 0..PANICS {
            let id = TaskId(200 + 2 * i);
            let panicked_on = panicked_on.clone();
            tasks.push(scope(id, || {
                als::spawn(async move {
                    panicked_on
                        .lock()
                        .unwrap()
                        .insert(std::thread::current().id());
                    panicking_task(id).await;
                })
            }));
        }
        for task in tasks {
            assert!(task.await.unwrap_err().is_panic());
        }

        // Probe every worker a task panicked on, with store-less tasks.
        let panicked_on = panicked_on.lock().unwrap().clone();
        let mut probed = HashSet::new();
        for _round in 0..100 {
            let probes: Vec<_> = (0..32)
                .map(|_| {
                    tokio::spawn(async {
                        yield_now().await;
                        (std::thread::current().id(), Snapshot::capture().is_empty())
                    })
                })
                .collect();
            for probe in probes {
                let (thread, clean) = probe.await.unwrap();
                assert!(clean, "a store was left behind on a worker thread");
                probed.insert(thread);
            }
            if panicked_on.is_subset(&probed) {
                break;
            }
        }
        assert!(
            panicked_on.is_subset(&probed),
            "some worker a task panicked on was never probed"
        );

        // The runtime keeps working, stores and all.
        let tasks: Vec<_> = (0..100)
            .map(|i| scope(TaskId(i), || als::spawn(async { get::<TaskId>() })))
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.await.unwrap(), Some(TaskId(i as u64)));
        }
    });
    drop(rt);
    between.assert_clean();
    assert!(Snapshot::capture().is_empty());
}
