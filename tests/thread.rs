//! `thread::spawn` and `thread::spawn_scoped` carry the stores; a plain
//! `std::thread::spawn` does not.

// `thread` needs `std`: without it (a no_std backend) there is nothing to test.
#![cfg(feature = "std")]

mod common;

use async_local_storage::{get, scope, thread, WithStore};
use common::{block_on, RequestId, User};

#[test]
fn spawn_carries_the_stores() {
    let handle = scope(RequestId(1), || {
        scope(User("ada"), || {
            thread::spawn(|| (get::<RequestId>(), get::<User>()))
        })
    });
    assert_eq!(
        handle.join().unwrap(),
        (Some(RequestId(1)), Some(User("ada")))
    );
}

#[test]
fn a_plain_std_spawn_does_not() {
    let handle = scope(RequestId(1), || std::thread::spawn(get::<RequestId>));
    assert_eq!(handle.join().unwrap(), None);
}

#[test]
fn spawn_from_inside_a_future() {
    let seen = block_on(
        async { thread::spawn(get::<RequestId>).join().unwrap() }.with_store(RequestId(2)),
    );
    assert_eq!(seen, Some(RequestId(2)));
}

#[test]
fn spawn_scoped_carries_the_stores() {
    let mut seen = None;
    scope(RequestId(3), || {
        std::thread::scope(|s| {
            thread::spawn_scoped(s, || seen = get::<RequestId>());
        })
    });
    assert_eq!(seen, Some(RequestId(3)));
}

#[test]
fn the_new_thread_is_clean_after_the_closure() {
    let handle = scope(RequestId(4), || {
        thread::spawn(|| {
            assert_eq!(get::<RequestId>(), Some(RequestId(4)));
        })
    });
    handle.join().unwrap();
    // And a panic in the closure is reported as usual.
    let handle = scope(RequestId(5), || thread::spawn(|| panic!("worker failed")));
    assert!(handle.join().is_err());
}
