//! The async-std adapter on async-std's global runtime: stores at every
//! poll, migration between executor threads, isolation, inheritance through
//! the adapter (and not through async-std's own spawn), cancellation, panics.

use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex, Once};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use async_local_storage::async_std::{self as als, BuilderExt};
use async_local_storage::{exit, get, is_set, scope, Snapshot, WithStore};
use async_std::io::{ReadExt, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use async_std::task::{self, block_on, yield_now, Builder};
use futures::FutureExt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct TaskId(u64);

/// Executor threads of async-std's global runtime (set by [`init`]).
const WORKERS: usize = 2;
/// Upper bound for waits on work the runtime does in the background.
const PATIENCE: Duration = Duration::from_secs(30);

/// Fixes the size of the global runtime before its first use. Every test
/// calls it first.
fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| std::env::set_var("ASYNC_STD_THREAD_COUNT", WORKERS.to_string()));
}

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

/// Waits (boundedly) until `done` holds.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        task::sleep(Duration::from_millis(1)).await;
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
        task::sleep(Duration::from_millis(1)).await;
        check();
    }
    async_std::future::timeout(PATIENCE, task::sleep(Duration::from_millis(1)))
        .await
        .unwrap();
    check();

    // A channel fed by a plain task, which never sees our store.
    let (tx, rx) = async_std::channel::bounded(1);
    let feeder = task::spawn(async move {
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
    const TASKS: u64 = 4;
    const YIELDS: usize = 100;
    init();
    for _attempt in 0..20 {
        let seen: Vec<Arc<Seen>> = (0..TASKS).map(|_| Arc::default()).collect();
        let handles: Vec<_> = (0..TASKS)
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
                scope(id, || als::spawn(fut))
            })
            .collect();
        block_on(async {
            for handle in handles {
                handle.await;
            }
        });
        for seen in &seen {
            assert!(seen.polls() > YIELDS);
        }
        if seen.iter().any(|seen| seen.threads() > 1) {
            return;
        }
    }
    panic!("no task moved between executor threads in 20 attempts");
}

// ---- 3. isolation ----

#[test]
fn thousands_of_tasks_never_see_each_other() {
    const TASKS: u64 = 3_000;
    init();
    let stored = Arc::new(Seen::default());
    let probes = Arc::new(Seen::default());
    let arrived = Arc::new(AtomicUsize::new(0));

    block_on(async {
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
                task::sleep(Duration::from_millis(1)).await;
                assert_id(id);
                yield_now().await;
                assert_id(id);
                id
            });
            // Half through the adapter, half carrying their own store.
            handles.push(if i % 2 == 0 {
                scope(id, || als::spawn(body))
            } else {
                task::spawn(body.with_store(id))
            });
            // Store-less tasks in between, on the same threads: each poll
            // starts between two polls of other tasks, and sees nothing.
            if i % 4 == 0 {
                probe_handles.push(task::spawn(checked(None, probes.clone(), async {
                    for _ in 0..3 {
                        yield_now().await;
                    }
                    task::sleep(Duration::from_millis(1)).await;
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
            assert_eq!(handle.await, TaskId(i as u64));
        }
        for handle in probe_handles {
            handle.await;
        }
    });

    assert!(stored.polls() >= 6 * TASKS as usize);
    assert_eq!(
        stored.threads(),
        WORKERS,
        "the tasks did not run on every executor thread"
    );
    // Three yields, then a timer that may already have fired.
    assert!(probes.polls() >= 4 * (TASKS as usize / 4));
    assert_eq!(probes.threads(), WORKERS);
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
    #[derive(Clone, Debug, PartialEq)]
    struct Tenant(&'static str);

    init();
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
            als::spawn(async move {
                let _probe = probe;
                started.send(()).unwrap();
                std::future::pending::<()>().await;
            })
        });
        running.await.unwrap();
        assert_eq!(task.cancel().await, None);

        // Same with a plain spawn of a future that carries its own store.
        let (started, running) = futures::channel::oneshot::channel();
        let probe = DropProbe(tx.clone());
        let task = task::spawn(
            async move {
                let _probe = probe;
                started.send(()).unwrap();
                std::future::pending::<()>().await;
            }
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
    init();
    block_on(async {
        // A local task runs on this thread: the panic unwinds through it.
        let task = scope(TaskId(13), || als::spawn_local(panicking_task(TaskId(13))));
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
    const PANICS: u64 = 8;
    init();
    block_on(async {
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
            assert!(AssertUnwindSafe(task).catch_unwind().await.is_err());
        }

        // Probe every thread a task panicked on, with store-less tasks.
        let panicked_on = panicked_on.lock().unwrap().clone();
        let mut probed = HashSet::new();
        for _round in 0..100 {
            let probes: Vec<_> = (0..32)
                .map(|_| {
                    task::spawn(async {
                        yield_now().await;
                        (std::thread::current().id(), Snapshot::capture().is_empty())
                    })
                })
                .collect();
            for probe in probes {
                let (thread, clean) = probe.await;
                assert!(clean, "a store was left behind on an executor thread");
                probed.insert(thread);
            }
            if panicked_on.is_subset(&probed) {
                break;
            }
        }
        assert!(
            panicked_on.is_subset(&probed),
            "some thread a task panicked on was never probed"
        );

        // The runtime keeps working, stores and all.
        let tasks: Vec<_> = (0..100)
            .map(|i| scope(TaskId(i), || als::spawn(async { get::<TaskId>() })))
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.await, Some(TaskId(i as u64)));
        }
    });
    assert!(Snapshot::capture().is_empty());
}
