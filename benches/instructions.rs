//! Instruction counts under callgrind (gungraun): the deterministic
//! counterpart of the criterion groups, and what the CI gate checks
//! (`scripts/instructions.sh`, baseline in `benches/instructions.baseline`).
//!
//! Each benchmark measures exactly ONE operation: everything it needs (the
//! future, the enclosing scopes, a snapshot) is built first, and only the
//! call to [`measured_op`] is counted (callgrind's `--toggle-collect` is set
//! to that one function, see `main!` below). So a figure is the instructions
//! of one poll, one read, one capture or one create+drop, plus the same few
//! instructions of call overhead in every benchmark (`poll_bare` shows them
//! for the poll group). Values a benchmark makes (a snapshot, a read value)
//! are returned from `measured_op`, so their drop is not counted.
//!
//! * `poll_*`: one poll of the leaf future (the second: the first is a
//!   warm-up, so every figure is the steady state) through
//!   `Pin<&mut dyn Future>`, bare and wrapped (`with_snapshot` of 1 store,
//!   and of 4, linked once, at the first poll, where the future is pinned);
//! * `read_*`: one `get::<A>()` with the store 1 or 4 frames deep, and a miss;
//! * `snapshot_*`: `Snapshot::capture` with 1 and 4 stores visible,
//!   `Snapshot::clone` of a 1-store snapshot;
//! * `scoped_drop_*`: create and drop a `Scoped<Ready<()>, u64>` (its drop
//!   enters the frame), outside any scope and inside 1 and 4 scopes;
//! * `spawn_adapter_*`: one task's whole life on a tokio current-thread
//!   runtime, spawned through the adapter from a parent with 1 or 4 stores:
//!   spawn, poll, completion, join, plus the `block_on` and the parent's
//!   poll that every `spawn` figure includes alike;
//! * `spawn_adapter_smol_executor_*`: the same on a smol `Executor`, with a
//!   task that holds one word of its own (so that the count shows whether
//!   the executor inlines the task's poll into its own), driven by hand:
//!   the parent polled, the executor ticked, the parent polled again;
//! * `smol_*`: references, which the gate does not check: that task
//!   spawned with the `Executor`'s own `spawn` (from a parent with 1 store),
//!   and in plain wrappers 16 bytes larger (1 store) and 104 bytes larger
//!   (4 stores), as for tokio below;
//! * `tokio_*`: references, which the gate does not check: tokio
//!   `task_local!` equivalents of the poll and read figures, and the same
//!   task spawned with plain `tokio::spawn` (from a parent with 1 or 4
//!   stores), with a fixed store attached (`with_store`, no capture), in a
//!   plain wrapper 16 bytes larger (from a parent with 1 store) and 104 bytes
//!   larger (with 4): the runtime's own price for the adapter's larger task,
//!   and re-scoping one `task_local!` key.
//!
//! Run: `scripts/instructions.sh` (installs the runner, prints the table,
//! checks the baseline), or `cargo bench --features tokio,smol --bench instructions`
//! with `gungraun-runner` of the same version as the `gungraun` dev-dependency
//! on `PATH` (or in `GUNGRAUN_RUNNER`).

// gungraun's macros generate undocumented `pub` modules, functions and
// constants for every benchmark and group.
#![allow(missing_docs)]

use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use async_local_storage::adapters::smol::ExecutorExt;
use async_local_storage::{get, scope, Snapshot, WithStore};
use gungraun::{
    library_benchmark, library_benchmark_group, main, Callgrind, EntryPoint, LibraryBenchmarkConfig,
};

mod common;

use common::{scopes4, Leaf, A, B, C, D};

/// The one function whose instructions are counted (the callgrind entry
/// point). `f` is inlined into it; what `f` returns is dropped by the
/// caller, outside the count.
#[inline(never)]
fn measured_op<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// The pattern callgrind matches against the demangled name of
/// [`measured_op`] (every instantiation has the same name).
const ENTRY_POINT: &str = "*::measured_op";

/// A store type nothing sets: reads of it walk every frame.
#[derive(Clone, Copy)]
struct Unset;

tokio::task_local! {
    static TL_U64: u64;
    static TL_A: A;
    static TL_B: B;
    static TL_C: C;
    static TL_D: D;
}

/// Polls `fut` once (warm-up), then counts one more poll, made as an
/// executor makes it: through `Pin<&mut dyn Future>` with a no-op waker.
fn count_one_poll(fut: Pin<&mut dyn Future<Output = ()>>) -> Poll<()> {
    let mut fut = black_box(fut);
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    let out = measured_op(|| fut.as_mut().poll(&mut cx));
    assert!(out.is_pending());
    out
}

/// Three stores of other types around `f`, so that an `A` installed
/// outside is 4 frames deep.
fn depth4<R>(f: impl FnOnce() -> R) -> R {
    scope(B(2), || scope(C(3), || scope(D(4), f)))
}

// ---- per poll ----

#[library_benchmark]
fn poll_bare() -> Poll<()> {
    count_one_poll(pin!(Leaf::new()))
}

#[library_benchmark]
fn poll_with_store_u64() -> Poll<()> {
    count_one_poll(pin!(Leaf::new().with_store(black_box(7u64))))
}

#[library_benchmark]
fn poll_with_store_4k() -> Poll<()> {
    count_one_poll(pin!(Leaf::new().with_store(black_box([7u8; 4096]))))
}

#[library_benchmark]
fn poll_with_store_x4_nested() -> Poll<()> {
    count_one_poll(pin!(common::nested4()))
}

#[library_benchmark]
fn poll_with_snapshot_1() -> Poll<()> {
    let snapshot = scope(A(1), Snapshot::capture);
    count_one_poll(pin!(Leaf::new().with_snapshot(snapshot)))
}

#[library_benchmark]
fn poll_with_snapshot_4() -> Poll<()> {
    let snapshot = scopes4(Snapshot::capture);
    count_one_poll(pin!(Leaf::new().with_snapshot(snapshot)))
}

// ---- per read ----

#[library_benchmark]
fn read_get_depth1() -> Option<A> {
    scope(A(7), || measured_op(get::<A>))
}

#[library_benchmark]
fn read_get_depth4() -> Option<A> {
    scope(A(7), || depth4(|| measured_op(get::<A>)))
}

#[library_benchmark]
fn read_get_miss_4_frames() -> Option<Unset> {
    scopes4(|| measured_op(get::<Unset>))
}

// ---- snapshots ----

#[library_benchmark]
fn snapshot_capture_1() -> Snapshot {
    let snapshot = scope(A(1), || measured_op(Snapshot::capture));
    assert_eq!(snapshot.len(), 1);
    snapshot
}

#[library_benchmark]
fn snapshot_capture_4() -> Snapshot {
    let snapshot = scopes4(|| measured_op(Snapshot::capture));
    assert_eq!(snapshot.len(), 4);
    snapshot
}

#[library_benchmark]
fn snapshot_clone_1() -> (Snapshot, Snapshot) {
    let snapshot = scope(A(1), Snapshot::capture);
    let copy = measured_op(|| black_box(&snapshot).clone());
    assert_eq!(copy.len(), 1);
    (snapshot, copy)
}

// ---- Scoped drop (create + drop) ----

/// Creates a `Scoped<Ready<()>, u64>` and drops it, which enters its frame.
fn create_and_drop() {
    measured_op(|| {
        let fut: async_local_storage::Scoped<Ready<()>, u64> =
            black_box(ready(())).with_store(black_box(7u64));
        drop(black_box(fut));
    });
}

#[library_benchmark]
fn scoped_drop_outside() {
    create_and_drop();
}

#[library_benchmark]
fn scoped_drop_in_1() {
    scope(A(1), create_and_drop);
}

#[library_benchmark]
fn scoped_drop_in_4() {
    scopes4(create_and_drop);
}

// ---- a task's whole life on a tokio current-thread runtime ----

/// A current-thread runtime (no I/O or time driver: nothing in it depends
/// on the clock), warmed up by one spawn.
fn runtime() -> tokio::runtime::Runtime {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async { tokio::spawn(async {}).await.unwrap() });
    rt
}

/// Counts `rt.block_on(parent)`: the parent spawns one empty task, which
/// runs, and awaits it. So the figure is one task's spawn, poll, completion
/// and join, plus the same `block_on` and parent poll in every variant.
fn count_one_task(rt: &tokio::runtime::Runtime, parent: impl Future<Output = ()>) {
    let parent = black_box(parent);
    measured_op(|| rt.block_on(parent));
}

/// The parent that spawns its task through the adapter.
async fn adapter_parent() {
    async_local_storage::adapters::tokio::spawn(async {})
        .await
        .unwrap()
}

/// The parent that spawns its task with plain `tokio::spawn`.
async fn plain_parent() {
    tokio::spawn(async {}).await.unwrap()
}

#[library_benchmark]
fn spawn_adapter_1() {
    count_one_task(&runtime(), adapter_parent().with_store(A(1)));
}

#[library_benchmark]
fn spawn_adapter_4() {
    count_one_task(&runtime(), common::stores4(adapter_parent()));
}

#[library_benchmark]
fn tokio_spawn_bare() {
    count_one_task(&runtime(), plain_parent().with_store(A(1)));
}

#[library_benchmark]
fn tokio_spawn_bare_in_4() {
    count_one_task(&runtime(), common::stores4(plain_parent()));
}

#[library_benchmark]
fn tokio_spawn_with_store() {
    let rt = runtime();
    let parent = async { tokio::spawn(async {}.with_store(A(7))).await.unwrap() };
    count_one_task(&rt, parent.with_store(A(1)));
}

#[library_benchmark]
fn tokio_spawn_padded_16() {
    let rt = runtime();
    let parent = async {
        tokio::spawn(common::padded::<[u64; 2], _>(async {}))
            .await
            .unwrap()
    };
    count_one_task(&rt, parent.with_store(A(1)));
}

#[library_benchmark]
fn tokio_spawn_padded_104_in_4() {
    let rt = runtime();
    let parent = async {
        tokio::spawn(common::padded::<[u64; 13], _>(async {}))
            .await
            .unwrap()
    };
    count_one_task(&rt, common::stores4(parent));
}

#[library_benchmark]
fn tokio_spawn_task_local() {
    let rt = runtime();
    let parent = async {
        tokio::spawn(TL_A.scope(TL_A.get(), async {}))
            .await
            .unwrap()
    };
    count_one_task(&rt, TL_A.scope(A(1), parent));
}

// ---- a task's whole life on a smol `Executor` ----

/// A task that holds one word of its own. (An empty `async {}` holds
/// nothing, and its poll is nearly nothing: with this one, whether the
/// runtime inlines the task's poll into its own shows in the count.)
async fn word_task(word: u64) {
    black_box(word);
}

/// Counts one task's life on a smol `Executor`: `parent(ex)` polled once
/// (it spawns one word task on `ex` and waits for it), the executor ticked
/// until it has nothing left to run (the task runs and completes), and the
/// parent polled again (it joins the task). Driven by hand, with a no-op
/// waker, so that nothing else is counted (`block_on(ex.run(..))` costs
/// about 7,000 instructions of its own). One uncounted round first, with
/// the same parent: it warms the executor, and the allocator for the
/// task's size.
fn count_one_smol_task<P: Future<Output = ()>>(
    parent: impl Fn(&'static smol::Executor<'static>) -> P,
) {
    let ex: &'static smol::Executor<'static> = Box::leak(Box::new(smol::Executor::new()));
    let round = |count: &dyn Fn(&mut dyn FnMut())| {
        let mut parent = pin!(black_box(parent(ex)));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        count(&mut || {
            assert!(parent.as_mut().poll(&mut cx).is_pending());
            while ex.try_tick() {}
            assert!(parent.as_mut().poll(&mut cx).is_ready());
        });
    };
    round(&|f| f());
    round(&|f| measured_op(f));
}

#[library_benchmark]
fn spawn_adapter_smol_executor_1() {
    count_one_smol_task(|ex| async { ex.spawn_with_stores(word_task(1)).await }.with_store(A(1)));
}

#[library_benchmark]
fn spawn_adapter_smol_executor_4() {
    count_one_smol_task(|ex| common::stores4(async { ex.spawn_with_stores(word_task(1)).await }));
}

#[library_benchmark]
fn smol_executor_spawn_bare() {
    count_one_smol_task(|ex| async { ex.spawn(word_task(1)).await }.with_store(A(1)));
}

#[library_benchmark]
fn smol_executor_spawn_padded_16() {
    count_one_smol_task(|ex| {
        async { ex.spawn(common::padded::<[u64; 2], _>(word_task(1))).await }.with_store(A(1))
    });
}

#[library_benchmark]
fn smol_executor_spawn_padded_104_in_4() {
    count_one_smol_task(|ex| {
        common::stores4(async { ex.spawn(common::padded::<[u64; 13], _>(word_task(1))).await })
    });
}

// ---- tokio task_local! (reference, not gated) ----

#[library_benchmark]
fn tokio_poll_scope_u64() -> Poll<()> {
    count_one_poll(pin!(TL_U64.scope(black_box(7u64), Leaf::new())))
}

#[library_benchmark]
fn tokio_poll_scope_x4_nested() -> Poll<()> {
    count_one_poll(pin!(TL_D.scope(
        black_box(D(4)),
        TL_C.scope(
            black_box(C(3)),
            TL_B.scope(black_box(B(2)), TL_A.scope(black_box(A(1)), Leaf::new())),
        ),
    )))
}

#[library_benchmark]
fn tokio_read_localkey_with() -> u64 {
    TL_A.sync_scope(A(7), || measured_op(|| TL_A.with(|a| a.0)))
}

library_benchmark_group!(
    name = per_poll,
    benchmarks = [
        poll_bare,
        poll_with_store_u64,
        poll_with_store_4k,
        poll_with_store_x4_nested,
        poll_with_snapshot_1,
        poll_with_snapshot_4
    ]
);

library_benchmark_group!(
    name = per_read,
    benchmarks = [read_get_depth1, read_get_depth4, read_get_miss_4_frames]
);

library_benchmark_group!(
    name = snapshot,
    benchmarks = [snapshot_capture_1, snapshot_capture_4, snapshot_clone_1]
);

library_benchmark_group!(
    name = scoped_drop,
    benchmarks = [scoped_drop_outside, scoped_drop_in_1, scoped_drop_in_4]
);

library_benchmark_group!(
    name = tokio_reference,
    benchmarks = [
        tokio_poll_scope_u64,
        tokio_poll_scope_x4_nested,
        tokio_read_localkey_with
    ]
);

library_benchmark_group!(
    name = spawn,
    benchmarks = [
        spawn_adapter_1,
        spawn_adapter_4,
        tokio_spawn_bare,
        tokio_spawn_bare_in_4,
        tokio_spawn_with_store,
        tokio_spawn_padded_16,
        tokio_spawn_padded_104_in_4,
        tokio_spawn_task_local
    ]
);

library_benchmark_group!(
    name = spawn_smol_executor,
    benchmarks = [
        spawn_adapter_smol_executor_1,
        spawn_adapter_smol_executor_4,
        smol_executor_spawn_bare,
        smol_executor_spawn_padded_16,
        smol_executor_spawn_padded_104_in_4
    ]
);

main!(
    config = LibraryBenchmarkConfig::default()
        .tool(Callgrind::default().entry_point(EntryPoint::Custom(ENTRY_POINT.to_owned()))),
    library_benchmark_groups = [
        per_poll,
        per_read,
        snapshot,
        scoped_drop,
        spawn,
        spawn_smol_executor,
        tokio_reference
    ]
);
