//! Group 4, carrying stores into new work: `Snapshot::capture`, and the
//! adapters' `spawn` against each runtime's own `spawn`.
//!
//! * `capture`: one `Snapshot::capture()` plus its drop, with 0 (`bare`),
//!   1 and 4 `u64`-sized stores visible. Time per capture.
//! * `spawn_*`, one group per runtime: one iteration runs a parent task that
//!   spawns 100 empty tasks and awaits them all; time per task = time per
//!   iteration / 100 (the parent's own spawn is amortised over the 100).
//!   `bare` is the runtime's own spawn (the task sees no store; the parent
//!   has one); `adapter ..., 1 store` is this crate's spawn in a parent with
//!   one store (`A(7)`), `adapter ..., 4 stores` in a parent with four
//!   (`u64` newtypes `A`..`D`): it captures them all and restores them at
//!   every poll of the task. For tokio, the `task_local!` way is measured
//!   too: `spawn(KEY.scope(KEY.get(), fut))` for one key and for four.
//!
//! Run: `cargo bench --all-features --bench spawn`.
//!
//! `ALS_SPAWN_INTERLEAVED=<rounds> cargo bench --all-features --bench spawn`
//! runs the `spawn_*` variants in turn instead, `rounds` times per runtime
//! (each round in a new random order), and prints each variant's median
//! round against `bare`. Criterion measures one variant after another, so
//! on a shared machine a load that comes and goes lands on some variants and
//! not others; interleaved rounds expose every variant to the same load.
//! (Wall time: the multi-threaded runtimes spawn and poll on other threads.)
//! `-- <filter>` keeps the groups whose name contains `<filter>`, as with
//! criterion. This mode adds, per runtime:
//!
//! * `floor: ..., task 16 bytes larger` and `104 bytes larger`: the
//!   runtime's own spawn of the same empty task inside a transparent
//!   wrapper of that size (what an adapter's task adds with one word-sized
//!   store, and with four), from the same parent: what the runtime itself
//!   charges for the larger task, the floor under any way of carrying the
//!   stores inside the task;
//! * `bare, another instance (layout control)`: the same empty task in a
//!   wrapper that adds nothing, so the runtime's spawn path is compiled once
//!   more, for another type, at other addresses. How far it lands from
//!   1.000 is how much code layout alone moves a ratio;
//! * `word task: ...`: a task that holds one word of its own (`async move`
//!   over a `u64`), spawned by the runtime (`bare`), by the adapter with
//!   one and four stores, and by the runtime inside the two floors'
//!   wrappers (`floor, 16 bytes larger`, `104 bytes larger`). The last
//!   column gives them against the runtime's spawn of that same task. An
//!   empty `async {}` holds nothing at all, so a runtime can build its task
//!   from constants; a task with any data moves it, and on tokio's
//!   current-thread runtime that alone costs 5–10%. The floors differ with
//!   the task too: the word task 104 bytes larger crosses 128 bytes inside
//!   smol's `Executor`, whose moves of it then call `memcpy`;
//! * `bare, again (noise control)`: `bare` measured a second time as if it
//!   were another variant. How far it lands from 1.000 is how far apart
//!   two runs of the same code land in this run.
//!
//! With the `tracing` feature, the interleaved mode ends with one more
//! group, `spawn_tokio_current_thread_in_span`: tokio's current-thread
//! runtime with tracing-subscriber's `Registry` as the global subscriber
//! and the parent inside an entered span, where a task spawned through the
//! adapter carries the span too. Its references are what a user would write
//! by hand for the span: `tokio::spawn(fut.in_current_span())`, and that
//! with one or four `task_local!` keys re-scoped as well. (The subscriber
//! is installed when the group first runs, so the groups before it run
//! without one.)

use std::future::Future;
use std::hint::black_box;

use async_local_storage::adapters::smol::ExecutorExt;
use async_local_storage::{scope, Snapshot, WithStore};
use criterion::Criterion;

mod common;

use common::{A, B, C, D};

const TASKS: u64 = 100;

const GROUPS: [&str; 6] = [
    "capture",
    "spawn_tokio_current_thread",
    "spawn_tokio_multi_thread",
    "spawn_async_std",
    "spawn_smol_global",
    "spawn_smol_executor",
];

tokio::task_local! {
    static TL_ID: A;
    static TL_B: B;
    static TL_C: C;
    static TL_D: D;
}

fn capture(c: &mut Criterion) {
    let mut g = common::group(c, GROUPS[0], 1);
    g.bench_function("bare: capture, no store", |b| b.iter(Snapshot::capture));
    scope(A(7), || {
        g.bench_function("capture 1 store", |b| b.iter(Snapshot::capture));
        scope(B(2), || {
            scope(C(3), || {
                scope(D(4), || {
                    g.bench_function("capture 4 stores", |b| b.iter(Snapshot::capture));
                })
            })
        });
    });
    g.finish();
}

/// The join step for runtimes whose handles yield the output directly.
fn done(_: ()) {}

/// The parent with one store.
fn one_store<F: Future>(parent: F) -> impl Future<Output = F::Output> {
    parent.with_store(black_box(A(7)))
}

/// The parent with four stores.
fn four_stores<F: Future>(parent: F) -> impl Future<Output = F::Output> {
    common::stores4(parent)
}

/// The parent with one `task_local!` key set (`TL_ID`) instead of a store.
fn one_key<F: Future>(parent: F) -> tokio::task::futures::TaskLocalFuture<A, F> {
    TL_ID.scope(black_box(A(7)), parent)
}

/// The parent with four `task_local!` keys set (`TL_ID` innermost, as
/// `four_stores` has `A`) instead of stores.
fn four_keys<F: Future>(parent: F) -> impl Future<Output = F::Output> {
    TL_D.scope(
        black_box(D(4)),
        TL_C.scope(
            black_box(C(3)),
            TL_B.scope(black_box(B(2)), one_key(parent)),
        ),
    )
}

/// The empty task with the four keys of [`four_keys`] re-scoped in it:
/// what a `task_local!` user writes to carry them into a new task.
fn rescoped4() -> impl Future<Output = ()> + Send {
    TL_D.scope(
        TL_D.get(),
        TL_C.scope(
            TL_C.get(),
            TL_B.scope(TL_B.get(), TL_ID.scope(TL_ID.get(), async {})),
        ),
    )
}

/// `parent` inside a span (`spawn_tokio_current_thread_in_span`), around
/// its stores or keys: `|p| in_span(one_store(p))`.
#[cfg(feature = "tracing")]
fn in_span<F: Future>(parent: F) -> tracing::instrument::Instrumented<F> {
    tracing::Instrument::instrument(parent, tracing::info_span!("request"))
}

/// A task that holds one word of its own, the same type whichever way it
/// is spawned. (An empty `async {}` holds nothing: a runtime can build its
/// task from constants alone, which no real task allows.)
async fn word_task(word: u64) {
    black_box(word);
}

/// Spawns `TASKS` tasks with `$spawn` and awaits them, inside a parent
/// future given its stores by `$stores` (`one_store` unless said);
/// `$block_on` runs the parent, as a task of the runtime where it has one (so
/// that spawning happens on a worker thread, as in a server, not from the
/// bench thread). The tasks are empty `async {}` blocks, or `$task` for
/// each index `$i` (`0..TASKS`).
macro_rules! spawn_many {
    (|$fut:ident| $block_on:expr, $spawn:expr, $join:expr) => {
        spawn_many!(one_store, |$fut| $block_on, $spawn, $join)
    };
    ($stores:expr, |$fut:ident| $block_on:expr, $spawn:expr, $join:expr) => {
        spawn_many!($stores, |_| async {}, |$fut| $block_on, $spawn, $join)
    };
    ($stores:expr, |$i:pat_param| $task:expr, |$fut:ident| $block_on:expr, $spawn:expr, $join:expr) => {{
        let $fut = $stores(async {
            let handles: Vec<_> = (0..TASKS).map(|$i| $spawn($task)).collect();
            for handle in handles {
                $join(handle.await);
            }
        });
        $block_on
    }};
}

/// The adapter's two variants (parent with one store, with four) in group
/// `$g`, named after `$what`.
macro_rules! adapter_variants {
    ($g:expr, $what:expr, |$fut:ident| $block_on:expr, $spawn:expr, $join:expr) => {
        $g.bench_function(concat!("adapter: ", $what, ", 1 store"), |b| {
            b.iter(|| spawn_many!(one_store, |$fut| $block_on, $spawn, $join))
        });
        $g.bench_function(concat!("adapter: ", $what, ", 4 stores"), |b| {
            b.iter(|| spawn_many!(four_stores, |$fut| $block_on, $spawn, $join))
        });
    };
}

/// A runtime's variants for [`interleaved`] (see the module docs): `bare`
/// (its own `$spawn` from a parent with one store), the adapter's
/// `$adapter` from a parent with one store and with four, the layout
/// control, the [`word_task`] spawned both ways and inside both floors'
/// wrappers, and the two `floor` rows: `$spawn` of the empty task in a
/// plain wrapper 16 bytes larger, from a parent with one store, and 104
/// bytes larger, from a parent with four.
macro_rules! runtime_variants {
    ($name:literal, |$fut:ident| $block_on:expr, $spawn:expr, $adapter:expr, $join:expr) => {
        vec![
            (
                "bare",
                Box::new(move || spawn_many!(|$fut| $block_on, $spawn, $join)),
            ),
            (
                "adapter, 1 store",
                Box::new(move || spawn_many!(one_store, |$fut| $block_on, $adapter, $join)),
            ),
            (
                "adapter, 4 stores",
                Box::new(move || spawn_many!(four_stores, |$fut| $block_on, $adapter, $join)),
            ),
            (
                "bare, another instance (layout control)",
                Box::new(move || {
                    spawn_many!(
                        one_store,
                        |$fut| $block_on,
                        |t| $spawn(common::padded::<(), _>(t)),
                        $join
                    )
                }),
            ),
            (
                "word task: bare",
                Box::new(move || {
                    spawn_many!(one_store, |i| word_task(i), |$fut| $block_on, $spawn, $join)
                }),
            ),
            (
                "word task: adapter, 1 store",
                Box::new(move || {
                    spawn_many!(
                        one_store,
                        |i| word_task(i),
                        |$fut| $block_on,
                        $adapter,
                        $join
                    )
                }),
            ),
            (
                "word task: adapter, 4 stores",
                Box::new(move || {
                    spawn_many!(
                        four_stores,
                        |i| word_task(i),
                        |$fut| $block_on,
                        $adapter,
                        $join
                    )
                }),
            ),
            (
                "word task: floor, 16 bytes larger",
                Box::new(move || {
                    spawn_many!(
                        one_store,
                        |i| common::padded::<[u64; 2], _>(word_task(i)),
                        |$fut| $block_on,
                        $spawn,
                        $join
                    )
                }),
            ),
            (
                "word task: floor, 104 bytes larger",
                Box::new(move || {
                    spawn_many!(
                        four_stores,
                        |i| common::padded::<[u64; 13], _>(word_task(i)),
                        |$fut| $block_on,
                        $spawn,
                        $join
                    )
                }),
            ),
            (
                concat!("floor: ", $name, ", task 16 bytes larger"),
                Box::new(move || {
                    spawn_many!(
                        one_store,
                        |$fut| $block_on,
                        |t| $spawn(common::padded::<[u64; 2], _>(t)),
                        $join
                    )
                }),
            ),
            (
                concat!("floor: ", $name, ", task 104 bytes larger"),
                Box::new(move || {
                    spawn_many!(
                        four_stores,
                        |$fut| $block_on,
                        |t| $spawn(common::padded::<[u64; 13], _>(t)),
                        $join
                    )
                }),
            ),
        ]
    };
}

fn tokio_group(c: &mut Criterion, name: &str, rt: &tokio::runtime::Runtime) {
    let mut g = common::group(c, name, TASKS);
    g.bench_function("bare: tokio::spawn", |b| {
        b.iter(|| {
            spawn_many!(
                |f| rt.block_on(async { tokio::spawn(f).await.unwrap() }),
                tokio::spawn,
                Result::unwrap
            )
        })
    });
    adapter_variants!(
        g,
        "async_local_storage::adapters::tokio::spawn",
        |f| rt.block_on(async { tokio::spawn(f).await.unwrap() }),
        async_local_storage::adapters::tokio::spawn,
        Result::unwrap
    );
    g.bench_function("tokio::spawn + task_local re-scope, 1 key", |b| {
        b.iter(|| {
            spawn_many!(
                one_key,
                |_| TL_ID.scope(TL_ID.get(), async {}),
                |f| rt.block_on(async { tokio::spawn(f).await.unwrap() }),
                tokio::spawn,
                Result::unwrap
            )
        })
    });
    g.bench_function("tokio::spawn + task_local re-scope, 4 keys", |b| {
        b.iter(|| {
            spawn_many!(
                four_keys,
                |_| rescoped4(),
                |f| rt.block_on(async { tokio::spawn(f).await.unwrap() }),
                tokio::spawn,
                Result::unwrap
            )
        })
    });
    g.finish();
}

fn spawn(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio_group(c, GROUPS[1], &rt);
    drop(rt);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio_group(c, GROUPS[2], &rt);
    drop(rt);

    let mut g = common::group(c, GROUPS[3], TASKS);
    g.bench_function("bare: async_std::task::spawn", |b| {
        b.iter(|| {
            spawn_many!(
                |f| async_std::task::block_on(async_std::task::spawn(f)),
                async_std::task::spawn,
                done
            )
        })
    });
    adapter_variants!(
        g,
        "async_local_storage::adapters::async_std::spawn",
        |f| async_std::task::block_on(async_std::task::spawn(f)),
        async_local_storage::adapters::async_std::spawn,
        done
    );
    g.finish();

    let mut g = common::group(c, GROUPS[4], TASKS);
    g.bench_function("bare: smol::spawn", |b| {
        b.iter(|| spawn_many!(|f| smol::block_on(smol::spawn(f)), smol::spawn, done))
    });
    adapter_variants!(
        g,
        "async_local_storage::adapters::smol::spawn",
        |f| smol::block_on(smol::spawn(f)),
        async_local_storage::adapters::smol::spawn,
        done
    );
    g.finish();

    let ex = smol::Executor::new();
    let mut g = common::group(c, GROUPS[5], TASKS);
    g.bench_function("bare: Executor::spawn", |b| {
        b.iter(|| spawn_many!(|f| smol::block_on(ex.run(f)), |t| ex.spawn(t), done))
    });
    adapter_variants!(
        g,
        "ExecutorExt::spawn_with_stores",
        |f| smol::block_on(ex.run(f)),
        |t| ex.spawn_with_stores(t),
        done
    );
    g.finish();
}

fn main() {
    if let Some(rounds) = std::env::var("ALS_SPAWN_INTERLEAVED")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        return interleaved(rounds);
    }
    common::main(&GROUPS, |c| {
        capture(c);
        spawn(c);
    });
}

/// One runtime's variants for [`interleaved`]: a name and one iteration
/// (`TASKS` spawns), as in the criterion groups.
type Variants<'a> = Vec<(&'static str, Box<dyn Fn() + 'a>)>;

/// The interleaved group of tokio's current-thread runtime inside a span
/// (`tracing`): see the module docs.
#[cfg(feature = "tracing")]
fn tokio_in_span_variants(rt: &'static tokio::runtime::Runtime) -> Variants<'static> {
    use tracing::Instrument;
    let block_on = move |f: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>| {
        static SUBSCRIBER: std::sync::Once = std::sync::Once::new();
        SUBSCRIBER.call_once(|| {
            tracing::subscriber::set_global_default(tracing_subscriber::registry())
                .expect("the only global subscriber of the bench");
        });
        rt.block_on(async { tokio::spawn(f).await.unwrap() })
    };
    vec![
        (
            "bare",
            Box::new(move || {
                spawn_many!(
                    |p| in_span(one_store(p)),
                    |f| block_on(Box::pin(f)),
                    tokio::spawn,
                    Result::unwrap
                )
            }),
        ),
        (
            "tokio::spawn(fut.in_current_span())",
            Box::new(move || {
                spawn_many!(
                    |p| in_span(one_store(p)),
                    |f| block_on(Box::pin(f)),
                    |t| tokio::spawn(Instrument::in_current_span(t)),
                    Result::unwrap
                )
            }),
        ),
        (
            "task_local!, 1 key, + in_current_span()",
            Box::new(move || {
                spawn_many!(
                    |p| in_span(one_key(p)),
                    |_| TL_ID.scope(TL_ID.get(), async {}),
                    |f| block_on(Box::pin(f)),
                    |t| tokio::spawn(Instrument::in_current_span(t)),
                    Result::unwrap
                )
            }),
        ),
        (
            "task_local!, 4 keys, + in_current_span()",
            Box::new(move || {
                spawn_many!(
                    |p| in_span(four_keys(p)),
                    |_| rescoped4(),
                    |f| block_on(Box::pin(f)),
                    |t| tokio::spawn(Instrument::in_current_span(t)),
                    Result::unwrap
                )
            }),
        ),
        (
            "adapter, 1 store",
            Box::new(move || {
                spawn_many!(
                    |p| in_span(one_store(p)),
                    |f| block_on(Box::pin(f)),
                    async_local_storage::adapters::tokio::spawn,
                    Result::unwrap
                )
            }),
        ),
        (
            "adapter, 4 stores",
            Box::new(move || {
                spawn_many!(
                    |p| in_span(four_stores(p)),
                    |f| block_on(Box::pin(f)),
                    async_local_storage::adapters::tokio::spawn,
                    Result::unwrap
                )
            }),
        ),
    ]
}

/// `ALS_SPAWN_INTERLEAVED=<rounds>`: see the module docs.
fn interleaved(rounds: usize) {
    let ct = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let ex = smol::Executor::new();
    let tokio_variants = |rt: &'static tokio::runtime::Runtime| -> Variants<'static> {
        let block_on = move |f: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>| {
            rt.block_on(async { tokio::spawn(f).await.unwrap() })
        };
        let mut variants: Variants<'static> = runtime_variants!(
            "tokio::spawn",
            |f| block_on(Box::pin(f)),
            tokio::spawn,
            async_local_storage::adapters::tokio::spawn,
            Result::unwrap
        );
        // No capture at all, a fixed store: what 24 bytes more per task
        // cost on this runtime.
        variants.push((
            "tokio::spawn(fut.with_store(A(7)))",
            Box::new(move || {
                spawn_many!(
                    |f| block_on(Box::pin(f)),
                    |t| tokio::spawn(WithStore::with_store(t, A(7))),
                    Result::unwrap
                )
            }),
        ));
        variants.push((
            "task_local!, 1 key",
            Box::new(move || {
                spawn_many!(
                    one_key,
                    |_| TL_ID.scope(TL_ID.get(), async {}),
                    |f| block_on(Box::pin(f)),
                    tokio::spawn,
                    Result::unwrap
                )
            }),
        ));
        variants.push((
            "task_local!, 4 keys",
            Box::new(move || {
                spawn_many!(
                    four_keys,
                    |_| rescoped4(),
                    |f| block_on(Box::pin(f)),
                    tokio::spawn,
                    Result::unwrap
                )
            }),
        ));
        variants
    };
    let ct: &'static _ = Box::leak(Box::new(ct));
    let mt: &'static _ = Box::leak(Box::new(mt));
    let ex: &'static smol::Executor<'static> = Box::leak(Box::new(ex));
    #[cfg_attr(not(feature = "tracing"), allow(unused_mut))]
    let mut groups: Vec<(&str, Variants<'static>)> = vec![
        (GROUPS[1], tokio_variants(ct)),
        (GROUPS[2], tokio_variants(mt)),
        (
            GROUPS[3],
            runtime_variants!(
                "async_std::task::spawn",
                |f| async_std::task::block_on(async_std::task::spawn(f)),
                async_std::task::spawn,
                async_local_storage::adapters::async_std::spawn,
                done
            ),
        ),
        (
            GROUPS[4],
            runtime_variants!(
                "smol::spawn",
                |f| smol::block_on(smol::spawn(f)),
                smol::spawn,
                async_local_storage::adapters::smol::spawn,
                done
            ),
        ),
        (
            GROUPS[5],
            runtime_variants!(
                "Executor::spawn",
                |f| smol::block_on(ex.run(f)),
                |t| ex.spawn(t),
                |t| ex.spawn_with_stores(t),
                done
            ),
        ),
    ];
    // Last: it installs a global subscriber.
    #[cfg(feature = "tracing")]
    groups.push((
        "spawn_tokio_current_thread_in_span",
        tokio_in_span_variants(ct),
    ));
    println!(
        "\n{:<36} {:<52} {:>10} {:>9} {:>11}   ({rounds} interleaved rounds of {TASKS} spawns; median)",
        "group", "variant", "ns/task", "x bare", "x word bare"
    );
    // As with criterion, `cargo bench --bench spawn -- <filter>` keeps the
    // groups whose name contains the filter.
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    let wanted = |group: &str| filter.as_deref().is_none_or(|f| group.contains(f));
    for (group, variants) in groups.iter().filter(|(group, _)| wanted(group)) {
        for (_, run) in variants {
            run(); // warm up
        }
        // One more variant, `bare` again: how far apart two runs of the
        // same code land in this run (the noise floor of the ratios).
        let times = common::interleave(rounds, variants.len() + 1, |i| {
            let run = &variants.get(i).unwrap_or(&variants[0]).1;
            let start = std::time::Instant::now();
            run();
            start.elapsed().as_nanos() as f64 / TASKS as f64
        });
        let medians: Vec<f64> = times.iter().map(|t| t[t.len() / 2]).collect();
        let names: Vec<&str> = variants.iter().map(|(name, _)| *name).collect();
        // The word task's rows also against its own plain spawn.
        let word_bare = names
            .iter()
            .position(|name| *name == "word task: bare")
            .map(|i| medians[i]);
        let with_noise_control = names.iter().copied().chain(["bare, again (noise control)"]);
        for (name, median) in with_noise_control.zip(&medians) {
            let same_task = match word_bare {
                Some(base) if name.starts_with("word task: ") => {
                    format!("{:>12.3}", median / base)
                }
                _ => String::new(),
            };
            println!(
                "{group:<36} {name:<52} {median:>10.1} {:>9.3}{same_task}",
                median / medians[0]
            );
        }
    }
}
