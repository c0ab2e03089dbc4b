//! Group 2, reads: `get` and `with` at depth 1 and depth 4 against tokio's
//! `LocalKey::with`/`get`.
//!
//! Each iteration makes 1 000 reads (`Throughput::Elements(1000)`), so
//! time per read = time per iteration / 1 000. The stores are installed with
//! `scope` (the same frames `with_store` publishes during a poll). "Depth 4"
//! means the store read is the outermost of four (three frames of other types
//! are walked first); "miss" reads a type that is not set, walking all four.
//! A tokio `task_local!` read costs the same at any nesting (one
//! thread-local per key), so it is measured once, with four keys set.
//!
//! `bare` is the floor: reading a `const` `thread_local!` `Cell<u64>`.
//!
//! Run: `cargo bench --bench read`.

use std::cell::Cell;
use std::hint::black_box;

use async_local_storage::{get, scope, with};
use criterion::Criterion;

mod common;

use common::{A, B, C, D};

const GROUP: &str = "read";
const READS: u64 = 1000;

#[derive(Clone, Copy)]
struct Unset;

tokio::task_local! {
    static TL_ID: A;
    static TL_B: B;
    static TL_C: C;
    static TL_D: D;
}

std::thread_local! {
    static PLAIN: Cell<u64> = const { Cell::new(7) };
}

/// Three stores of other types around `f`, so that `A` is 4 frames deep.
fn depth4<R>(f: impl FnOnce() -> R) -> R {
    scope(B(2), || scope(C(3), || scope(D(4), f)))
}

fn bench(c: &mut Criterion) {
    let mut g = common::group(c, GROUP, READS);

    g.bench_function("bare thread_local! Cell get", |b| {
        b.iter(|| {
            for _ in 0..READS {
                black_box(PLAIN.with(Cell::get));
            }
        })
    });

    scope(A(7), || {
        g.bench_function("get depth 1", |b| {
            b.iter(|| {
                for _ in 0..READS {
                    black_box(get::<A>().map(|id| id.0));
                }
            })
        });
        g.bench_function("with depth 1", |b| {
            b.iter(|| {
                for _ in 0..READS {
                    black_box(with(|id: Option<&A>| id.map(|id| id.0)));
                }
            })
        });
        depth4(|| {
            g.bench_function("get depth 4", |b| {
                b.iter(|| {
                    for _ in 0..READS {
                        black_box(get::<A>().map(|id| id.0));
                    }
                })
            });
            g.bench_function("with depth 4", |b| {
                b.iter(|| {
                    for _ in 0..READS {
                        black_box(with(|id: Option<&A>| id.map(|id| id.0)));
                    }
                })
            });
            g.bench_function("get miss (4 frames walked)", |b| {
                b.iter(|| {
                    for _ in 0..READS {
                        black_box(get::<Unset>().is_some());
                    }
                })
            });
        });
    });

    TL_ID.sync_scope(A(7), || {
        TL_B.sync_scope(B(2), || {
            TL_C.sync_scope(C(3), || {
                TL_D.sync_scope(D(4), || {
                    g.bench_function("tokio LocalKey::with", |b| {
                        b.iter(|| {
                            for _ in 0..READS {
                                black_box(TL_ID.with(|id| id.0));
                            }
                        })
                    });
                    g.bench_function("tokio LocalKey::try_with", |b| {
                        b.iter(|| {
                            for _ in 0..READS {
                                black_box(TL_ID.try_with(|id| id.0).ok());
                            }
                        })
                    });
                    g.bench_function("tokio LocalKey::get", |b| {
                        b.iter(|| {
                            for _ in 0..READS {
                                black_box(TL_ID.get().0);
                            }
                        })
                    });
                })
            })
        })
    });

    g.finish();
}

fn main() {
    common::main(&[GROUP], bench);
}
