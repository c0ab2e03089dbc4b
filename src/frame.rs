//! Frames: the crate's one module of `unsafe` code outside the slot backends.
//!
//! A *frame* is a [`Header`] followed by a value, laid out as [`Node<T>`]. While
//! a scope is entered, the slot (see [`crate::slot`]) points at its frame, and
//! each frame points at the one that was current before it (`parent`). Reads
//! walk that list from the innermost frame outwards and stop at the first
//! header whose `TypeId` matches.
//!
//! # The invariant every `unsafe` block here relies on
//!
//! **(LIFO)** A pointer is written into the slot only by [`enter`] (and
//! [`Snapshot`]'s `run`) and only for the duration of a closure call; a drop
//! guard writes the previous value back before that call returns or unwinds.
//! Frames are therefore published in strictly nested order on the thread (or,
//! for the no_std backends, the core) that owns the slot, and every frame
//! reachable from the slot belongs to a call that is still on that stack. The
//! memory it points to cannot be moved, dropped or mutably borrowed until that
//! call returns, because the call itself holds the `&mut` (or `&`) borrow of
//! it. No API hands out a guard that could be leaked with `mem::forget`.
//!
//! **(TYPE)** A header of kind [`Kind::Store`] whose `type_id` is
//! `TypeId::of::<T>()` is always the first field of a `#[repr(C)] Node<T>`. Only
//! the constructors in this module build headers, and they pair the two.
//!
//! [`Snapshot`]: crate::Snapshot

use core::any::TypeId;
use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::pin::Pin;
use core::ptr::NonNull;

use pin_project_lite::pin_project;

use crate::slot::imp;

/// The address of the innermost entered frame, or null: what a slot holds.
///
/// This is an opaque token. The crate writes it into the slot when a scope is
/// entered and reads it back to find stores; a [custom slot](crate::Slot)
/// only has to keep it and return it unchanged. It is `Copy`, `Send` and
/// `Sync`, so it can live in a `static` guarded by whatever the platform has
/// (a critical-section mutex, an atomic through [`into_raw`](Self::into_raw),
/// an RTOS task-local word).
///
/// # Examples
///
/// ```
/// use async_local_storage::FramePtr;
///
/// let empty = FramePtr::NULL;
/// assert!(empty.is_null());
/// assert!(empty.into_raw().is_null());
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FramePtr(Option<NonNull<Header>>);

// SAFETY: a `FramePtr` is an address and nothing more. Moving or sharing it
// never dereferences it; the only dereferences are in this module, on the
// thread (core) whose slot published it, under the (LIFO) invariant.
unsafe impl Send for FramePtr {}
// SAFETY: as for `Send`: `&FramePtr` gives nothing but the address.
unsafe impl Sync for FramePtr {}

impl FramePtr {
    /// No frame: the state of a slot outside every scope.
    pub const NULL: FramePtr = FramePtr(None);

    /// Returns `true` when no scope is entered.
    #[must_use]
    #[inline]
    pub fn is_null(self) -> bool {
        self.0.is_none()
    }

    /// Returns the address as a raw pointer, for slots that keep it in an
    /// `AtomicPtr` or a machine word.
    #[must_use]
    pub fn into_raw(self) -> *mut () {
        match self.0 {
            Some(ptr) => ptr.as_ptr().cast(),
            None => core::ptr::null_mut(),
        }
    }

    /// Rebuilds a `FramePtr` from [`into_raw`](Self::into_raw).
    ///
    /// # Safety
    ///
    /// `raw` must be null or a value returned by `into_raw` on a `FramePtr`
    /// that this crate handed to the same slot. The crate dereferences it
    /// when it reads stores.
    #[must_use]
    pub unsafe fn from_raw(raw: *mut ()) -> FramePtr {
        FramePtr(NonNull::new(raw.cast()))
    }

    /// The frame's address and header.
    #[inline]
    fn get<'a>(self) -> Option<(NonNull<Header>, &'a Header)> {
        // SAFETY: (LIFO) a non-null `FramePtr` read from the slot, or from the
        // parent/jump link of a frame reachable from it, points to a live
        // header for as long as the caller's read runs on this thread.
        self.0.map(|ptr| (ptr, unsafe { ptr.as_ref() }))
    }
}

impl fmt::Debug for FramePtr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FramePtr({:p})", self.into_raw())
    }
}

/// The first field of every frame.
#[repr(C)]
pub(crate) struct Header {
    type_id: TypeId,
    parent: FramePtr,
    kind: Kind,
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header").finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
enum Kind {
    /// A value of the type named by `type_id` follows the header.
    Store {
        /// How to copy it into a snapshot; `None` for local stores.
        #[cfg(feature = "alloc")]
        carry: Option<&'static Carry>,
    },
    /// `without_store`: reads of `type_id` stop here and find nothing.
    Hidden,
    /// `with_snapshot` and `isolate`: reads continue at the given frame (a
    /// snapshot's chain, or nothing), never below this one.
    Jump(FramePtr),
}

/// A frame: header, then value.
#[repr(C)]
pub(crate) struct Node<T> {
    header: Header,
    value: T,
}

/// Marks a frame created by [`without_store`](crate::WithStore::without_store)
/// or [`exit`](crate::exit): reads of `T` inside it find nothing.
///
/// It holds no value; it only names the type that is hidden, so
/// `Scoped<F, Hidden<T>>` is as large as `F`.
///
/// # Examples
///
/// ```
/// use async_local_storage::{Hidden, Scoped, WithStore};
///
/// let fut: Scoped<_, Hidden<u32>> = async {}.without_store::<u32>();
/// # drop(fut);
/// ```
pub struct Hidden<T: ?Sized + 'static>(PhantomData<fn() -> T>);

impl<T: ?Sized + 'static> fmt::Debug for Hidden<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hidden<{}>", core::any::type_name::<T>())
    }
}

impl Header {
    /// A header for frames that match reads of `K`.
    fn new<K: ?Sized + 'static>(kind: Kind) -> Header {
        Header {
            type_id: TypeId::of::<K>(),
            parent: FramePtr::NULL,
            kind,
        }
    }
}

impl<T: 'static> Node<T> {
    /// A store that snapshots carry.
    pub(crate) fn store(value: T) -> Self
    where
        T: Clone + Send,
    {
        Node {
            header: Header::new::<T>(Kind::Store {
                #[cfg(feature = "alloc")]
                carry: Some(Carry::of::<T>()),
            }),
            value,
        }
    }

    /// A store that stays with the future that owns it.
    pub(crate) fn local(value: T) -> Self {
        Node {
            header: Header::new::<T>(Kind::Store {
                #[cfg(feature = "alloc")]
                carry: None,
            }),
            value,
        }
    }

    /// A frame that makes reads continue in the chain starting at `top`, and
    /// never further out. `top` must be null or belong to a `Chain` owned by
    /// `value`, so that it lives exactly as long as the frame.
    pub(crate) fn jump(value: T, top: FramePtr) -> Self {
        /// No store has this type: reads never match a jump frame.
        struct JumpMarker;
        Node {
            header: Header::new::<JumpMarker>(Kind::Jump(top)),
            value,
        }
    }
}

impl<T> Node<T> {
    pub(crate) fn value(&self) -> &T {
        &self.value
    }

    pub(crate) fn into_value(self) -> T {
        self.value
    }

    /// Runs `f` with this frame innermost.
    pub(crate) fn enter<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let prev = imp::enter(|prev| {
            // The link is written before the frame is published, so a read
            // (even from an interrupt on the same core) never sees a stale one.
            self.header.parent = prev;
            FramePtr(Some(NonNull::from(&mut *self).cast::<Header>()))
        });
        let _restore = Restore(prev);
        f()
    }
}

/// Marks a frame created by [`isolated`](crate::WithStore::isolated) or
/// [`isolate`](crate::isolate): code inside it sees no store from outside.
///
/// # Examples
///
/// ```
/// use async_local_storage::{Isolated, Scoped, WithStore};
///
/// let fut: Scoped<_, Isolated> = async {}.isolated();
/// # drop(fut);
/// ```
#[derive(Debug)]
pub struct Isolated(());

impl Node<Isolated> {
    /// A frame below which nothing is visible.
    pub(crate) fn isolated() -> Self {
        Node::jump(Isolated(()), FramePtr::NULL)
    }
}

impl<T: ?Sized + 'static> Node<Hidden<T>> {
    /// A frame that hides `T`.
    pub(crate) fn hidden() -> Self {
        Node {
            header: Header::new::<T>(Kind::Hidden),
            value: Hidden(PhantomData),
        }
    }
}

/// Puts the previous frame back, on return and on unwind.
struct Restore(FramePtr);

impl Drop for Restore {
    #[inline]
    fn drop(&mut self) {
        imp::set(self.0);
    }
}

/// Calls `f` with the innermost visible store of type `T`.
pub(crate) fn with<T: 'static, R>(f: impl FnOnce(Option<&T>) -> R) -> R {
    let wanted = TypeId::of::<T>();
    let mut next = imp::get();
    while let Some((ptr, header)) = next.get() {
        next = match header.kind {
            Kind::Jump(chain) => chain,
            _ if header.type_id != wanted => header.parent,
            Kind::Hidden => break,
            Kind::Store { .. } => {
                // SAFETY: (TYPE) a `Store` header for `T` heads a `Node<T>`,
                // and `ptr` came from the slot or a link with the provenance
                // of the whole node. (LIFO) the node outlives this call, and
                // nothing writes to it meanwhile: its owner is blocked in
                // `enter` further up this stack.
                return f(Some(unsafe { &ptr.cast::<Node<T>>().as_ref().value }));
            }
        };
    }
    f(None)
}

pin_project! {
    /// A future or stream together with the frame it runs in.
    ///
    /// The inner value is in a `ManuallyDrop` so that it can be dropped while
    /// the frame is entered.
    pub(crate) struct Framed<F, T> {
        #[pin]
        inner: ManuallyDrop<F>,
        node: Node<T>,
    }

    impl<F, T> PinnedDrop for Framed<F, T> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let inner = this.inner;
            this.node.enter(|| {
                // SAFETY: `inner` is dropped exactly once, here, and is never
                // touched again: this is the destructor. Dropping in place
                // keeps the pinning promise.
                unsafe { ManuallyDrop::drop(inner.get_unchecked_mut()) }
            });
        }
    }
}

impl<F, T> Framed<F, T> {
    pub(crate) fn new(inner: F, node: Node<T>) -> Self {
        Framed {
            inner: ManuallyDrop::new(inner),
            node,
        }
    }

    /// Calls `f` on the pinned inner value with the frame entered.
    pub(crate) fn enter<R>(self: Pin<&mut Self>, f: impl FnOnce(Pin<&mut F>) -> R) -> R {
        let this = self.project();
        let inner = Self::pin_inner(this.inner);
        this.node.enter(|| f(inner))
    }

    pub(crate) fn inner(&self) -> &F {
        &self.inner
    }

    pub(crate) fn inner_mut(&mut self) -> &mut F {
        &mut self.inner
    }

    pub(crate) fn inner_pin_mut(self: Pin<&mut Self>) -> Pin<&mut F> {
        Self::pin_inner(self.project().inner)
    }

    pub(crate) fn value(&self) -> &T {
        self.node.value()
    }

    pub(crate) fn into_parts(self) -> (F, T) {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so each field is
        // read out exactly once and the destructor (which would drop `inner`
        // a second time) does not run.
        unsafe {
            (
                ManuallyDrop::into_inner(core::ptr::read(&this.inner)),
                core::ptr::read(&this.node).into_value(),
            )
        }
    }

    fn pin_inner(inner: Pin<&mut ManuallyDrop<F>>) -> Pin<&mut F> {
        // SAFETY: `ManuallyDrop<F>` is a transparent wrapper; `F` is never
        // moved out of it while pinned (only `into_parts`, which takes the
        // unpinned `self`, moves it), so the projection is structural.
        unsafe { inner.map_unchecked_mut(|inner| &mut **inner) }
    }
}

#[cfg(feature = "alloc")]
pub(crate) use carry::{capture, Carry, Chain};

#[cfg(feature = "alloc")]
mod carry {
    //! Owned copies of frames, for snapshots.

    extern crate alloc;

    use alloc::boxed::Box;
    use alloc::vec::Vec;
    use core::any::TypeId;
    use core::cell::Cell;
    use core::marker::PhantomData;
    use core::ptr::NonNull;

    use super::{imp, FramePtr, Header, Kind, Node, Restore};

    /// How to copy a `Node<T>` to the heap and free it again.
    pub(crate) struct Carry {
        /// Boxes a clone of the node behind `header`.
        clone: unsafe fn(NonNull<Header>) -> NonNull<Header>,
        /// Frees a node made by `clone`.
        free: unsafe fn(NonNull<Header>),
    }

    struct CarryOf<T>(PhantomData<T>);

    impl<T: Clone + Send + 'static> CarryOf<T> {
        const CARRY: Carry = Carry {
            clone: clone_node::<T>,
            free: free_node::<T>,
        };
    }

    impl Carry {
        pub(crate) fn of<T: Clone + Send + 'static>() -> &'static Carry {
            &CarryOf::<T>::CARRY
        }
    }

    /// # Safety
    /// `header` heads a live `Node<T>` whose kind is `Store`, and carries
    /// the provenance of the whole node.
    unsafe fn clone_node<T: Clone + Send + 'static>(header: NonNull<Header>) -> NonNull<Header> {
        // SAFETY: (TYPE) guaranteed by the caller.
        let node = unsafe { header.cast::<Node<T>>().as_ref() };
        let copy = Box::new(Node::store(node.value.clone()));
        NonNull::from(Box::leak(copy)).cast()
    }

    /// # Safety
    /// `header` came from `clone_node::<T>` and is freed once.
    unsafe fn free_node<T>(header: NonNull<Header>) {
        // SAFETY: the pointer is the `Box<Node<T>>` leaked by `clone_node`,
        // with the provenance of the whole allocation.
        drop(unsafe { Box::from_raw(header.cast::<Node<T>>().as_ptr()) });
    }

    /// A list of heap frames, innermost first, ending in null.
    ///
    /// It owns every node in it. Each node holds a `T: Send` (only such types
    /// get a `Carry`), so the chain may move between threads; it is not
    /// `Sync`, because a `T` need not be.
    pub(crate) struct Chain {
        top: FramePtr,
        _not_sync: PhantomData<Cell<()>>,
    }

    impl Chain {
        const EMPTY: Chain = Chain {
            top: FramePtr::NULL,
            _not_sync: PhantomData,
        };

        pub(crate) fn empty() -> Chain {
            Chain::EMPTY
        }

        pub(crate) fn top(&self) -> FramePtr {
            self.top
        }

        pub(crate) fn len(&self) -> usize {
            let mut len = 0;
            let mut next = self.top;
            while let Some((_, header)) = next.get() {
                len += 1;
                next = header.parent;
            }
            len
        }

        /// Runs `f` with exactly this chain visible.
        pub(crate) fn run<R>(&self, f: impl FnOnce() -> R) -> R {
            let prev = imp::enter(|_| self.top);
            let _restore = Restore(prev);
            f()
        }

        /// Appends a node at the outer end; `tail` tracks that end.
        fn push(&mut self, tail: &mut FramePtr, node: NonNull<Header>) {
            let node = FramePtr(Some(node));
            match tail.0 {
                // SAFETY: `tail` is the last node of this chain, which this
                // chain owns exclusively; nothing else refers to it yet.
                Some(last) => unsafe { (*last.as_ptr()).parent = node },
                None => self.top = node,
            }
            *tail = node;
        }

        fn contains(&self, type_id: TypeId) -> bool {
            let mut next = self.top;
            while let Some((_, header)) = next.get() {
                if header.type_id == type_id {
                    return true;
                }
                next = header.parent;
            }
            false
        }
    }

    /// Copies every store visible now that can be carried.
    pub(crate) fn capture() -> Chain {
        collect(imp::get())
    }

    fn collect(from: FramePtr) -> Chain {
        let mut chain = Chain::empty();
        let mut tail = FramePtr::NULL;
        // Types seen but not carried (hidden, or local stores): they shadow
        // anything further out. Stays empty, and unallocated, in the usual case.
        let mut blocked: Vec<TypeId> = Vec::new();
        let mut next = from;
        while let Some((ptr, header)) = next.get() {
            next = header.parent;
            let carry = match header.kind {
                Kind::Jump(inner) => {
                    next = inner;
                    continue;
                }
                Kind::Hidden => None,
                Kind::Store { carry } => carry,
            };
            if chain.contains(header.type_id) || blocked.contains(&header.type_id) {
                continue;
            }
            match carry {
                // SAFETY: `carry` belongs to this `Store` header (TYPE), and
                // the node is live (LIFO).
                Some(carry) => chain.push(&mut tail, unsafe { (carry.clone)(ptr) }),
                None => blocked.push(header.type_id),
            }
        }
        chain
    }

    impl Clone for Chain {
        fn clone(&self) -> Chain {
            collect(self.top)
        }
    }

    impl Drop for Chain {
        fn drop(&mut self) {
            let mut next = self.top;
            while let Some((ptr, header)) = next.get() {
                next = header.parent;
                if let Kind::Store { carry: Some(carry) } = header.kind {
                    // SAFETY: every node of a chain was made by its `Carry`'s
                    // `clone` and is owned by this chain alone; it is freed
                    // once, after its link was read.
                    unsafe { (carry.free)(ptr) }
                }
            }
        }
    }
}
