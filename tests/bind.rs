//! Reusable bound callbacks (issue 15): `Snapshot::bind_fn`, `bind_fn_mut`,
//! `wrap_fn`, `wrap_fn_mut`. Every call runs inside the stores captured at
//! bind time, whoever calls, from whatever thread, and nothing leaks from
//! one call into the next or into the caller.

// `Snapshot` needs `alloc`; the other thread needs `std`.
#![cfg(feature = "std")]

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use async_local_storage::{get, is_set, scope, Snapshot, WithStore};
use common::{block_on, RequestId, User};

/// A store the bind site never has: set by the callers, or inside a call.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Step(u32);

fn assert_send<T: Send>(_: &T) {}

#[test]
fn bind_fn_called_three_times_from_another_thread() {
    let callback = scope(RequestId(1), || {
        scope(User("ada"), || {
            Snapshot::bind_fn(|n: u32| {
                // A store set by the previous call must be gone.
                let leaked = get::<Step>();
                let seen = scope(Step(n), || {
                    (get::<RequestId>(), get::<User>(), get::<Step>())
                });
                (leaked, seen)
            })
        })
    });
    assert_send(&callback);
    let results = std::thread::spawn(move || {
        let mut results = Vec::new();
        for n in 1..=3 {
            results.push(callback(n));
            // ...and the calling thread is left with no store.
            assert_eq!(get::<RequestId>(), None);
            assert_eq!(get::<User>(), None);
            assert!(!is_set::<Step>());
        }
        results
    })
    .join()
    .unwrap();
    for (n, (leaked, seen)) in (1..=3).zip(results) {
        assert_eq!(
            leaked, None,
            "call {n}: a store leaked from an earlier call"
        );
        assert_eq!(
            seen,
            (Some(RequestId(1)), Some(User("ada")), Some(Step(n))),
            "call {n}"
        );
    }
}

#[test]
fn the_bound_stores_win_over_different_caller_stores_at_each_call() {
    let callback = scope(RequestId(1), || {
        scope(User("ada"), || {
            Snapshot::bind_fn(|()| (get::<RequestId>(), get::<User>(), get::<Step>()))
        })
    });
    let seen = std::thread::spawn(move || {
        let callers = [(100, "bo"), (200, "cy"), (300, "di")];
        let mut seen = Vec::new();
        for (i, (id, user)) in (0u32..).zip(callers) {
            // Each call is made inside different caller stores: the same types
            // as the bound ones (shadowed) and one the bind site never had
            // (hidden during the call).
            let (inside, after) = scope(RequestId(id), || {
                scope(User(user), || {
                    scope(Step(i), || {
                        let inside = callback(());
                        // The caller's stores are back after the call.
                        (inside, (get::<RequestId>(), get::<User>(), get::<Step>()))
                    })
                })
            });
            assert_eq!(
                after,
                (Some(RequestId(id)), Some(User(user)), Some(Step(i))),
                "call {i}: the caller's stores were not restored"
            );
            seen.push(inside);
        }
        seen
    })
    .join()
    .unwrap();
    assert_eq!(seen, vec![(Some(RequestId(1)), Some(User("ada")), None); 3]);
}

#[test]
fn the_stores_are_captured_at_bind_time_not_at_the_first_call() {
    let callback = scope(RequestId(1), || Snapshot::bind_fn(|()| get::<RequestId>()));
    assert_eq!(scope(RequestId(2), || callback(())), Some(RequestId(1)));
    assert_eq!(callback(()), Some(RequestId(1)));
    // Bound outside every scope: every call runs with no store at all.
    let isolated = Snapshot::bind_fn(|()| get::<RequestId>());
    assert_eq!(scope(RequestId(3), || isolated(())), None);
}

#[test]
fn bind_fn_mut_keeps_its_state_and_the_stores_across_calls() {
    let mut log = Vec::new();
    let mut record = scope(User("ada"), || {
        Snapshot::bind_fn_mut(|(step, caller): (u32, &'static str)| {
            log.push((step, caller, get::<User>()));
            log.len()
        })
    });
    std::thread::scope(|s| {
        s.spawn(|| {
            for (step, caller) in [(1, "bo"), (2, "cy"), (3, "di")] {
                let len = scope(User(caller), || record((step, caller)));
                assert_eq!(len, step as usize);
                assert_eq!(get::<User>(), None);
            }
        });
    });
    drop(record);
    assert_eq!(
        log,
        [
            (1, "bo", Some(User("ada"))),
            (2, "cy", Some(User("ada"))),
            (3, "di", Some(User("ada"))),
        ]
    );
}

#[test]
fn wrap_fn_binds_to_an_existing_snapshot() {
    let snapshot = scope(RequestId(7), Snapshot::capture);
    let a = snapshot
        .clone()
        .wrap_fn(|x: u64| get::<RequestId>().map(|id| id.0 + x));
    let b = snapshot.wrap_fn(|()| get::<RequestId>());
    assert_eq!(
        scope(RequestId(0), || (a(1), a(2), b(()))),
        (Some(8), Some(9), Some(RequestId(7)))
    );

    let mut calls = 0;
    let mut hidden = Snapshot::empty().wrap_fn_mut(|()| {
        calls += 1;
        get::<RequestId>()
    });
    assert_eq!(
        scope(RequestId(1), || (hidden(()), hidden(()))),
        (None, None)
    );
    drop(hidden);
    assert_eq!(calls, 2);
}

#[test]
fn a_panicking_call_leaves_nothing_behind() {
    let callback = scope(RequestId(1), || {
        Snapshot::bind_fn(|fail: bool| {
            let id = get::<RequestId>();
            scope(Step(1), || assert!(!fail, "asked to fail"));
            id
        })
    });
    scope(User("caller"), || {
        let caught = catch_unwind(AssertUnwindSafe(|| callback(true)));
        assert!(caught.is_err());
        // The caller's stores are back, nothing of the call is visible...
        assert_eq!(
            (get::<User>(), get::<RequestId>(), get::<Step>()),
            (Some(User("caller")), None, None)
        );
        // ...and the callback still works, with its stores.
        assert_eq!(callback(false), Some(RequestId(1)));
    });
}

#[test]
fn nested_calls_of_differently_bound_callbacks() {
    let inner = scope(RequestId(2), || Snapshot::bind_fn(|()| get::<RequestId>()));
    let outer = scope(RequestId(1), || {
        Snapshot::bind_fn(move |()| (get::<RequestId>(), inner(()), get::<RequestId>()))
    });
    assert_eq!(
        outer(()),
        (Some(RequestId(1)), Some(RequestId(2)), Some(RequestId(1)))
    );
}

#[test]
fn called_from_inside_a_future_with_other_stores() {
    let callback = scope(RequestId(1), || Snapshot::bind_fn(|()| get::<RequestId>()));
    let seen = block_on(async { (callback(()), get::<RequestId>()) }.with_store(RequestId(9)));
    assert_eq!(seen, (Some(RequestId(1)), Some(RequestId(9))));
}

/// An event lent to the handlers for the duration of one call.
#[derive(Debug)]
struct Event {
    n: u32,
}

#[test]
fn bind_fn_ref_handlers_in_a_registry_get_a_fresh_borrow_at_each_call() {
    type Handler = Box<dyn Fn(&Event) -> (u32, Option<RequestId>, Option<User>) + Send>;
    let mut registry: Vec<Handler> = Vec::new();
    scope(RequestId(1), || {
        registry.push(Box::new(Snapshot::bind_fn_ref(|e: &Event| {
            (e.n, get::<RequestId>(), get::<User>())
        })));
    });
    scope(User("ada"), || {
        registry.push(Box::new(Snapshot::bind_fn_ref(|e: &Event| {
            (e.n, get::<RequestId>(), get::<User>())
        })));
    });
    let seen = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for n in 1..=3 {
            let event = Event { n }; // dropped at the end of each iteration
            scope(RequestId(100 + u64::from(n)), || {
                for handler in &registry {
                    seen.push(handler(&event));
                }
                assert_eq!(get::<RequestId>(), Some(RequestId(100 + u64::from(n))));
            });
        }
        seen
    })
    .join()
    .unwrap();
    let expected: Vec<_> = (1..=3)
        .flat_map(|n| [(n, Some(RequestId(1)), None), (n, None, Some(User("ada")))])
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn bind_fn_mut_ref_keeps_its_state_and_the_stores_across_calls() {
    let mut seen = Vec::new();
    let mut on_event = scope(User("ada"), || {
        Snapshot::bind_fn_mut_ref(|e: &Event| seen.push((e.n, get::<User>(), get::<Step>())))
    });
    std::thread::scope(|s| {
        s.spawn(|| {
            for n in 1..=3 {
                let event = Event { n };
                scope(User("caller"), || scope(Step(n), || on_event(&event)));
            }
        });
    });
    drop(on_event);
    assert_eq!(
        seen,
        (1..=3)
            .map(|n| (n, Some(User("ada")), None))
            .collect::<Vec<_>>()
    );
}
