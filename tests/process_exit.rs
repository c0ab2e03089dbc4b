//! Teardown at process exit (issue 13): `std::process::exit` inside a scope
//! whose frame a thread-local owns.
//!
//! `exit` does not unwind: the C runtime runs the thread's TLS destructors
//! while the scope is still entered. If a destructor drops a `Snapshot` being
//! `run`, or a `Scoped` being polled, the frame must unpublish itself (and
//! everything above it) instead of leaving the slot pointing into freed
//! memory, or linking the frame to itself (a later read of an unset type
//! would then walk forever).
//!
//! Each case runs in a child process (this test binary, re-run with
//! `ALS_EXIT_CASE` set): it registers a reader thread-local first (so that
//! its destructor runs last), then a thread-local that owns the frame, and
//! calls `exit(0)` inside the scope. The reader's destructor prints what it
//! sees. The parent asserts that the child exits in time, successfully, and
//! that the reader saw no store.
#![cfg(feature = "std")]

mod common;

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use async_local_storage::{get, is_set, scope, Snapshot, WithStore};
use common::{poll_once, yield_now, RequestId};

/// Never installed: reading it walks every visible frame.
struct Unset;

/// Prints what is visible when this thread's destructors reach it.
struct Reader;

impl Drop for Reader {
    fn drop(&mut self) {
        eprintln!(
            "reader: request id {:?}, unset type set: {}",
            get::<RequestId>(),
            is_set::<Unset>()
        );
    }
}

std::thread_local! {
    static READER: Reader = const { Reader };
    static SNAPSHOT: RefCell<Option<Snapshot>> = const { RefCell::new(None) };
    static FUTURE: RefCell<Option<Pin<Box<dyn Future<Output = ()>>>>> = const { RefCell::new(None) };
}

/// The child's side: sets up the case and exits inside the scope.
fn child(case: &str) -> ! {
    READER.with(|_| {}); // registered first: destroyed last
    match case {
        "snapshot" => {
            let snapshot = scope(RequestId(7), Snapshot::capture);
            SNAPSHOT.with(|slot| {
                *slot.borrow_mut() = Some(snapshot);
                let slot = slot.borrow();
                slot.as_ref().unwrap().run(|| std::process::exit(0))
            })
        }
        "scoped" => poll_owned(async { std::process::exit(0) }.with_store(RequestId(7))),
        "nested" => poll_owned(async { exit_inside(RequestId(8)).await }.with_store(RequestId(7))),
        "snapshot_frame" => {
            let snapshot = scope(RequestId(7), Snapshot::capture);
            poll_owned(async { std::process::exit(0) }.with_snapshot(snapshot))
        }
        // Jump frames (`isolated`, `with_snapshot`) publish where reads
        // continue, not themselves, so the frames inside them link past them.
        "isolated_nested" => poll_owned(async { exit_inside(RequestId(8)).await }.isolated()),
        "empty_snapshot_nested" => {
            poll_owned(async { exit_inside(RequestId(8)).await }.with_snapshot(Snapshot::empty()))
        }
        // Exits at the second poll: each async block is then suspended at
        // the await of the future inside it, and dropping it drops that
        // future, the isolated one included, which finds itself dropped
        // inside its own poll.
        "store_isolated_nested" => poll_owned(
            async {
                async {
                    async {
                        yield_now().await;
                        std::process::exit(0)
                    }
                    .with_store(RequestId(8))
                    .await
                }
                .isolated()
                .await
            }
            .with_store(RequestId(7)),
        ),
        "isolated_store_nested" => poll_owned(
            async {
                async { exit_inside(RequestId(8)).await }
                    .with_store(RequestId(7))
                    .await
            }
            .isolated(),
        ),
        other => panic!("unknown case {other}"),
    }
}

/// A future that exits the process at its first poll, inside a scope of `id`.
fn exit_inside(id: RequestId) -> impl Future<Output = ()> {
    async { std::process::exit(0) }.with_store(id)
}

/// Hands `fut` to a thread-local and polls it there until a poll exits.
fn poll_owned(fut: impl Future<Output = ()> + 'static) -> ! {
    FUTURE.with(|slot| {
        *slot.borrow_mut() = Some(Box::pin(fut));
        let mut slot = slot.borrow_mut();
        loop {
            let _ = poll_once(slot.as_mut().unwrap().as_mut());
        }
    })
}

/// Runs `case` in a child process; returns its stderr.
fn run_child(case: &str) -> String {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env("ALS_EXIT_CASE", case)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("case {case}: the child did not exit within 30 s (a read walking forever?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "case {case}: {status}\n{stderr}");
    stderr
}

/// The entry point the children run (a no-op in the normal test run).
#[test]
fn child_entry() {
    if let Ok(case) = std::env::var("ALS_EXIT_CASE") {
        child(&case);
    }
}

fn assert_reader_saw_nothing(case: &str) {
    let stderr = run_child(case);
    assert!(
        stderr.contains("reader: request id None, unset type set: false"),
        "case {case}: the reader in a later TLS destructor saw a store:\n{stderr}"
    );
}

#[test]
fn exit_inside_a_thread_local_snapshot_run() {
    assert_reader_saw_nothing("snapshot");
}

#[test]
fn exit_inside_a_thread_local_polled_scoped() {
    assert_reader_saw_nothing("scoped");
}

#[test]
fn exit_inside_nested_scoped_futures() {
    assert_reader_saw_nothing("nested");
}

#[test]
fn exit_inside_a_thread_local_with_snapshot_future() {
    assert_reader_saw_nothing("snapshot_frame");
}

#[test]
fn exit_inside_a_store_inside_an_isolated_future() {
    assert_reader_saw_nothing("isolated_nested");
}

#[test]
fn exit_inside_a_store_inside_a_with_snapshot_future_of_no_store() {
    assert_reader_saw_nothing("empty_snapshot_nested");
}

#[test]
fn exit_inside_a_store_inside_an_isolated_future_inside_a_store() {
    assert_reader_saw_nothing("store_isolated_nested");
}

#[test]
fn exit_inside_a_store_inside_a_store_inside_an_isolated_future() {
    assert_reader_saw_nothing("isolated_store_nested");
}
