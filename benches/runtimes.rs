//! Group 3, per runtime: bare vs `with_store` vs tokio `task_local!`, each
//! polled by the runtime's real scheduler.
//!
//! One iteration spawns one task holding the leaf future (10 000 times
//! `Pending`, waking itself, then `Ready`) and waits for it, so each poll
//! goes through the runtime's wake -> queue -> poll path. Time per poll =
//! time per iteration / 10 001 (`Throughput::Elements`); the spawn and join
//! are part of the iteration (well under 1% of it).
//!
//! * tokio `current_thread` and `multi_thread` (`enable_all`, as
//!   `#[tokio::main]` builds them): `rt.block_on(tokio::spawn(fut))`;
//! * async-std: `task::block_on(task::spawn(fut))` (global executor threads);
//! * smol: an `Executor` run on the bench thread,
//!   `block_on(ex.run(ex.spawn(fut)))`;
//! * plain block_on: `futures::executor::block_on(fut)`, no task at all.
//!
//! Run: `cargo bench --all-features --bench runtimes`.

use std::hint::black_box;

use async_local_storage::WithStore;
use criterion::Criterion;

mod common;

use common::{Leaf, POLLS};

tokio::task_local! {
    static TL_U64: u64;
}

const GROUPS: [&str; 5] = [
    "rt_tokio_current_thread",
    "rt_tokio_multi_thread",
    "rt_async_std",
    "rt_smol",
    "rt_futures_block_on",
];

/// Benchmarks bare / `with_store u64` / `task_local u64` on one runtime:
/// `$run` runs the future bound to `$fut` to completion. A macro, so that
/// every variant spawns its concrete future type, as real code does.
macro_rules! variants {
    ($c:expr, $name:expr, |$fut:ident| $run:expr) => {{
        let mut g = common::group($c, $name, POLLS);
        g.bench_function("bare", |b| {
            b.iter(|| {
                let $fut = Leaf::new();
                $run
            })
        });
        g.bench_function("with_store u64", |b| {
            b.iter(|| {
                let $fut = Leaf::new().with_store(black_box(7u64));
                $run
            })
        });
        g.bench_function("tokio task_local scope u64", |b| {
            b.iter(|| {
                let $fut = TL_U64.scope(black_box(7u64), Leaf::new());
                $run
            })
        });
        g.finish();
    }};
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    variants!(c, GROUPS[0], |fut| rt
        .block_on(async { tokio::spawn(fut).await.unwrap() }));
    drop(rt);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    variants!(c, GROUPS[1], |fut| rt
        .block_on(async { tokio::spawn(fut).await.unwrap() }));
    drop(rt);

    variants!(c, GROUPS[2], |fut| async_std::task::block_on(
        async_std::task::spawn(fut)
    ));

    let ex = smol::Executor::new();
    variants!(c, GROUPS[3], |fut| smol::block_on(ex.run(ex.spawn(fut))));

    variants!(c, GROUPS[4], |fut| futures::executor::block_on(fut));
}

fn main() {
    common::main(&GROUPS, bench);
}
