//! [`OneWord`]: the stores most adapter tasks carry (none, or one store
//! whose value fits in a word: a request id, an `Arc` handle), in two words.
//!
//! A snapshot node is three words (a link, a meta pointer, the value), and a
//! snapshot adds its counts. A task that carries one word-sized store does
//! not need the link (its one node ends the chain: nothing outside the task
//! is visible inside it) nor the counts (there is one store or none), so
//! [`OneWord`] keeps only the meta pointer and the value: 16 bytes on 64-bit
//! targets. Runtimes round a task's allocation up (tokio to a multiple of
//! 128 bytes), so those 16 bytes saved decide, for a small task, whether
//! spawning through an adapter allocates and copies a larger task.
//!
//! At each poll the value is *lent* to a complete node built on the stack
//! ([`OneWord::run`]): the node's header is written, the value's bytes are
//! copied next to it, the node is published, and when the poll returns (or
//! unwinds) the value's bytes are copied back, so that a change made through
//! interior mutability (a `Cell` store) is kept. The stack copy is never
//! dropped: the `OneWord` owns the value throughout. `run` takes `&mut self`,
//! so nothing else reads or lends the value while it is lent: two lends of
//! one value at once would each copy it back over the other's changes, and a
//! type that frees memory through `&self` (an `UnsafeCell<Box<_>>` swapped
//! in place) could leave one of the copies dangling.

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::mem::{align_of, offset_of, size_of, MaybeUninit};
use core::ops::ControlFlow;
use core::ptr::NonNull;

use super::{each_carried, Carry};
use crate::frame::{imp, run_torn_down, FramePtr, Header, JumpMarker, Kind, Meta};

/// The bytes of a value of at most one word, whatever its type.
type Word = MaybeUninit<u64>;

/// A node whose value fits in a [`Word`]: laid out as a `Node<T>` for every
/// `T` that [`fits`] accepts (TYPE), with its value in the word.
#[repr(C)]
struct WordNode {
    header: Header,
    value: Word,
}

// A `Node<T>` puts its value right after the header when `T` is aligned to
// at most the word's alignment (the header's size is a multiple of it), and
// that is where `WordNode` puts the word.
const _: () = assert!(offset_of!(WordNode, value) == size_of::<Header>());

/// Whether a store of `carry` fits in a [`OneWord`]: its `Node<T>` is no
/// larger than a `WordNode` and aligned to at most as much, so the value is
/// at the word's offset and inside it.
#[inline(always)]
fn fits(carry: &Carry) -> bool {
    carry.size <= size_of::<WordNode>() && carry.align <= align_of::<WordNode>()
}

/// No store, or one carried store whose value fits in a word: what an
/// adapter's task carries when that is all its spawner sees
/// (`crate::carried`).
///
/// It holds no span: a `tracing::Span` is five words, and a task spawned
/// outside any span (or without the `tracing` feature) should not carry
/// them. `crate::carried` adds the span alongside when one is current.
pub(crate) struct OneWord {
    /// The store's meta (a carried store's, so `T: Clone + Send`), or
    /// `None` when there is no store; [`LENT`] while [`run`](Self::run)
    /// runs.
    meta: Option<&'static Meta>,
    /// The store's value when there is one (a `T` of that meta, written by
    /// its `Carry::clone_into`), owned here; lent to a stack node while
    /// [`run`](Self::run) runs.
    value: Word,
    /// `Send` (the value is a `T: Send`) but not `Sync`: the value need not
    /// be `Sync`, so no `&OneWord` may ever read it from two threads.
    /// Nothing reads it through `&self` today; this keeps it so.
    _not_sync: PhantomData<Cell<()>>,
}

/// What a [`OneWord`] holds as its meta while [`run`](OneWord::run) runs:
/// the call owns the value meanwhile (it lent it to a node on its stack),
/// and the frames of the task may be published above that node. Never in a
/// published header. A `OneWord` that sees it in its own drop, or in
/// [`run_to_drop`](OneWord::run_to_drop), is dropped inside its own `run`:
/// only in the teardown of a thread that never unwinds (LIFO).
static LENT: Meta = Meta {
    type_id: core::any::TypeId::of::<JumpMarker>(),
    kind: Kind::Isolate,
    name: core::any::type_name::<OneWord>,
};

impl OneWord {
    /// Whether this is dropped inside its own [`run`](Self::run) (see
    /// [`LENT`]).
    #[inline(always)]
    fn lent(&self) -> bool {
        self.meta.is_some_and(|meta| core::ptr::eq(meta, &LENT))
    }

    /// Copies the stores visible now, or returns `None` when they are more
    /// than one store or a store larger than a word (then a full snapshot
    /// carries them). Walks the frames once, and only while at most one
    /// carried store was found.
    #[inline]
    pub(crate) fn capture() -> Option<OneWord> {
        let top = imp::get();
        let mut found = None;
        match top.get() {
            None => {}
            // The usual case, a task with one store (its context), without
            // the bookkeeping of the walk: one frame, carried or not.
            Some((src, header)) if header.link.is_null() => {
                found = header.meta.carry().map(|carry| (src, carry));
            }
            Some(_) => {
                let walk = each_carried(top, |src, carry| {
                    if found.is_some() {
                        return ControlFlow::Break(());
                    }
                    found = Some((src, carry));
                    ControlFlow::Continue(())
                });
                if walk.is_break() {
                    return None;
                }
            }
        }
        if found.is_some_and(|(_, carry)| !fits(carry)) {
            return None;
        }
        let mut stores = OneWord {
            meta: None,
            value: Word::uninit(),
            _not_sync: PhantomData,
        };
        if let Some((src, carry)) = found {
            let mut node = MaybeUninit::<WordNode>::uninit();
            // SAFETY: (TYPE, LIFO) `src` heads a live carried store with
            // this carry (it was found from the slot, on this thread); the
            // local `node` is aligned for its `Node<T>` and large enough
            // (`fits`).
            unsafe { (carry.clone_into)(src, NonNull::from(&mut node).cast()) };
            let node = node.as_ptr();
            // SAFETY: `clone_into` wrote a `Node<T>` there: the header, and
            // the value inside the word (`fits`); a `Word` may hold any
            // bytes, and copying it keeps their provenance.
            unsafe {
                stores.meta = Some((*node).header.meta);
                stores.value = (*node).value;
            }
        }
        Some(stores)
    }

    /// Runs `f` with exactly these stores visible: the store's value lent
    /// to a node on the stack (see the module docs), or nothing visible when
    /// there is no store.
    ///
    /// `f` is called from one place whether there is a store or not, so
    /// that a task's poll, inlined into it, is inlined once.
    #[inline]
    pub(crate) fn run<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let mut node = MaybeUninit::<WordNode>::uninit();
        let meta = self.meta;
        // A bitwise copy of the value is what is lent: it is never dropped
        // (see `Lend`), and nothing else accesses `self.value` meanwhile
        // (`&mut self`). (The node is reached only through this pointer
        // from now on.)
        let lent = meta.map(|meta| {
            NonNull::from(node.write(WordNode {
                header: Header::new(meta),
                value: self.value,
            }))
        });
        self.meta = Some(&LENT);
        let prev = imp::enter(|_| FramePtr(lent.map(NonNull::cast)));
        // (LIFO) the node stays published exactly while `f` runs: `Lend`
        // unpublishes it on return and on unwind, before `node` goes away.
        let _lend = Lend {
            node: lent,
            home: self,
            meta,
            prev,
        };
        f()
    }

    /// [`run`](Self::run), for dropping the task's future: also when this
    /// is dropped inside its own `run` (see [`LENT`]), in the teardown of a
    /// thread that never unwinds. Then the frames the task published, above
    /// the lent node, go away with it, and what was below is unknown here:
    /// `f` runs with nothing visible, and nothing stays published.
    #[inline]
    pub(crate) fn run_to_drop<R>(&mut self, f: impl FnOnce() -> R) -> R {
        if self.lent() {
            return run_torn_down(FramePtr::NULL, f);
        }
        self.run(f)
    }
}

/// While a [`OneWord`]'s value is lent to a node on the stack (or nothing
/// is visible, without a store): on drop (return or unwind), unpublishes
/// the node and copies the value's bytes back to the `OneWord`, which owns
/// it.
struct Lend<'a> {
    node: Option<NonNull<WordNode>>,
    home: &'a mut OneWord,
    /// The `OneWord`'s meta, given back with the value.
    meta: Option<&'static Meta>,
    prev: FramePtr,
}

impl Drop for Lend<'_> {
    #[inline]
    fn drop(&mut self) {
        // Unpublished first: nothing reads the node after this.
        imp::set(self.prev);
        if let Some(node) = self.node {
            // SAFETY: `node` is the live stack node of `OneWord::run`,
            // which outlives this guard; no reference into it is alive
            // (reads of the value ended with `f`).
            self.home.value = unsafe { (*node.as_ptr()).value };
        }
        self.home.meta = self.meta;
    }
}

impl Drop for OneWord {
    #[inline]
    fn drop(&mut self) {
        if self.lent() {
            // Dropped inside its own `run` (see `LENT`): the value belongs
            // to the node lent on that call's stack, which never returns,
            // and may still be published: leave it (the thread is exiting),
            // and publish nothing.
            imp::set(FramePtr::NULL);
            return;
        }
        let Some(meta) = self.meta else { return };
        let Some(drop) = meta.carry().and_then(|carry| carry.drop) else {
            return;
        };
        // The value (a `T` owned by `self`) is moved out once, here, to be
        // dropped. It is not published: it only is while lent, and a lend
        // borrows `self`.
        let mut node = WordNode {
            header: Header::new(meta),
            value: self.value,
        };
        // SAFETY: (TYPE) `node` is laid out as the `Node<T>` of the meta's
        // type (`fits`, checked at capture), holding the value, which is
        // dropped exactly once, here.
        unsafe { drop(NonNull::from(&mut node).cast()) };
    }
}

impl fmt::Debug for OneWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneWord")
            .field("store", &self.meta.map(|meta| (meta.name)()))
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::OneWord;
    use crate::{get, scope, scope_local, with};
    use std::boxed::Box;
    use std::cell::Cell;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::string::String;
    use std::sync::Arc;

    /// A zero-sized store.
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Marker;

    #[test]
    fn no_store_or_one_word_sized_store_fits_and_anything_more_does_not() {
        assert!(OneWord::capture().is_some());
        assert!(scope(7u64, || OneWord::capture().is_some()));
        assert!(scope(7u8, || OneWord::capture().is_some()));
        assert!(scope(Marker, || OneWord::capture().is_some()));
        assert!(scope((1u8, 2u32), || OneWord::capture().is_some()));
        assert!(scope(Box::new(1u64), || OneWord::capture().is_some()));
        assert!(scope(Arc::new(1u64), || OneWord::capture().is_some()));
        assert!(scope(String::new(), || OneWord::capture().is_none()));
        assert!(scope(1u64, || scope(2u32, || OneWord::capture().is_none())));
        assert!(scope(1u128, || OneWord::capture().is_none()));
        // Shadowed, hidden and local stores are not carried.
        assert!(scope(1u64, || scope(2u64, || OneWord::capture().is_some())));
        let hidden = scope(1u32, || {
            scope(2u64, || crate::exit::<u32, _>(OneWord::capture))
        });
        assert!(hidden.is_some());
        assert!(scope(1u64, || scope_local(String::new(), || {
            OneWord::capture().is_some()
        })));
    }

    #[test]
    fn run_shows_exactly_the_captured_store() {
        let stores = scope_local(Marker, || scope(2u64, || scope(3u64, OneWord::capture)));
        let mut stores = stores.unwrap();
        assert_eq!(get::<u64>(), None);
        assert_eq!(stores.run(get::<u64>), Some(3));
        // Stores visible where it runs are hidden, except those set inside.
        let inside = scope(9u32, || {
            stores.run(|| (get::<u32>(), get::<Marker>(), scope(4u32, get::<u32>)))
        });
        assert_eq!(inside, (None, None, Some(4)));
        assert_eq!(get::<u64>(), None);
        // Captured again inside: a copy of the lent value.
        let mut again = stores.run(OneWord::capture).unwrap();
        drop(stores);
        assert_eq!(again.run(get::<u64>), Some(3));

        let mut empty = OneWord::capture().unwrap();
        assert_eq!(scope(1u64, || empty.run(get::<u64>)), None);
        // One frame that is not carried: nothing to carry.
        let mut local = scope_local(5u64, OneWord::capture).unwrap();
        assert_eq!(local.run(get::<u64>), None);
        let mut hidden = crate::exit::<u64, _>(OneWord::capture).unwrap();
        assert_eq!(hidden.run(get::<u64>), None);
        let mut zst = scope(Marker, OneWord::capture).unwrap();
        assert_eq!(
            scope(1u64, || zst.run(|| (get::<Marker>(), get::<u64>()))),
            (Some(Marker), None)
        );
        let mut padded = scope((1u8, 2u32), OneWord::capture).unwrap();
        assert_eq!(padded.run(get::<(u8, u32)>), Some((1, 2)));
    }

    #[test]
    fn a_change_made_through_a_shared_reference_outlasts_the_run() {
        let mut stores = scope(Cell::new(1u32), OneWord::capture).unwrap();
        for expected in 1..4 {
            stores.run(|| {
                with(|cell: Option<&Cell<u32>>| {
                    let cell = cell.unwrap();
                    assert_eq!(cell.get(), expected);
                    cell.set(expected + 1);
                })
            });
        }
        assert_eq!(stores.run(get::<Cell<u32>>), Some(Cell::new(4)));
    }

    #[test]
    fn a_panic_while_lent_unpublishes_the_node_and_keeps_the_value() {
        let mut stores = scope(Cell::new(1u32), OneWord::capture).unwrap();
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            stores.run(|| {
                with(|cell: Option<&Cell<u32>>| cell.unwrap().set(5));
                panic!("inside the run");
            })
        }));
        assert!(panicked.is_err());
        assert_eq!(get::<Cell<u32>>(), None);
        assert_eq!(stores.run(get::<Cell<u32>>), Some(Cell::new(5)));
    }

    #[test]
    fn a_panicking_clone_captures_nothing() {
        /// Word-sized, and needs dropping: a half-made capture would drop it.
        struct Fails(#[allow(dead_code)] Arc<()>);
        impl Clone for Fails {
            fn clone(&self) -> Self {
                panic!("store clone failed");
            }
        }
        let shared = Arc::new(());
        let result = scope(Fails(Arc::clone(&shared)), || {
            catch_unwind(OneWord::capture).map(|_| ())
        });
        assert!(result.is_err());
        assert_eq!(Arc::strong_count(&shared), 1);
        assert!(!crate::is_set::<Fails>());
    }

    #[test]
    fn a_panic_without_a_store_restores_what_was_visible() {
        let mut empty = OneWord::capture().unwrap();
        let seen = scope(1u64, || {
            let panicked = catch_unwind(AssertUnwindSafe(|| {
                empty.run(|| {
                    assert_eq!(get::<u64>(), None);
                    panic!("inside the run");
                })
            }));
            assert!(panicked.is_err());
            get::<u64>()
        });
        assert_eq!(seen, Some(1));
        assert_eq!(get::<u64>(), None);
    }

    #[test]
    fn the_value_is_dropped_once_when_the_stores_are() {
        let shared = Arc::new(());
        let mut stores = scope(Arc::clone(&shared), OneWord::capture).unwrap();
        assert_eq!(Arc::strong_count(&shared), 2);
        for _ in 0..2 {
            stores
                .run(|| with(|arc: Option<&Arc<()>>| assert!(Arc::ptr_eq(arc.unwrap(), &shared))));
        }
        assert_eq!(Arc::strong_count(&shared), 2);
        drop(stores);
        assert_eq!(Arc::strong_count(&shared), 1);

        let mut boxed = scope(Box::new(7u64), OneWord::capture).unwrap();
        assert_eq!(boxed.run(|| with(|b: Option<&Box<u64>>| **b.unwrap())), 7);
        drop(boxed);

        // A task's future: the lend, then the drop, on another poll.
        let future = async { get::<Arc<()>>().map(|arc| Arc::strong_count(&arc)) };
        let stores = scope(Arc::clone(&shared), OneWord::capture).unwrap();
        let task = crate::carried::Carried::new(future, stores);
        assert_eq!(futures::executor::block_on(task), Some(3));
        assert_eq!(Arc::strong_count(&shared), 1);
    }
}
