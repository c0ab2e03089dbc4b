//! Group 1, no runtime: what `.with_store(value)` costs per poll.
//!
//! A leaf future returns `Pending` 10 000 times (waking itself) and then
//! `Ready`; a minimal executor loop polls it through `Pin<&mut dyn Future>`
//! with a no-op waker. Time per poll = time per iteration / 10 001
//! (`Throughput::Elements`). Every variant wraps the same leaf:
//!
//! * `bare`: the leaf alone;
//! * `thread-local save/restore (reference)`: the floor for any
//!   thread-local scheme, a hand-written wrapper that does what `Scoped`
//!   does per poll (read a `const` thread-local, link, publish, restore);
//! * `with_store` with a `u64`, a `[u8; 256]` and a `[u8; 4096]`, and four
//!   nested stores; `with_snapshot` (what adapter-spawned tasks pay);
//! * tokio `task_local!` `scope` with the same values (what users would
//!   use otherwise), and four nested scopes;
//! * tracing's `Instrument` with disabled spans.
//!
//! Run: `cargo bench --bench poll`.

use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::ptr;
use std::task::{Context, Poll};

use async_local_storage::{Snapshot, WithStore};
use criterion::Criterion;
use tracing::Instrument;

mod common;

use common::{A, B, C, D};

use common::{run, Leaf, POLLS};

const GROUP: &str = "poll";

tokio::task_local! {
    static TL_U64: u64;
    static TL_256: [u8; 256];
    static TL_4K: [u8; 4096];
    static TL_A: A;
    static TL_B: B;
    static TL_C: C;
    static TL_D: D;
}

std::thread_local! {
    static REF_TOP: Cell<*const ()> = const { Cell::new(ptr::null()) };
}

/// The reference: per poll, read a `const` thread-local, write the previous
/// value into the future (the link), publish the future's address, poll,
/// restore. This is `Scoped`'s work without the value, the `TypeId` or the
/// unwind guard.
struct SaveRestore<F> {
    inner: F,
    link: *const (),
}

impl<F: Future + Unpin> Future for SaveRestore<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let me: *const () = ptr::from_mut(this).cast_const().cast();
        this.link = REF_TOP.with(|top| top.replace(me));
        let out = Pin::new(&mut this.inner).poll(cx);
        REF_TOP.with(|top| top.set(this.link));
        out
    }
}

fn bench(c: &mut Criterion) {
    let mut g = common::group(c, GROUP, POLLS);

    g.bench_function("bare", |b| b.iter(|| run(Leaf::new)));
    g.bench_function("thread-local save/restore (reference)", |b| {
        b.iter(|| {
            run(|| SaveRestore {
                inner: Leaf::new(),
                link: ptr::null(),
            })
        })
    });

    g.bench_function("with_store u64", |b| {
        b.iter(|| run(|| Leaf::new().with_store(black_box(7u64))))
    });
    g.bench_function("with_store [u8; 256]", |b| {
        b.iter(|| run(|| Leaf::new().with_store(black_box([7u8; 256]))))
    });
    g.bench_function("with_store [u8; 4096]", |b| {
        b.iter(|| run(|| Leaf::new().with_store(black_box([7u8; 4096]))))
    });
    g.bench_function("with_store x4 nested (u64 newtypes)", |b| {
        b.iter(|| run(common::nested4))
    });

    // What a task spawned through an adapter pays per poll: a snapshot
    // (here of one store) restored around every poll.
    let snapshot = async_local_storage::scope(A(1), Snapshot::capture);
    g.bench_function("with_snapshot (1 store, as adapter-spawned tasks)", |b| {
        b.iter(|| run(|| Leaf::new().with_snapshot(snapshot.clone())))
    });
    // Four stores: linked once, at the first poll (the future is pinned).
    let snapshot4 = common::scopes4(Snapshot::capture);
    g.bench_function("with_snapshot (4 stores)", |b| {
        b.iter(|| run(|| Leaf::new().with_snapshot(snapshot4.clone())))
    });

    g.bench_function("tokio task_local scope u64", |b| {
        b.iter(|| run(|| TL_U64.scope(black_box(7u64), Leaf::new())))
    });
    g.bench_function("tokio task_local scope [u8; 256]", |b| {
        b.iter(|| run(|| TL_256.scope(black_box([7u8; 256]), Leaf::new())))
    });
    g.bench_function("tokio task_local scope [u8; 4096]", |b| {
        b.iter(|| run(|| TL_4K.scope(black_box([7u8; 4096]), Leaf::new())))
    });
    g.bench_function("tokio task_local scope x4 nested", |b| {
        b.iter(|| {
            run(|| {
                TL_D.scope(
                    black_box(D(4)),
                    TL_C.scope(
                        black_box(C(3)),
                        TL_B.scope(black_box(B(2)), TL_A.scope(black_box(A(1)), Leaf::new())),
                    ),
                )
            })
        })
    });

    g.bench_function("tracing instrument Span::none()", |b| {
        b.iter(|| run(|| Leaf::new().instrument(tracing::Span::none())))
    });
    g.bench_function("tracing instrument info_span! (disabled)", |b| {
        b.iter(|| run(|| Leaf::new().instrument(tracing::info_span!("bench"))))
    });

    g.finish();
}

fn main() {
    common::main(&[GROUP], bench);
}
