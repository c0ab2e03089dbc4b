//! Stores carried into spawned tasks, blocking work and OS threads by the
//! adapters, and what a runtime's own spawn loses.
//!
//! ```text
//! cargo run --example spawn_and_blocking --features tokio,async-std,smol
//! ```
//!
//! Every line it prints is also asserted: it exits 0 only if what it shows
//! is what happened.

use async_local_storage::{get, scope, WithStore};

/// The store: one request's id, set once at the top of the request.
#[derive(Clone, Debug, PartialEq)]
struct RequestId(u64);

/// Where work started by the request would like to read the id from.
fn current_request() -> Option<RequestId> {
    get::<RequestId>()
}

/// Prints one row of the demonstration and checks it: `carried` rows must
/// see `RequestId(42)`, the others nothing.
fn row(how: &str, seen: Option<RequestId>, carried: bool) {
    let verdict = if carried {
        "carried"
    } else {
        "LOST: a plain spawn starts with no stores"
    };
    show(how, seen, carried, verdict);
}

fn show(how: &str, seen: Option<RequestId>, visible: bool, verdict: &str) {
    let expected = visible.then_some(RequestId(42));
    println!("  {how:<48} sees {:<22} {verdict}", format!("{seen:?}"));
    assert_eq!(seen, expected, "{how}");
}

fn main() {
    println!("A request sets RequestId(42) once, then starts work in other tasks and threads.\n");

    println!("tokio (multi-thread runtime)");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(
        async {
            show(
                "the request itself",
                current_request(),
                true,
                "set with .with_store",
            );
            let task = async_local_storage::adapters::tokio::spawn(async { current_request() });
            row(
                "async_local_storage::adapters::tokio::spawn",
                task.await.unwrap(),
                true,
            );
            let job = async_local_storage::adapters::tokio::spawn_blocking(current_request);
            row(
                "async_local_storage::adapters::tokio::spawn_blocking",
                job.await.unwrap(),
                true,
            );
            let in_place = async_local_storage::adapters::tokio::spawn(async {
                tokio::task::block_in_place(current_request)
            });
            show(
                "tokio::task::block_in_place",
                in_place.await.unwrap(),
                true,
                "visible: same thread, same poll",
            );
            let plain = tokio::spawn(async { current_request() });
            row("tokio::spawn", plain.await.unwrap(), false);
            let plain = tokio::task::spawn_blocking(current_request);
            row("tokio::task::spawn_blocking", plain.await.unwrap(), false);
        }
        .with_store(RequestId(42)),
    );

    println!("\nasync-std (discontinued upstream in favour of smol; still supported)");
    async_std::task::block_on(
        async {
            let task = async_local_storage::adapters::async_std::spawn(async { current_request() });
            row(
                "async_local_storage::adapters::async_std::spawn",
                task.await,
                true,
            );
            let task =
                async_local_storage::adapters::async_std::spawn_local(async { current_request() });
            row(
                "async_local_storage::adapters::async_std::spawn_local",
                task.await,
                true,
            );
            let job = async_local_storage::adapters::async_std::spawn_blocking(current_request);
            row(
                "async_local_storage::adapters::async_std::spawn_blocking",
                job.await,
                true,
            );
            let plain = async_std::task::spawn(async { current_request() });
            row("async_std::task::spawn", plain.await, false);
        }
        .with_store(RequestId(42)),
    );

    println!("\nsmol");
    let ex = smol::Executor::new();
    smol::block_on(
        ex.run(
            async {
                use async_local_storage::adapters::smol::ExecutorExt;

                let task = async_local_storage::adapters::smol::spawn(async { current_request() });
                row(
                    "async_local_storage::adapters::smol::spawn",
                    task.await,
                    true,
                );
                let task = ex.spawn_with_stores(async { current_request() });
                row(
                    "Executor::spawn_with_stores (ExecutorExt)",
                    task.await,
                    true,
                );
                let job = async_local_storage::adapters::smol::unblock(current_request);
                row(
                    "async_local_storage::adapters::smol::unblock",
                    job.await,
                    true,
                );
                let plain = smol::spawn(async { current_request() });
                row("smol::spawn", plain.await, false);
                let plain = ex.spawn(async { current_request() });
                row("Executor::spawn", plain.await, false);
            }
            .with_store(RequestId(42)),
        ),
    );

    println!("\nOS threads (synchronous code, with `scope`)");
    scope(RequestId(42), || {
        let thread = async_local_storage::thread::spawn(current_request);
        row(
            "async_local_storage::thread::spawn",
            thread.join().unwrap(),
            true,
        );
        let plain = std::thread::spawn(current_request);
        row("std::thread::spawn", plain.join().unwrap(), false);
    });

    println!("\nAnd where the request is over, nothing is visible:");
    show(
        "after the request",
        current_request(),
        false,
        "gone: the scope has ended",
    );
}
