//! `Snapshot`: what is captured, and that restoring recreates exactly what
//! was visible (shadowing, hiding and local stores included).

// `Snapshot` needs `alloc`: without it there is nothing to test.
#![cfg(feature = "alloc")]

mod common;

use std::rc::Rc;

use async_local_storage::{exit, get, is_set, scope, scope_local, Snapshot, WithStore};
use std::task::Poll;

use common::{block_on, poll_once, yield_now, RequestId, User};

#[test]
fn captures_the_innermost_value_of_each_type() {
    let snap = scope(RequestId(1), || {
        scope(User("ada"), || scope(RequestId(2), Snapshot::capture))
    });
    assert_eq!(snap.len(), 2);
    assert_eq!(
        snap.run(|| (get::<RequestId>(), get::<User>())),
        (Some(RequestId(2)), Some(User("ada")))
    );
    assert_eq!(get::<RequestId>(), None, "run restores the slot");
}

#[test]
fn restoring_hides_what_is_visible_at_the_restore_site() {
    let snap = scope(RequestId(1), Snapshot::capture);
    scope(User("elsewhere"), || {
        scope(RequestId(99), || {
            snap.run(|| {
                assert_eq!(get::<RequestId>(), Some(RequestId(1)));
                assert_eq!(get::<User>(), None);
                // Stores installed inside the restored snapshot are visible.
                scope(User("inner"), || {
                    assert_eq!(get::<User>(), Some(User("inner")))
                });
            });
            assert_eq!(get::<RequestId>(), Some(RequestId(99)));
            assert_eq!(get::<User>(), Some(User("elsewhere")));
        })
    });
}

#[test]
fn hidden_types_stay_hidden() {
    let snap = scope(RequestId(1), || {
        scope(User("ada"), || exit::<RequestId, _>(Snapshot::capture))
    });
    assert_eq!(snap.len(), 1);
    assert_eq!(
        snap.run(|| (get::<RequestId>(), get::<User>())),
        (None, Some(User("ada")))
    );
}

#[test]
fn local_stores_are_not_carried_and_do_not_let_outer_values_leak() {
    let snap = scope(RequestId(1), || {
        scope_local(RequestId(2), || {
            scope_local(Rc::new(5u8), Snapshot::capture)
        })
    });
    assert!(snap.is_empty());
    assert_eq!(
        snap.run(|| (get::<RequestId>(), is_set::<Rc<u8>>())),
        (None, false)
    );
}

#[test]
fn capture_inside_a_restored_snapshot_sees_the_snapshot_and_what_was_added() {
    let first = scope(RequestId(1), Snapshot::capture);
    let second = scope(User("outer-not-carried"), || {
        first.run(|| scope(User("added"), Snapshot::capture))
    });
    assert_eq!(second.len(), 2);
    assert_eq!(
        second.run(|| (get::<RequestId>(), get::<User>())),
        (Some(RequestId(1)), Some(User("added")))
    );
}

#[test]
fn with_snapshot_carries_into_a_future_polled_elsewhere() {
    let snap = block_on(
        async { Snapshot::capture() }
            .with_store(RequestId(3))
            .with_store(User("bo")),
    );
    let fut = async {
        yield_now().await;
        let inner = async { get::<User>() }.with_store(User("inner")).await;
        (get::<RequestId>(), get::<User>(), inner)
    }
    .with_snapshot(snap);
    let seen = std::thread::spawn(move || scope(RequestId(100), || block_on(fut)))
        .join()
        .unwrap();
    assert_eq!(
        seen,
        (Some(RequestId(3)), Some(User("bo")), Some(User("inner")))
    );
}

#[test]
fn a_snapshot_kept_as_a_store_is_an_ordinary_store() {
    // Only `with_snapshot` restores a snapshot; as a store's value (say, a
    // parent request's context kept for later), it hides nothing and can
    // be read back like any other store.
    let parent = scope(User("parent"), Snapshot::capture);
    let len = || async_local_storage::with(|s: Option<&Snapshot>| s.map(Snapshot::len));
    let seen = scope(RequestId(9), || {
        scope(parent.clone(), || {
            (get::<RequestId>(), get::<User>(), len())
        })
    });
    assert_eq!(seen, (Some(RequestId(9)), None, Some(1)));
    let seen = block_on(
        async { (get::<RequestId>(), get::<User>(), len()) }
            .with_store(parent.clone())
            .with_store(RequestId(9)),
    );
    assert_eq!(seen, (Some(RequestId(9)), None, Some(1)));
    // And the one it holds is restored on demand.
    let restored = scope(parent, || {
        async_local_storage::with(|s: Option<&Snapshot>| s.unwrap().run(get::<User>))
    });
    assert_eq!(restored, Some(User("parent")));
}

#[test]
fn a_snapshot_taken_out_of_a_with_snapshot_future_is_an_ordinary_store_again() {
    // A restored snapshot is marked as such while `with_snapshot` holds it;
    // what leaves that future (a clone of it, or the snapshot itself from
    // `into_parts`) is an ordinary value again: kept as a store, it hides
    // nothing.
    let len = || async_local_storage::with(|s: Option<&Snapshot>| s.map(Snapshot::len));
    let as_a_store = |snapshot: Snapshot| {
        scope(RequestId(9), || {
            scope(snapshot, || (get::<RequestId>(), get::<User>(), len()))
        })
    };
    let kept = (Some(RequestId(9)), None, Some(1));
    let parent = scope(User("parent"), Snapshot::capture);
    let mut fut = Box::pin(async { yield_now().await }.with_snapshot(parent));
    assert!(poll_once(fut.as_mut()).is_pending());
    assert_eq!(as_a_store(fut.value().clone()), kept);
    let copy = fut.value().clone();
    let (fut, parent) = async { get::<User>() }.with_snapshot(copy).into_parts();
    let copy = parent.clone();
    assert_eq!(as_a_store(parent), kept);
    // And it restores as before, once given back to `with_snapshot`.
    assert_eq!(block_on(fut.with_snapshot(copy)), Some(User("parent")));
}

#[test]
fn a_pinned_snapshot_of_several_stores_stays_right_across_polls() {
    // Three inline stores: linked once, at the first poll, where the
    // future is pinned (a `Box` here), and published as they are after.
    let snap = scope(RequestId(1), || {
        scope(User("ada"), || scope(3u8, Snapshot::capture))
    });
    let mut fut = Box::pin(
        async {
            let mut seen = Vec::new();
            for _ in 0..3 {
                seen.push((get::<RequestId>(), get::<User>(), get::<u8>()));
                yield_now().await;
            }
            seen
        }
        .with_snapshot(snap),
    );
    let all = (Some(RequestId(1)), Some(User("ada")), Some(3));
    // Polled under other stores, which it must not see.
    assert!(scope(RequestId(9), || poll_once(fut.as_mut())).is_pending());
    // Between polls: the frame's snapshot read and cloned in place.
    assert_eq!(
        fut.value()
            .run(|| (get::<RequestId>(), get::<User>(), get::<u8>())),
        all
    );
    let copy = fut.value().clone();
    assert!(poll_once(fut.as_mut()).is_pending());
    assert!(scope(2u8, || poll_once(fut.as_mut())).is_pending());
    let Poll::Ready(seen) = poll_once(fut.as_mut()) else {
        panic!("three yields, then ready");
    };
    assert_eq!(seen, vec![all.clone(); 3]);
    drop(fut);
    // The clone has links of its own, wherever it is restored.
    let moved = Box::new(copy);
    assert_eq!(
        moved.run(|| (get::<RequestId>(), get::<User>(), get::<u8>())),
        all
    );
    let seen = block_on(
        async { (get::<RequestId>(), get::<User>(), get::<u8>()) }.with_snapshot((*moved).clone()),
    );
    assert_eq!(seen, all);

    // An `Unpin` future inside: the frame is `!Unpin` all the same (a
    // snapshot is), pinned on the stack here.
    let snap = scope(RequestId(1), || {
        scope(User("ada"), || scope(3u8, Snapshot::capture))
    });
    let mut fut = std::pin::pin!(yield_now().with_snapshot(snap));
    assert!(poll_once(fut.as_mut()).is_pending());
    assert_eq!(
        fut.value()
            .run(|| (get::<RequestId>(), get::<User>(), get::<u8>())),
        all
    );
    assert!(poll_once(fut.as_mut()).is_ready());
}

#[test]
fn clones_are_independent() {
    let snap = scope(vec![1u32, 2], Snapshot::capture);
    let copy = snap.clone();
    drop(snap);
    assert_eq!(copy.run(get::<Vec<u32>>), Some(vec![1, 2]));
    assert_eq!(copy.clone().len(), 1);
}

#[test]
fn empty_snapshot_isolates() {
    assert!(Snapshot::default().is_empty());
    let seen = scope(RequestId(1), || Snapshot::empty().run(get::<RequestId>));
    assert_eq!(seen, None);
    let seen = block_on(
        async { get::<RequestId>() }
            .with_snapshot(Snapshot::empty())
            .with_store(RequestId(1)),
    );
    assert_eq!(seen, None);
}

#[test]
fn values_are_dropped_with_the_snapshot() {
    let value = std::sync::Arc::new(());
    let snap = scope(value.clone(), Snapshot::capture);
    assert_eq!(std::sync::Arc::strong_count(&value), 2);
    let copy = snap.clone();
    assert_eq!(std::sync::Arc::strong_count(&value), 3);
    drop((snap, copy));
    assert_eq!(std::sync::Arc::strong_count(&value), 1);
}

#[test]
fn into_parts_gives_the_snapshot_back() {
    let snap = scope(RequestId(4), Snapshot::capture);
    let (_fut, snap) = async {}.with_snapshot(snap).into_parts();
    assert_eq!(snap.run(get::<RequestId>), Some(RequestId(4)));
    assert_eq!(format!("{snap:?}"), "Snapshot { stores: 1 }");
}

#[test]
fn bind_runs_the_closure_with_the_stores_of_the_bind_site() {
    let job = scope(RequestId(5), || {
        scope_local(User("local"), || {
            Snapshot::bind(|| (get::<RequestId>(), get::<User>()))
        })
    });
    // Called later, inside other stores: sees exactly the captured ones.
    let seen = scope(User("caller"), job);
    assert_eq!(seen, (Some(RequestId(5)), None));
}

/// A store whose `Drop` panics must not stop a snapshot's drop half-way:
/// every other store is still dropped (issue 13), as `Vec` does.
#[test]
fn a_panicking_store_drop_leaks_nothing() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    static DROPS: AtomicUsize = AtomicUsize::new(0);

    /// Only copies (the snapshot's) panic when dropped, not the original.
    struct PanicsOnDrop(bool);
    impl Clone for PanicsOnDrop {
        fn clone(&self) -> Self {
            PanicsOnDrop(true)
        }
    }
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
            if self.0 {
                panic!("store drop failed");
            }
        }
    }
    #[derive(Clone)]
    struct Counted(#[allow(dead_code)] Arc<()>);
    #[derive(Clone)]
    struct Outer(#[allow(dead_code)] Arc<()>);

    let inner = Arc::new(());
    let outer = Arc::new(());
    for big in [false, true] {
        DROPS.store(0, Ordering::SeqCst);
        // Innermost first: Counted, then PanicsOnDrop, then Outer (and a
        // large store to force the heap buffer in the second round).
        let snapshot = scope(Outer(outer.clone()), || {
            scope([0u8; 200], || {
                scope(PanicsOnDrop(false), || {
                    scope(Counted(inner.clone()), || {
                        if big {
                            Snapshot::capture()
                        } else {
                            exit::<[u8; 200], _>(Snapshot::capture)
                        }
                    })
                })
            })
        });
        assert_eq!(snapshot.len(), if big { 4 } else { 3 });
        assert_eq!(Arc::strong_count(&inner), 2);
        assert_eq!(Arc::strong_count(&outer), 2);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(snapshot)));
        assert!(result.is_err(), "the store's drop panicked");
        assert_eq!(
            Arc::strong_count(&inner),
            1,
            "the store inside the panicking one"
        );
        assert_eq!(
            Arc::strong_count(&outer),
            1,
            "the store outside the panicking one"
        );
        assert_eq!(DROPS.load(Ordering::SeqCst), 2, "the original and the copy");
        assert!(get::<Outer>().is_none());
    }
}

/// A store whose `Clone` panics stops a capture or a clone half-way: the
/// stores copied before it are dropped, once each, whether they were inline
/// or already moved to the heap, and nothing stays published.
#[test]
fn a_panicking_store_clone_leaks_nothing() {
    use std::cell::Cell;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::Arc;

    thread_local! {
        static FAIL: Cell<bool> = const { Cell::new(false) };
    }
    /// Its clone panics while `FAIL` is set.
    struct PanicsOnClone;
    impl Clone for PanicsOnClone {
        fn clone(&self) -> Self {
            if FAIL.get() {
                panic!("store clone failed");
            }
            PanicsOnClone
        }
    }
    #[derive(Clone)]
    struct Inner(#[allow(dead_code)] Arc<()>);
    #[derive(Clone)]
    struct Outer(#[allow(dead_code)] Arc<()>);
    /// Too large to stay inline: a capture that reaches it moves what it
    /// copied so far to the heap.
    #[derive(Clone)]
    struct Big(#[allow(dead_code)] Arc<()>, #[allow(dead_code)] [u64; 16]);

    /// Calls `f` with `PanicsOnClone` alone visible (`"one"`), inside
    /// `Outer` and around `Inner` (`"inline"`), and with `Big` between
    /// them too (`"heap"`). The capture walks the innermost first, so
    /// `Inner` (and `Big`) are copied before the clone that panics.
    fn stores(how: &str, arcs: &[Arc<()>; 3], f: impl FnOnce()) {
        let [inner, outer, big] = arcs.clone();
        match how {
            "one" => scope(PanicsOnClone, f),
            "inline" => scope(Outer(outer), || {
                scope(PanicsOnClone, || scope(Inner(inner), f))
            }),
            _ => scope(Outer(outer), || {
                scope(PanicsOnClone, || {
                    scope(Big(big, [0; 16]), || scope(Inner(inner), f))
                })
            }),
        }
    }
    fn failing<R>(f: impl FnOnce() -> R) -> bool {
        FAIL.set(true);
        let result = catch_unwind(AssertUnwindSafe(f));
        FAIL.set(false);
        result.is_err()
    }

    let arcs = [Arc::new(()), Arc::new(()), Arc::new(())];
    let counts = || arcs.each_ref().map(Arc::strong_count);
    for how in ["one", "inline", "heap"] {
        stores(how, &arcs, || {
            let before = counts();
            assert!(failing(Snapshot::capture), "{how}: the capture panicked");
            assert_eq!(counts(), before, "{how}: after the capture");
            assert_eq!(get::<Inner>().is_some(), how != "one");
        });
        stores(how, &arcs, || {
            let before = counts();
            let snapshot = Snapshot::capture();
            let captured = counts();
            let copies = if how == "one" { 0 } else { 1 };
            assert_eq!(captured[0], before[0] + copies, "{how}: Inner captured");
            assert!(failing(|| snapshot.clone()), "{how}: the clone panicked");
            assert_eq!(counts(), captured, "{how}: after the clone");
            let seen = snapshot.run(|| (get::<Inner>().is_some(), get::<Big>().is_some()));
            assert_eq!(seen, (how != "one", how == "heap"));
            drop(snapshot);
            assert_eq!(counts(), before, "{how}: after the snapshot");
        });
        assert_eq!(counts(), [1, 1, 1], "{how}: after the scopes");
        assert!(get::<Inner>().is_none() && get::<PanicsOnClone>().is_none());
    }
}
