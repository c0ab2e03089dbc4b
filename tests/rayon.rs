//! rayon adapter (issue 11): every closure handed to rayon through the
//! adapter sees the caller's stores, on whichever worker runs it; rayon's own
//! calls see nothing; work stolen while an adapter call waits never sees the
//! waiting caller's stores.
//!
//! Every test runs on its own pool of [`THREADS`] threads.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use async_local_storage::adapters::rayon::{self as als, ParallelIteratorExt, ThreadPoolExt};
use async_local_storage::{get, scope};
use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

/// The store: who started the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Caller(&'static str);

/// A second store, for shadowing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Item(u64);

const THREADS: usize = 4;
const PATIENCE: Duration = Duration::from_secs(30);

fn pool() -> ThreadPool {
    ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .build()
        .unwrap()
}

fn me() -> ThreadId {
    std::thread::current().id()
}

/// Asserts that no worker of `pool` is left with a `Caller` or an `Item`
/// visible: a job that runs next on any of them starts clean.
#[track_caller]
fn assert_workers_clean(pool: &ThreadPool) {
    let seen = pool.broadcast(|_| (get::<Caller>(), get::<Item>()));
    assert_eq!(seen, vec![(None, None); pool.current_num_threads()]);
}

/// A few microseconds of work that the optimizer cannot remove.
fn work(seed: u64) -> u64 {
    (0..200u64).fold(seed, |acc, x| {
        std::hint::black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(x))
    })
}

#[test]
fn par_iter_with_stores_every_item_sees_the_caller_on_several_threads() {
    let pool = pool();
    let threads = Mutex::new(HashSet::new());
    let seen: Vec<(usize, Option<Caller>, ThreadId)> = pool.install(|| {
        scope(Caller("main"), || {
            (0..10_000usize)
                .into_par_iter()
                .with_stores()
                .map(|i| {
                    // Until a second worker has taken items, the first one
                    // waits (inside its item): the others steal meanwhile.
                    threads.lock().unwrap().insert(me());
                    let deadline = Instant::now() + PATIENCE;
                    while threads.lock().unwrap().len() < 2 && Instant::now() < deadline {
                        std::thread::yield_now();
                    }
                    work(i as u64);
                    (i, get::<Caller>(), me())
                })
                .collect()
        })
    });
    assert_eq!(seen.len(), 10_000);
    for (index, (i, caller, _)) in seen.iter().enumerate() {
        assert_eq!(*i, index);
        assert_eq!(*caller, Some(Caller("main")), "item {i}");
    }
    let distinct: HashSet<ThreadId> = seen.iter().map(|(_, _, t)| *t).collect();
    assert!(distinct.len() >= 2, "all items ran on one thread");
    assert_workers_clean(&pool);
}

#[test]
fn plain_par_iter_sees_nothing() {
    let pool = pool();
    // rayon's own `install` and parallel iterator: every item runs on a worker
    // that sees no store. (Through the adapter, the same items all see it.)
    let (plain, carried) = scope(Caller("main"), || {
        let plain: Vec<Option<Caller>> = pool.install(|| {
            (0..10_000)
                .into_par_iter()
                .map(|_| get::<Caller>())
                .collect()
        });
        let carried: Vec<Option<Caller>> = pool.install_with_stores(|| {
            (0..10_000)
                .into_par_iter()
                .with_stores()
                .map(|_| get::<Caller>())
                .collect()
        });
        (plain, carried)
    });
    assert!(plain.iter().all(Option::is_none));
    assert!(carried.iter().all(|c| *c == Some(Caller("main"))));
}

#[test]
fn indexed_adaptors_stay_indexed_and_see_the_stores() {
    let pool = pool();
    let v: Vec<u64> = (0..1000).collect();
    let out = pool.install_with_stores(|| {
        scope(Item(1000), || {
            let base = get::<Item>().unwrap().0;
            // Indexed: zip, enumerate and collect into a Vec need `len` and producers.
            let zipped: Vec<u64> = v
                .par_iter()
                .zip(v.par_iter().rev())
                .enumerate()
                .with_stores()
                .map(|(i, (a, b))| a + b + i as u64 + get::<Item>().unwrap().0 - base)
                .collect();
            // The producer path: `with_stores` then a producer-based adaptor,
            // with a closure before it.
            let mapped: Vec<Option<Item>> = v
                .par_iter()
                .with_stores()
                .map(|_| get::<Item>())
                .with_min_len(10)
                .collect();
            // fold/reduce: identity, fold and reduce closures all see it.
            let folded = v
                .par_iter()
                .with_stores()
                .fold(
                    || get::<Item>().map(|_| 0u64).unwrap(),
                    |acc, x| acc + x * u64::from(get::<Item>().is_some()),
                )
                .reduce(
                    || get::<Item>().map(|_| 0u64).unwrap(),
                    |a, b| a + b * u64::from(get::<Item>().is_some()),
                );
            (zipped, mapped, folded)
        })
    });
    let (zipped, mapped, folded) = out;
    assert_eq!(zipped.len(), 1000);
    assert!(zipped.iter().enumerate().all(|(i, x)| *x == 999 + i as u64));
    assert!(mapped.iter().all(|i| *i == Some(Item(1000))));
    assert_eq!(folded, v.iter().sum::<u64>());
}

/// The rule the docs give for adaptors that pull the items before them one
/// by one (`enumerate`, `zip`, `rev`, `step_by`, `chunks`, `interleave`):
/// `with_stores` after them carries to every item, on every worker; `skip`
/// and `take` are not among them and may come after it. Driven from outside
/// the pool, with the caller's stores hidden there, so an item sees a store
/// only through `with_stores`.
#[test]
fn with_stores_after_one_by_one_adaptors_reaches_every_item() {
    let pool = pool();
    let v: Vec<u64> = (0..1000).collect();
    let check = |label: &str, got: Vec<Option<Caller>>, len: usize| {
        assert_eq!(got.len(), len, "{label}");
        let missing = got.iter().filter(|c| **c != Some(Caller("main"))).count();
        assert_eq!(missing, 0, "{label}: {missing} of {len} items saw no store");
    };
    // Built (and so captured) in the scope, run with the stores hidden.
    fn run<I: ParallelIterator<Item = Option<Caller>>>(
        pool: &ThreadPool,
        it: I,
    ) -> Vec<Option<Caller>> {
        async_local_storage::isolate(|| pool.install(|| it.collect()))
    }
    let seen = || get::<Caller>();
    scope(Caller("main"), || {
        let it = v.par_iter().enumerate().with_stores().map(|_| seen());
        check("enumerate", run(&pool, it), 1000);
        let it = v.par_iter().zip(v.par_iter()).with_stores().map(|_| seen());
        check("zip", run(&pool, it), 1000);
        let it = v.par_iter().rev().with_stores().map(|_| seen());
        check("rev", run(&pool, it), 1000);
        let it = v.par_iter().step_by(3).with_stores().map(|_| seen());
        check("step_by", run(&pool, it), 334);
        let it = v
            .par_iter()
            .chunks(7)
            .with_stores()
            .flat_map_iter(|c| c.into_iter().map(|_| seen()));
        check("chunks", run(&pool, it), 1000);
        let it = v.par_iter().interleave(&v).with_stores().map(|_| seen());
        check("interleave", run(&pool, it), 2000);
        let it = v
            .par_iter()
            .with_stores()
            .skip(10)
            .take(500)
            .map(|_| seen());
        check("skip, take", run(&pool, it), 500);
    });
    assert_workers_clean(&pool);
}

#[test]
fn broadcasts_carry_to_every_thread_and_rayons_own_do_not() {
    let pool = pool();
    // From outside the pool, and from one of its threads (the caller is
    // then one of the threads the broadcast runs on).
    let outside = scope(Caller("b"), || {
        pool.broadcast_with_stores(|ctx| (ctx.index(), get::<Caller>()))
    });
    let inside = pool.install(|| {
        scope(Caller("b"), || {
            als::broadcast(|ctx| (ctx.index(), get::<Caller>()))
        })
    });
    let raw = scope(Caller("b"), || pool.broadcast(|_| get::<Caller>()));
    for seen in [outside, inside] {
        assert_eq!(seen.len(), THREADS);
        assert!(
            seen.iter()
                .enumerate()
                .all(|(i, s)| *s == (i, Some(Caller("b")))),
            "{seen:?}"
        );
    }
    assert_eq!(raw, vec![None; THREADS]);

    // spawn_broadcast: one message per thread, each with the store.
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    scope(Caller("sb"), || {
        pool.spawn_broadcast_with_stores(move |_| tx.lock().unwrap().send(get::<Caller>()).unwrap())
    });
    let (tx2, rx2) = mpsc::channel();
    let tx2 = Mutex::new(tx2);
    pool.install(|| {
        scope(Caller("sb2"), || {
            als::spawn_broadcast(move |_| tx2.lock().unwrap().send(get::<Caller>()).unwrap())
        })
    });
    for _ in 0..THREADS {
        assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), Some(Caller("sb")));
        assert_eq!(rx2.recv_timeout(PATIENCE).unwrap(), Some(Caller("sb2")));
    }
    assert_workers_clean(&pool);
}

#[test]
fn unindexed_adaptors_see_the_stores() {
    let pool = pool();
    let count = pool.install(|| {
        scope(Caller("filter"), || {
            (0..10_000u32)
                .into_par_iter()
                .filter(|i| i % 3 == 0) // unindexed from here on
                .with_stores()
                .flat_map_iter(|i| [i, i + 1])
                .filter(|_| get::<Caller>() == Some(Caller("filter")))
                .count()
        })
    });
    assert_eq!(count, 2 * 3334);
}

#[test]
fn join_carries_into_both_sides() {
    let pool = pool();
    // From a worker (the adapter's `join`) and from outside (`join_with_stores`).
    let inside = pool.install(|| {
        scope(Caller("join"), || {
            als::join(
                || (get::<Caller>(), me()),
                || {
                    work(1);
                    (get::<Caller>(), me())
                },
            )
        })
    });
    assert_eq!(inside.0 .0, Some(Caller("join")));
    assert_eq!(inside.1 .0, Some(Caller("join")));
    let outside = scope(Caller("join"), || {
        pool.join_with_stores(get::<Caller>, get::<Caller>)
    });
    assert_eq!(outside, (Some(Caller("join")), Some(Caller("join"))));
    // rayon's own join, from outside the pool: neither side sees it.
    let plain = scope(Caller("join"), || pool.join(get::<Caller>, get::<Caller>));
    assert_eq!(plain, (None, None));
    assert_workers_clean(&pool);
}

#[test]
fn scope_spawns_nested_two_deep() {
    let pool = pool();
    let seen = Mutex::new(Vec::new());
    let record = |depth: u8| seen.lock().unwrap().push((depth, get::<Caller>()));
    pool.install(|| {
        scope(Caller("scope"), || {
            als::scope(|s| {
                record(0);
                for _ in 0..4 {
                    s.spawn(|s| {
                        record(1);
                        s.spawn(|s| {
                            record(2);
                            s.spawn(|_| record(3));
                        });
                    });
                }
            });
        })
    });
    // The other scopes, from outside the pool.
    scope(Caller("scope"), || {
        pool.scope_with_stores(|s| s.spawn(|s| s.spawn(|_| record(10))));
        pool.install(|| {
            // The captured stores here are the install's (none): carried as none.
            als::in_place_scope(|s| s.spawn(|_| assert_eq!(get::<Caller>(), None)));
        });
        als::in_place_scope(|s| s.spawn(|s| s.spawn(|_| record(11))));
        als::scope_fifo(|s| s.spawn_fifo(|s| s.spawn_fifo(|_| record(12))));
        als::in_place_scope_fifo(|s| s.spawn_fifo(|_| record(13)));
    });
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), 1 + 4 * 3 + 4);
    for depth in [0, 1, 2, 3, 10, 11, 12, 13] {
        assert!(
            seen.iter().any(|(d, _)| *d == depth),
            "depth {depth} never ran"
        );
    }
    assert!(
        seen.iter().all(|(_, c)| *c == Some(Caller("scope"))),
        "{seen:?}"
    );
    // rayon's own scope, from outside the pool: the job sees nothing.
    let plain = Mutex::new(Some(Caller("x")));
    scope(Caller("scope"), || {
        pool.scope(|s| s.spawn(|_| *plain.lock().unwrap() = get::<Caller>()));
    });
    assert_eq!(*plain.lock().unwrap(), None);
    assert_workers_clean(&pool);
}

#[test]
fn spawn_and_spawn_fifo_on_a_custom_pool() {
    let pool = pool();
    let (tx, rx) = mpsc::channel();
    pool.install(|| {
        scope(Caller("spawn"), || {
            let tx1 = tx.clone();
            als::spawn(move || {
                tx1.send(("spawn", get::<Caller>(), rayon::current_thread_index()))
                    .unwrap()
            });
            let tx2 = tx.clone();
            als::spawn_fifo(move || {
                tx2.send(("spawn_fifo", get::<Caller>(), rayon::current_thread_index()))
                    .unwrap()
            });
        })
    });
    scope(Caller("spawn"), || {
        let tx3 = tx.clone();
        pool.spawn_with_stores(move || {
            tx3.send((
                "spawn_with_stores",
                get::<Caller>(),
                rayon::current_thread_index(),
            ))
            .unwrap()
        });
        let tx4 = tx.clone();
        pool.spawn_fifo_with_stores(move || {
            tx4.send((
                "spawn_fifo_with_stores",
                get::<Caller>(),
                rayon::current_thread_index(),
            ))
            .unwrap()
        });
        let tx5 = tx.clone();
        pool.spawn(move || {
            tx5.send(("raw", get::<Caller>(), rayon::current_thread_index()))
                .unwrap()
        });
    });
    let mut got: HashMap<&str, (Option<Caller>, Option<usize>)> = HashMap::new();
    for _ in 0..5 {
        let (name, caller, index) = rx.recv_timeout(PATIENCE).unwrap();
        got.insert(name, (caller, index));
    }
    for name in [
        "spawn",
        "spawn_fifo",
        "spawn_with_stores",
        "spawn_fifo_with_stores",
    ] {
        let (caller, index) = got[name];
        assert_eq!(caller, Some(Caller("spawn")), "{name}");
        assert!(index.is_some(), "{name} did not run on the custom pool");
    }
    assert_eq!(got["raw"].0, None);
}

#[test]
fn install_with_stores_carries_and_install_does_not() {
    let pool = pool();
    let (carried, index) = scope(Caller("install"), || {
        pool.install_with_stores(|| (get::<Caller>(), pool.current_thread_index()))
    });
    assert_eq!(carried, Some(Caller("install")));
    assert!(index.is_some());
    assert_eq!(
        scope(Caller("install"), || pool.install(get::<Caller>)),
        None
    );
    // From a worker of another pool (rayon steals on that worker meanwhile).
    let other = ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let nested = other.install(|| {
        scope(Caller("other"), || {
            pool.install_with_stores(|| (get::<Caller>(), pool.current_thread_index()))
        })
    });
    assert_eq!(nested.0, Some(Caller("other")));
    assert!(nested.1.is_some());
    assert_workers_clean(&pool);
    assert_workers_clean(&other);
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string payload>".into()
    }
}

#[test]
fn a_panic_propagates_as_rayons_and_leaves_no_store_behind() {
    let pool = pool();
    let fail = |i: u32| {
        if i == 777 {
            panic!("item 777 failed");
        }
    };
    // Parallel iterator: the same panic as without the adapter.
    let carried = catch_unwind(AssertUnwindSafe(|| {
        scope(Caller("panic"), || {
            pool.install_with_stores(|| (0..10_000u32).into_par_iter().with_stores().for_each(fail))
        })
    }))
    .unwrap_err();
    let bare = catch_unwind(AssertUnwindSafe(|| {
        pool.install(|| (0..10_000u32).into_par_iter().for_each(fail))
    }))
    .unwrap_err();
    assert_eq!(panic_message(carried), panic_message(bare));
    assert_workers_clean(&pool);

    // join: either side.
    for side in [0, 1] {
        let payload = catch_unwind(AssertUnwindSafe(|| {
            scope(Caller("panic"), || {
                pool.join_with_stores(
                    || assert!(side != 0, "side a failed"),
                    || assert!(side != 1, "side b failed"),
                )
            })
        }))
        .unwrap_err();
        let expected = if side == 0 {
            "side a failed"
        } else {
            "side b failed"
        };
        assert_eq!(panic_message(payload), expected);
        assert_workers_clean(&pool);
    }

    // scope: a spawned job.
    let payload = catch_unwind(AssertUnwindSafe(|| {
        scope(Caller("panic"), || {
            pool.scope_with_stores(|s| s.spawn(|_| panic!("job failed")))
        })
    }))
    .unwrap_err();
    assert_eq!(panic_message(payload), "job failed");
    assert_workers_clean(&pool);

    // spawn: the panic goes to the pool's panic handler, as rayon's does.
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let handled = ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .panic_handler(move |payload| tx.lock().unwrap().send(panic_message(payload)).unwrap())
        .build()
        .unwrap();
    scope(Caller("panic"), || {
        handled.spawn_with_stores(|| panic!("spawned job failed"))
    });
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), "spawned job failed");
    assert_workers_clean(&handled);
    // A later job, on the same (every) thread, sees nothing.
    let later: Vec<Option<Caller>> =
        handled.install(|| (0..1000).into_par_iter().map(|_| get::<Caller>()).collect());
    assert!(later.iter().all(Option::is_none));
}

#[test]
fn nested_stores_inside_a_scope_shadow_the_outer_ones() {
    let pool = pool();
    let seen = Mutex::new(Vec::new());
    scope(Caller("outer"), || {
        scope(Item(1), || {
            pool.scope_with_stores(|s| {
                for _ in 0..4 {
                    s.spawn(|_| {
                        assert_eq!(
                            (get::<Caller>(), get::<Item>()),
                            (Some(Caller("outer")), Some(Item(1)))
                        );
                        let inner: Vec<_> = scope(Caller("inner"), || {
                            (0..1000)
                                .into_par_iter()
                                .with_stores()
                                .map(|_| (get::<Caller>(), get::<Item>()))
                                .collect()
                        });
                        // Back in the job: the outer store again.
                        let after = get::<Caller>();
                        seen.lock().unwrap().push((inner, after));
                    });
                }
            })
        })
    });
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), 4);
    for (inner, after) in seen {
        assert!(inner
            .iter()
            .all(|pair| *pair == (Some(Caller("inner")), Some(Item(1)))));
        assert_eq!(after, Some(Caller("outer")));
    }
    assert_workers_clean(&pool);
}

/// Two callers with different stores on one pool, and a third that runs plain
/// rayon work (no adapter) at the same time. The adapters' callers wait in
/// `join`, scopes and parallel iterators, so their threads steal the third
/// caller's jobs: those must never see either store.
#[test]
fn concurrent_callers_never_see_each_other_and_plain_jobs_see_neither() {
    const ROUNDS: usize = 40;
    let pool = Arc::new(pool());
    let start = Arc::new(Barrier::new(3));
    let wrong = Arc::new(AtomicUsize::new(0));
    let plain_jobs = Arc::new(AtomicUsize::new(0));

    let adapter_caller = |name: &'static str| {
        let (pool, start, wrong) = (pool.clone(), start.clone(), wrong.clone());
        std::thread::spawn(move || {
            let check = |stage: &str| {
                if get::<Caller>() != Some(Caller(name)) {
                    wrong.fetch_add(1, SeqCst);
                    eprintln!("{name}: {stage} saw {:?}", get::<Caller>());
                }
            };
            start.wait();
            scope(Caller(name), || {
                for round in 0..ROUNDS {
                    pool.install_with_stores(|| {
                        check("install");
                        (0..2_000u64).into_par_iter().with_stores().for_each(|i| {
                            check("item");
                            if i % 500 == 0 {
                                // Nested: waits (and steals) inside an item.
                                als::join(|| check("join a"), || check("join b"));
                            }
                            work(i);
                        });
                        als::scope(|s| {
                            for _ in 0..8 {
                                s.spawn(|_| {
                                    check("scope job");
                                    work(round as u64);
                                });
                            }
                        });
                        check("after");
                    });
                }
            });
        })
    };
    let a = adapter_caller("a");
    let b = adapter_caller("b");
    let plain = {
        let (pool, start, wrong, plain_jobs) = (
            pool.clone(),
            start.clone(),
            wrong.clone(),
            plain_jobs.clone(),
        );
        std::thread::spawn(move || {
            let check = |stage: &str| {
                plain_jobs.fetch_add(1, SeqCst);
                if let Some(caller) = get::<Caller>() {
                    wrong.fetch_add(1, SeqCst);
                    eprintln!("plain {stage} saw {caller:?}");
                }
            };
            start.wait();
            for _ in 0..ROUNDS * 4 {
                pool.install(|| {
                    (0..500u64).into_par_iter().for_each(|i| {
                        check("item");
                        work(i);
                    });
                    rayon::join(|| check("join a"), || check("join b"));
                    rayon::scope(|s| {
                        for _ in 0..8 {
                            s.spawn(|_| check("scope job"));
                        }
                    });
                });
            }
        })
    };
    a.join().unwrap();
    b.join().unwrap();
    plain.join().unwrap();
    assert_eq!(wrong.load(SeqCst), 0, "a job saw another caller's store");
    assert!(plain_jobs.load(SeqCst) > 0);
    assert_workers_clean(&pool);
}
