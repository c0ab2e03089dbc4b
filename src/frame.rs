//! Frames: the crate's one module of `unsafe` code outside the slot backends
//! (with its submodule [`carry`], the snapshots' storage).
//!
//! A *frame* is a [`Header`] followed by a value, laid out as [`Node<T>`]. The
//! header is two words: a `link` and a pointer to the per-type static
//! [`Meta`] (the `TypeId` reads match and the frame's [`Kind`]). While a scope
//! is entered, the slot (see [`crate::slot`]) points at its frame. Reads walk
//! from the slot along the links and stop at the first header whose `TypeId`
//! matches:
//!
//! * a store or hiding frame links to the frame that was innermost when it
//!   was entered;
//! * a *jump* frame (`isolate`, `with_snapshot`) is never published itself:
//!   entering it publishes where reads continue instead, null (nothing
//!   further is visible) or the first node of its snapshot, and so hides
//!   everything below it. Its header only names its kind; its `TypeId` is
//!   private, so a read could never stop at it anyway.
//!
//! So a read is one slot load, then per frame one load of the meta pointer,
//! the `TypeId` compare and one load of the link, whatever the frame's kind.
//!
//! # The invariants every `unsafe` block here relies on
//!
//! **(LIFO)** A pointer is written into the slot only for the duration of a
//! closure call, by [`Node::enter_at`] (and the jump and drop paths it
//! leads to: `enter_jump`, [`Node::enter_to_drop_at`]),
//! [`Captured::run_from`](carry::Captured::run_from) (`Snapshot::run`, an
//! adapter's task) and [`OneWord::run`](carry::one_word::OneWord::run); a
//! drop guard writes the previous value back before that call returns or
//! unwinds. (The teardown paths below leave null.) Frames are therefore
//! published in strictly nested order on the thread (or, for the no_std
//! backends, the context) that owns the slot, and every frame reachable from
//! the slot belongs to a call that is still on that stack. The memory it
//! points to cannot be moved, dropped or mutably borrowed until that call
//! returns, because the call itself holds the `&mut` (or `&`) borrow of it.
//! No API hands out a guard that could be leaked with `mem::forget`.
//!
//! The one way around (LIFO) is a thread that never unwinds its stack: at
//! `std::process::exit`, the C runtime runs the calling thread's TLS
//! destructors while its scopes are still entered. A frame owned by a
//! thread-local can then be destroyed while still reachable, with the frames
//! its future published above it. The stack frames of those calls never
//! resume (the thread is exiting), so nothing restores them, and every owner
//! of something published checks, when it is dropped, whether it is dropped
//! inside its own call:
//!
//! * a store or hiding frame, whether it is reachable from the slot; if so,
//!   it unpublishes itself and everything above it
//!   ([`Node::enter_to_drop_at`]);
//! * a jump frame, which is never on the chain, whether it is marked as
//!   entered (its otherwise unused link, set for the call by `jump_to`) or
//!   its snapshot's first node is reachable; if so, it leaves nothing
//!   published ([`run_torn_down`]), and a frame it is dropped inside
//!   (which then finds the slot changed, `DropRestore`) does the same;
//! * a snapshot, whether its first node is reachable ([`carry::Captured`]'s
//!   `Drop`), and an adapter task's full snapshot, the same when it drops
//!   the task ([`carry::Captured::run_from_to_drop`]): it then leaves
//!   nothing published;
//! * an adapter task's one-word carrier, whether its value is lent
//!   ([`carry::one_word`]'s `LENT`): it then drops nothing it lent and
//!   leaves nothing published.
//!
//! What stays out of reach: frames whose owner is never dropped. Rust drops
//! an `async` block by the state it was in when it last suspended, so the
//! futures it created in the poll that never returned are freed without
//! their destructors running. When none of the owners above is dropped
//! around them (a thread-local that owns a bare `async` block; a store
//! frame whose chain a jump frame created in that poll cuts), nothing runs
//! that could unpublish them, and the slot keeps pointing into freed
//! memory for the rest of the teardown.
//!
//! **(TYPE)** A header whose meta is of kind [`Kind::Store`] with
//! `type_id == TypeId::of::<T>()` always heads a `Node<T>`-shaped frame: a
//! `#[repr(C)] Node<T>`, or the same two fields at the start of a
//! `#[repr(C)] Framed<F, T>` (with the future after them), or a one-word
//! node on the stack ([`carry::one_word`]: a header, then a word holding the
//! bytes of a `T` small enough to sit there, where `Node<T>` has its value).
//! Only the constructors in this module and in [`carry`] build headers, and
//! they pair the two through [`MetaOf<T>`] (a one-word node copies the meta
//! of the node its value was cloned from). A frame is never borrowed as a whole
//! `&Node<T>` (that could overlap the future next to it, borrowed mutably
//! while it is polled): its header and value are reached through raw
//! pointers ([`Node::enter_at`], [`Node::value_at`]).
//!
//! **(LINK)** A frame's `link` is null or points to a frame that stays alive
//! at least as long as the frame is reachable: the frame below it on the same
//! stack (LIFO), or a node of a snapshot that is borrowed while it is
//! published (`Node<Snapshot>` owns its snapshot; [`carry::Captured`]
//! (re)writes the links of its nodes before publishing them). A snapshot
//! that is pinned (a `with_snapshot` frame, an adapter's task: both `!Unpin`,
//! since a snapshot is) writes the links of its inline nodes once, at its
//! first entry, and keeps them: it never moves again, and a pinned `!Unpin`
//! value is never reborrowed as unique, so the pointers stay usable (the
//! rule that lets an `async` block keep references into itself). A clone's
//! links are written anew. Only the snapshot of a jump frame carries the
//! jump mark ([`carry::Captured::mark_jump`]): `Node::snapshot` sets it,
//! `Framed::into_parts` (the one way out of such a frame) clears it, and a
//! clone never has it; so a marked snapshot is pinned, and the poll of a
//! frame holding a `Snapshot` trusts the mark instead of the frame's meta.

use core::any::TypeId;
use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::pin::Pin;
use core::ptr::NonNull;

use crate::slot::imp;

#[cfg(feature = "alloc")]
pub(crate) mod carry;

/// The address of the innermost entered frame, or null: what a slot holds.
///
/// This is an opaque token. The crate writes it into the slot when a scope is
/// entered and reads it back to find stores; a [custom slot]
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
///
#[cfg_attr(feature = "custom-slot", doc = "[custom slot]: crate::Slot")]
#[cfg_attr(
    not(feature = "custom-slot"),
    doc = "[custom slot]: https://docs.rs/async-local-storage/latest/async_local_storage/slot/trait.Slot.html"
)]
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
        // SAFETY: (LIFO, LINK) a non-null `FramePtr` read from the slot, or
        // from the link of a frame reachable from it, points to a live header
        // for as long as the caller's read runs on this thread.
        self.0.map(|ptr| (ptr, unsafe { ptr.as_ref() }))
    }

    fn of<T>(node: NonNull<Node<T>>) -> FramePtr {
        FramePtr(Some(node.cast()))
    }

    /// Whether `target` is this frame or reachable from it along the links.
    fn reaches(self, target: NonNull<Header>) -> bool {
        let mut next = self;
        while let Some((ptr, header)) = next.get() {
            if ptr == target {
                return true;
            }
            next = header.link;
        }
        false
    }
}

impl fmt::Debug for FramePtr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FramePtr({:p})", self.into_raw())
    }
}

/// The first field of every frame: two words.
#[repr(C)]
pub(crate) struct Header {
    /// Where reads continue: see the module docs and (LINK).
    link: FramePtr,
    meta: &'static Meta,
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header").finish_non_exhaustive()
    }
}

impl Header {
    const fn new(meta: &'static Meta) -> Header {
        Header {
            link: FramePtr::NULL,
            meta,
        }
    }
}

/// What the frames of one type and kind have in common; one `static` each.
pub(crate) struct Meta {
    /// Reads of this type stop at the frame.
    type_id: TypeId,
    kind: Kind,
    /// `core::any::type_name` of that type, for diagnostics.
    name: fn() -> &'static str,
}

#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// A value of the type named by `type_id` follows the header.
    Store {
        /// How to copy it into a snapshot; `None` for local stores.
        #[cfg(feature = "alloc")]
        carry: Option<carry::Carry>,
    },
    /// `without_store`: reads of `type_id` stop here and find nothing.
    Hidden,
    /// `isolate`, `.isolated()`: a jump frame that publishes null.
    Isolate,
    /// `with_snapshot`: a jump frame that publishes the first node of the
    /// `Snapshot` that follows the header, and (with `tracing`) enters the
    /// snapshot's span.
    #[cfg(feature = "alloc")]
    Snapshot,
}

/// What a jump frame does on entry; see [`Node::jump_kind`].
#[derive(Clone, Copy)]
enum Jump {
    Isolate,
    #[cfg(feature = "alloc")]
    Snapshot,
}

/// The per-type statics.
pub(crate) struct MetaOf<T: ?Sized>(PhantomData<fn() -> T>);

impl<T: 'static> MetaOf<T> {
    const LOCAL: Meta = Meta {
        type_id: TypeId::of::<T>(),
        kind: Kind::Store {
            #[cfg(feature = "alloc")]
            carry: None,
        },
        name: core::any::type_name::<T>,
    };
}

impl<T: Clone + Send + 'static> MetaOf<T> {
    pub(crate) const STORE: Meta = Meta {
        type_id: TypeId::of::<T>(),
        kind: Kind::Store {
            #[cfg(feature = "alloc")]
            carry: Some(carry::Carry::of::<T>()),
        },
        name: core::any::type_name::<T>,
    };
}

impl<T: ?Sized + 'static> MetaOf<T> {
    const HIDDEN: Meta = Meta {
        type_id: TypeId::of::<T>(),
        kind: Kind::Hidden,
        name: core::any::type_name::<T>,
    };
}

/// No store has this type: reads never stop at a jump frame.
struct JumpMarker;

/// Isolating frames: reads stop at them and find nothing further out.
static ISOLATE: Meta = Meta {
    type_id: TypeId::of::<JumpMarker>(),
    kind: Kind::Isolate,
    name: core::any::type_name::<Isolated>,
};

/// Snapshot frames: reads continue in the snapshot's own nodes.
#[cfg(feature = "alloc")]
static SNAPSHOT: Meta = Meta {
    type_id: TypeId::of::<JumpMarker>(),
    kind: Kind::Snapshot,
    name: core::any::type_name::<crate::Snapshot>,
};

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
/// `Scoped<F, Hidden<T>>` is as large as `F` plus the frame header.
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

impl<T: 'static> Node<T> {
    /// A store that snapshots carry.
    pub(crate) fn store(value: T) -> Self
    where
        T: Clone + Send,
    {
        Node {
            header: Header::new(&MetaOf::<T>::STORE),
            value,
        }
    }

    /// A store that stays with the future that owns it.
    pub(crate) fn local(value: T) -> Self {
        Node {
            header: Header::new(&MetaOf::<T>::LOCAL),
            value,
        }
    }
}

#[cfg(feature = "alloc")]
impl Node<crate::Snapshot> {
    /// A frame in which exactly the snapshot's stores are visible. Private
    /// to this module, for [`Framed::snapshot`] alone: a `Framed` is pinned
    /// before it is entered (see [`Node::enter_at`]), and this frame is
    /// never entered with [`Node::enter`], which has no such guarantee.
    fn snapshot(mut snapshot: crate::Snapshot) -> Self {
        const { assert!(may_jump::<crate::Snapshot>()) };
        // Unmarked again only by `Framed::into_parts`.
        snapshot.mark_jump(true);
        Node {
            header: Header::new(&SNAPSHOT),
            value: snapshot,
        }
    }
}

impl<T> Node<T> {
    /// The jump data, when the frame at `this` is a jump frame. Only jump
    /// frames are zero-sized or snapshots, so every other `T` skips the
    /// check at compile time.
    ///
    /// # Safety
    /// As for [`enter_at`](Self::enter_at).
    #[inline(always)]
    unsafe fn jump_kind(this: NonNull<Self>) -> Option<Jump> {
        if !may_jump::<T>() {
            return None;
        }
        // SAFETY: the caller's node, alive; only its header is read.
        let kind = unsafe { (*this.as_ptr()).header.meta.kind };
        // One compare: a zero-sized value can only be an isolating frame's,
        // any other only a snapshot frame's.
        if core::mem::size_of::<T>() == 0 {
            return matches!(kind, Kind::Isolate).then_some(Jump::Isolate);
        }
        #[cfg(feature = "alloc")]
        if matches!(kind, Kind::Snapshot) {
            return Some(Jump::Snapshot);
        }
        None
    }

    /// The jump data, when the frame at `this` is a jump frame. Only
    /// `Isolated` and `Snapshot` frames can be: the compare of two constant
    /// `TypeId`s folds away at compile time, so every other `T` skips the
    /// check. A frame of those types is a jump frame only if its meta is the
    /// jump kind's `static`: a `Snapshot` can also be an ordinary store's
    /// value (`scope(snapshot, ..)`), and an `Isolated` a local store's.
    /// (`enter_to_drop`, which cannot require `T: 'static`, uses
    /// [`jump_kind`](Self::jump_kind) instead.)
    ///
    /// # Safety
    /// As for [`enter_at`](Self::enter_at).
    #[inline(always)]
    unsafe fn jump_of(this: NonNull<Self>) -> Option<Jump>
    where
        T: 'static,
    {
        let id = TypeId::of::<T>();
        let (jump, meta): (Jump, &'static Meta) = if id == TypeId::of::<Isolated>() {
            (Jump::Isolate, &ISOLATE)
        } else {
            #[cfg(feature = "alloc")]
            if id == TypeId::of::<crate::Snapshot>() {
                (Jump::Snapshot, &SNAPSHOT)
            } else {
                return None;
            }
            #[cfg(not(feature = "alloc"))]
            return None;
        };
        // SAFETY: the caller's frame, alive; only its header is read.
        let header_meta = unsafe { (*this.as_ptr()).header.meta };
        core::ptr::eq(header_meta, meta).then_some(jump)
    }

    /// Where reads continue inside the frame at `this`, when it is a
    /// `with_snapshot` jump frame whose snapshot publishes its first node
    /// with nothing to do first: one compare of the snapshot's state, which
    /// also tells such a frame from a `Snapshot` kept as an ordinary store
    /// (only a jump frame's snapshot is marked, see `Captured::mark_jump`).
    /// Every other `T` skips it at compile time.
    ///
    /// # Safety
    /// As for [`enter_at`](Self::enter_at).
    #[cfg(feature = "alloc")]
    #[inline(always)]
    unsafe fn snapshot_jump_top(this: NonNull<Self>) -> Option<FramePtr>
    where
        T: 'static,
    {
        if TypeId::of::<T>() != TypeId::of::<crate::Snapshot>() {
            return None;
        }
        // SAFETY: (TYPE) `T` is `Snapshot`, so the caller's frame is
        // `Node<Snapshot>`-shaped, alive and borrowed by the caller; only
        // the value is read. (LINK) a marked snapshot is a jump frame's,
        // so pinned: its one node has a null link, or its several nodes
        // were linked where it stays.
        unsafe { Node::value_at(this.cast::<Node<crate::Snapshot>>()) }.jump_top()
    }

    /// Runs `f` with this frame innermost: a store, hiding or isolating
    /// frame on the stack (`scope`, `exit`, `isolate`).
    #[inline]
    pub(crate) fn enter<R>(&mut self, f: impl FnOnce() -> R) -> R
    where
        T: 'static,
    {
        #[cfg(feature = "alloc")]
        debug_assert!(
            !matches!(self.header.meta.kind, Kind::Snapshot),
            "a snapshot frame is entered pinned, in a `Framed`"
        );
        // SAFETY: a whole node, borrowed mutably for the call. It is not a
        // snapshot jump frame: only `Framed::snapshot` makes those, and
        // `Node::snapshot` is private to this module (checked above too, in
        // debug builds).
        unsafe { Self::enter_at(NonNull::from(self), f) }
    }

    /// Runs `f` with the frame at `this` innermost.
    ///
    /// The frame is never borrowed as a whole `&Node<T>`: only its header
    /// and its value are accessed, through `this`. So it can also be the
    /// start of a larger `#[repr(C)]` struct whose next field is borrowed
    /// mutably meanwhile ([`Framed`], whose future is polled inside).
    ///
    /// # Safety
    /// `this` points to a live frame laid out as a `Node<T>` (a header,
    /// then a `T` at the offset `Node<T>` puts it), with provenance over
    /// those bytes, that the caller borrows mutably for the whole call
    /// (LIFO): nothing else accesses them meanwhile, except reads through
    /// the published pointer. A snapshot jump frame (from
    /// [`Node::snapshot`]) is pinned: it does not move until it is dropped
    /// (LINK).
    #[inline]
    pub(crate) unsafe fn enter_at<R>(this: NonNull<Self>, f: impl FnOnce() -> R) -> R
    where
        T: 'static,
    {
        #[cfg(feature = "alloc")]
        if TypeId::of::<T>() == TypeId::of::<crate::Snapshot>() {
            // SAFETY: guaranteed by the caller.
            return match unsafe { Self::snapshot_jump_top(this) } {
                // The usual poll of a `with_snapshot` future: one compare,
                // and nothing else out of line.
                // Not marked as entered (see `jump_to`): a frame dropped
                // inside this call finds its nodes published instead (see
                // `entered`).
                Some(top) => {
                    let prev = imp::enter(|_| top);
                    let _restore = Restore(prev);
                    f()
                }
                // SAFETY: guaranteed by the caller.
                None => unsafe { Self::enter_frame_out_of_line(this, f) },
            };
        }
        // SAFETY: guaranteed by the caller.
        unsafe { Self::enter_frame(this, f) }
    }

    /// [`enter_at`](Self::enter_at) in every case but the usual
    /// `with_snapshot` poll.
    ///
    /// # Safety
    /// As for [`enter_at`](Self::enter_at).
    #[inline(always)]
    unsafe fn enter_frame<R>(this: NonNull<Self>, f: impl FnOnce() -> R) -> R
    where
        T: 'static,
    {
        // SAFETY: guaranteed by the caller.
        if let Some(jump) = unsafe { Self::jump_of(this) } {
            // SAFETY: guaranteed by the caller; a frame of that kind.
            return unsafe { Self::enter_jump(this, jump, f) };
        }
        let prev = imp::enter(|prev| {
            // The link is written before the frame is published, so a read
            // (even from an interrupt on the same core) never sees a stale one.
            Self::link(this, prev);
            FramePtr::of(this)
        });
        let _restore = Restore(prev);
        f()
    }

    /// [`enter_frame`](Self::enter_frame), for a frame holding a `Snapshot`
    /// that is not the usual `with_snapshot` poll (a first poll that links
    /// several stores, a span, a `Snapshot` kept as an ordinary store): out
    /// of line, so that the usual poll is straight-line code.
    ///
    /// # Safety
    /// As for [`enter_at`](Self::enter_at).
    #[cfg(feature = "alloc")]
    #[cold]
    #[inline(never)]
    unsafe fn enter_frame_out_of_line<R>(this: NonNull<Self>, f: impl FnOnce() -> R) -> R
    where
        T: 'static,
    {
        // SAFETY: guaranteed by the caller.
        unsafe { Self::enter_frame(this, f) }
    }

    /// [`enter`](Self::enter) for a jump frame, kept apart so that the hot
    /// path of a store frame stays small enough to inline everywhere.
    ///
    /// A jump frame publishes where reads continue (the snapshot's first
    /// node, or null) rather than itself: its own header never needs a
    /// link, and reads inside it skip one frame. Nothing ever links to the
    /// jump frame itself, so its link is free to mark the frame as entered
    /// ([`jump_to`](Self::jump_to)), which its teardown check reads
    /// ([`torn_down_target`](Self::torn_down_target)).
    ///
    /// # Safety
    /// As for [`enter_at`](Self::enter_at), and the frame is of kind `jump`.
    #[inline]
    unsafe fn enter_jump<R>(this: NonNull<Self>, jump: Jump, f: impl FnOnce() -> R) -> R {
        // SAFETY: guaranteed by the caller.
        let Some(target) = (unsafe { Self::fast_target(this, jump) }) else {
            // SAFETY: guaranteed by the caller.
            return unsafe { Self::enter_jump_slow(this, jump, f) };
        };
        // SAFETY: guaranteed by the caller.
        unsafe { Self::jump_to(this, target, f) }
    }

    /// Runs `f` with `target` published for the jump frame at `this`, and
    /// the frame marked as entered meanwhile: its header's link, which
    /// nothing reads as a link (nothing links to or through a jump frame),
    /// points to the frame itself until the call returns or unwinds. A jump
    /// frame dropped while marked is dropped inside its own call: see
    /// [`torn_down_target`](Self::torn_down_target).
    ///
    /// # Safety
    /// As for [`enter_jump`](Self::enter_jump), and `target` is where reads
    /// continue inside it.
    #[inline(always)]
    unsafe fn jump_to<R>(this: NonNull<Self>, target: FramePtr, f: impl FnOnce() -> R) -> R {
        let prev = imp::enter(|_| target);
        Self::link(this, FramePtr::of(this));
        let _restore = JumpRestore {
            frame: this.cast(),
            prev,
        };
        f()
    }

    /// Where reads continue inside the jump frame at `this`, when finding it
    /// costs nothing: isolating frames, and snapshots of at most one inline
    /// store (without a span to enter).
    ///
    /// # Safety
    /// As for [`enter_jump`](Self::enter_jump).
    #[inline(always)]
    // (Without `alloc`, only isolating frames jump, and they need no data.)
    #[cfg_attr(not(feature = "alloc"), allow(unused_variables))]
    unsafe fn fast_target(this: NonNull<Self>, jump: Jump) -> Option<FramePtr> {
        match jump {
            Jump::Isolate => Some(FramePtr::NULL),
            #[cfg(feature = "alloc")]
            Jump::Snapshot => {
                // SAFETY: (TYPE) a `Snapshot` jump frame heads a
                // `Node<Snapshot>`-shaped frame, which the caller borrows
                // mutably. (LINK) a single inline node has a null link.
                unsafe { Node::value_at(this.cast::<Node<crate::Snapshot>>()) }.fast_top()
            }
        }
    }

    /// [`enter_jump`](Self::enter_jump) in every other case: out of line,
    /// so that the usual one keeps no registers for it.
    ///
    /// # Safety
    /// As for [`enter_jump`](Self::enter_jump).
    #[inline(never)]
    unsafe fn enter_jump_slow<R>(this: NonNull<Self>, jump: Jump, f: impl FnOnce() -> R) -> R {
        // SAFETY: guaranteed by the caller.
        let target = unsafe { Self::jump_target(this, jump) };
        // What `jump_to` does, written out: a closure that enters the span
        // inside it made the usual poll's own code longer.
        let prev = imp::enter(|_| target);
        Self::link(this, FramePtr::of(this));
        let _restore = JumpRestore {
            frame: this.cast(),
            prev,
        };
        // SAFETY: guaranteed by the caller.
        #[cfg(feature = "tracing")]
        let _entered = unsafe { Self::span(this, jump) }.map(tracing::Span::enter);
        f()
    }

    /// Where reads continue inside the jump frame at `this`.
    ///
    /// # Safety
    /// As for [`enter_jump`](Self::enter_jump).
    #[inline(always)]
    // (Without `alloc`, only isolating frames jump, and they need no data.)
    #[cfg_attr(not(feature = "alloc"), allow(unused_variables))]
    unsafe fn jump_target(this: NonNull<Self>, jump: Jump) -> FramePtr {
        match jump {
            Jump::Isolate => FramePtr::NULL,
            // SAFETY: (TYPE) a `Snapshot` jump frame heads a
            // `Node<Snapshot>`-shaped frame, which the caller borrows
            // mutably, and which is pinned (LINK): the snapshot writes its
            // nodes' links for where it stays, once, and they live as long
            // as the node.
            #[cfg(feature = "alloc")]
            Jump::Snapshot => unsafe {
                Node::value_at(this.cast::<Node<crate::Snapshot>>()).pinned_top()
            },
        }
    }

    /// The span a snapshot frame carries (with `tracing`), unless it is
    /// none. The node must stay borrowed by the caller while it is used.
    ///
    /// # Safety
    /// As for [`enter_jump`](Self::enter_jump), and the span is used only
    /// while the caller borrows the frame.
    #[cfg(feature = "tracing")]
    #[inline(always)]
    unsafe fn span<'a>(this: NonNull<Self>, jump: Jump) -> Option<&'a tracing::Span> {
        let Jump::Snapshot = jump else {
            return None;
        };
        // SAFETY: (TYPE) a `Snapshot` jump frame heads a
        // `Node<Snapshot>`-shaped frame; guaranteed by the caller.
        let snapshot = unsafe { Node::value_at(this.cast::<Node<crate::Snapshot>>()) };
        snapshot.span()
    }

    /// The value of the frame at `this`, without borrowing the frame as a
    /// whole (see [`enter_at`](Self::enter_at)).
    ///
    /// # Safety
    /// `this` points to a live `Node<T>`-shaped frame with provenance over
    /// its value, which nothing writes to while the reference is used.
    #[inline(always)]
    pub(crate) unsafe fn value_at<'a>(this: NonNull<Self>) -> &'a T {
        // SAFETY: guaranteed by the caller; `addr_of!` projects the field
        // without making a reference to the whole node.
        unsafe { &*core::ptr::addr_of!((*this.as_ptr()).value) }
    }

    /// Like [`enter`](Self::enter), for a frame about to be destroyed: if it
    /// is still reachable from the slot (only possible in the teardown of a
    /// thread that never unwinds, see (LIFO)), it is unpublished first,
    /// together with every frame above it, instead of being linked to itself;
    /// and if a jump frame inside it finds itself dropped inside its own
    /// call, nothing stays published (`DropRestore`). A jump frame dropped
    /// inside its own call leaves nothing published either
    /// ([`torn_down_target`](Self::torn_down_target), [`run_torn_down`]).
    ///
    /// # Safety
    /// As for [`enter_at`](Self::enter_at).
    #[inline]
    pub(crate) unsafe fn enter_to_drop_at<R>(this: NonNull<Self>, f: impl FnOnce() -> R) -> R {
        if const { may_jump::<T>() } {
            // SAFETY: guaranteed by the caller.
            if let Some(jump) = unsafe { Self::jump_kind(this) } {
                // SAFETY: guaranteed by the caller; a frame of that kind.
                if let Some(target) = unsafe { Self::torn_down_target(this, jump) } {
                    // Its destructors see what its polls saw.
                    return run_torn_down(target, f);
                }
                // SAFETY: guaranteed by the caller; a frame of that kind.
                return unsafe { Self::enter_jump(this, jump, f) };
            }
        }
        let mut below = FramePtr::NULL;
        imp::enter(|prev| {
            below = if prev.reaches(this.cast()) {
                // SAFETY: (LIFO) the node is alive (we are dropping it), and
                // its link was written when it was last entered.
                unsafe { this.cast::<Header>().as_ref() }.link
            } else {
                prev
            };
            Self::link(this, below);
            FramePtr::of(this)
        });
        let _restore = DropRestore {
            frame: FramePtr::of(this),
            below,
        };
        f()
    }

    /// The target of the jump frame at `this`, being dropped, if it is
    /// dropped inside its own call: only in the teardown of a thread that
    /// never unwinds (LIFO). Either [`jump_to`](Self::jump_to) marked it, or
    /// its target, a snapshot's first node (which the usual `with_snapshot`
    /// poll publishes without the mark), is reachable from the slot. Nothing
    /// else publishes those nodes while the frame can be dropped: its clones
    /// have their own, and `Scoped::value().run(..)` borrows the frame.
    ///
    /// # Safety
    /// As for [`enter_jump`](Self::enter_jump).
    #[inline]
    unsafe fn torn_down_target(this: NonNull<Self>, jump: Jump) -> Option<FramePtr> {
        // SAFETY: the caller's frame, alive; only its header is read.
        let marked = !unsafe { (*this.as_ptr()).header.link }.is_null();
        match jump {
            Jump::Isolate => marked.then_some(FramePtr::NULL),
            #[cfg(feature = "alloc")]
            Jump::Snapshot => {
                // SAFETY: guaranteed by the caller.
                let target = unsafe { Self::jump_target(this, jump) };
                let published = target.0.is_some_and(|node| imp::get().reaches(node));
                (marked || published).then_some(target)
            }
        }
    }

    /// Writes the link of the store or hiding frame at `this` for entry
    /// above `prev`.
    #[inline(always)]
    fn link(this: NonNull<Self>, prev: FramePtr) {
        // SAFETY: `this` is a frame the caller borrows mutably (see
        // `enter_at`), and nothing else refers to it until it is published.
        unsafe { (*this.as_ptr()).header.link = prev };
    }
}

/// Whether a `Node<T>` can be a jump frame: isolating frames hold a
/// zero-sized value, snapshot frames a `Snapshot`.
const fn may_jump<T>() -> bool {
    let size = core::mem::size_of::<T>();
    #[cfg(feature = "alloc")]
    {
        size == 0 || size == core::mem::size_of::<crate::Snapshot>()
    }
    #[cfg(not(feature = "alloc"))]
    {
        size == 0
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
        const { assert!(may_jump::<Isolated>()) };
        Node {
            header: Header::new(&ISOLATE),
            value: Isolated(()),
        }
    }
}

impl<T: ?Sized + 'static> Node<Hidden<T>> {
    /// A frame that hides `T`.
    pub(crate) fn hidden() -> Self {
        Node {
            header: Header::new(&MetaOf::<T>::HIDDEN),
            value: Hidden(PhantomData),
        }
    }
}

/// Puts the previous frame back, on return and on unwind.
struct Restore(FramePtr);

/// The end of every owner dropped inside its own call, in the teardown of a
/// thread that never unwinds (LIFO): a jump frame, a snapshot dropping its
/// task, a one-word carrier. The frames published above what it published
/// go away with it, and what was visible below it is unknown there: runs
/// `f` (the drop of its future) with `top` published, then leaves nothing
/// published.
#[cold]
#[inline(never)]
fn run_torn_down<R>(top: FramePtr, f: impl FnOnce() -> R) -> R {
    imp::set(top);
    let _restore = Restore(FramePtr::NULL);
    f()
}

/// [`Restore`] for the call of a jump frame: also clears the frame's
/// entered mark (see [`Node::jump_to`]).
struct JumpRestore {
    frame: NonNull<Header>,
    prev: FramePtr,
}

impl Drop for JumpRestore {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: (LIFO) the header of the jump frame whose call this guard
        // ends, alive and borrowed by that call; the link is never read as
        // a link (see `Node::jump_to`).
        unsafe { (*self.frame.as_ptr()).link = FramePtr::NULL };
        imp::set(self.prev);
    }
}

/// [`Restore`] for a frame published while it is dropped
/// ([`Node::enter_to_drop_at`]): puts `below` back if the slot still holds
/// the frame, as it always does when every call inside returned. If it
/// does not, a jump frame inside found itself dropped inside its own call
/// (the teardown of a thread that never unwinds, (LIFO)) and left nothing
/// published; `below` may then be one of the frames going away, so nothing
/// stays published.
struct DropRestore {
    frame: FramePtr,
    below: FramePtr,
}

impl Drop for DropRestore {
    #[inline]
    fn drop(&mut self) {
        imp::set(if imp::get() == self.frame {
            self.below
        } else {
            FramePtr::NULL
        });
    }
}

impl Drop for Restore {
    #[inline]
    fn drop(&mut self) {
        imp::set(self.0);
    }
}

/// Calls `f` with the innermost visible store of type `T`.
#[inline]
pub(crate) fn with<T: 'static, R>(f: impl FnOnce(Option<&T>) -> R) -> R {
    let wanted = TypeId::of::<T>();
    let mut next = imp::get();
    while let Some((ptr, header)) = next.get() {
        if header.meta.type_id == wanted {
            if let Kind::Store { .. } = header.meta.kind {
                // SAFETY: (TYPE) a `Store` header for `T` heads a `Node<T>`,
                // and `ptr` came from the slot or a link with the provenance
                // of the whole node. (LIFO) the node outlives this call, and
                // nothing writes to its value meanwhile: its owner is blocked
                // in `enter` further up this stack.
                return f(Some(unsafe { Node::value_at(ptr.cast::<Node<T>>()) }));
            }
            // Hidden. (A jump frame's `TypeId` is private: never `T`.)
            break;
        }
        next = header.link;
    }
    f(None)
}

/// Calls `each` with the type name of every store visible now, innermost
/// first, each type once (shadowed and hidden ones left out), for
/// diagnostics. Names only: never a value.
pub(crate) fn visible_type_names(mut each: impl FnMut(fn() -> &'static str)) {
    let top = imp::get();
    let mut next = top;
    while let Some((ptr, header)) = next.get() {
        next = header.link;
        if let Kind::Store { .. } = header.meta.kind {
            if !shadowed(top, ptr, header.meta.type_id) {
                each(header.meta.name);
            }
        }
    }
}

/// Whether a frame with `type_id` comes before `until` on the walk from
/// `from`: a store or hiding frame there shadows the one at `until`.
fn shadowed(from: FramePtr, until: NonNull<Header>, type_id: TypeId) -> bool {
    let mut next = from;
    while let Some((ptr, header)) = next.get() {
        if ptr == until {
            return false;
        }
        if header.meta.type_id == type_id {
            return true;
        }
        next = header.link;
    }
    false
}

/// A future or stream together with the frame it runs in: the frame's
/// header and value, then the future, in that order (`#[repr(C)]`), so that
/// the header and value are laid out exactly as a [`Node<T>`] and a future
/// smaller than a word fits in the node's tail padding:
/// `Scoped<Ready<u8>, u8>` is 24 bytes, not 32.
///
/// The frame is entered through a raw pointer to that prefix
/// ([`Node::enter_at`]), never borrowed as a whole `Node<T>`, because the
/// future next to it is borrowed mutably while it runs. The future is in a
/// `ManuallyDrop` so that it can be dropped while the frame is entered.
#[repr(C)]
pub(crate) struct Framed<F, T> {
    header: Header,
    value: T,
    inner: ManuallyDrop<F>,
}

// Only `inner` is pinned (structurally); the frame is never pinned-projected.
// But a frame whose value is `!Unpin` stays where it is once pinned: a
// snapshot (`!Unpin`) links its inline stores once, where it is pinned.
impl<F: Unpin, T: Unpin> Unpin for Framed<F, T> {}

impl<F, T> Drop for Framed<F, T> {
    fn drop(&mut self) {
        let this: *mut Self = self;
        // SAFETY: `this` is the whole `Framed`, borrowed mutably by this
        // destructor; its prefix is a `Node<T>`-shaped frame (checked in
        // `new`), and `inner` is a different field.
        unsafe {
            Node::enter_to_drop_at(Self::node(this), || {
                // SAFETY: `inner` is dropped exactly once, here, and is never
                // touched again: this is the destructor. It is dropped in
                // place, which keeps the pinning promise.
                ManuallyDrop::drop(&mut *core::ptr::addr_of_mut!((*this).inner))
            });
        }
    }
}

#[cfg(feature = "alloc")]
impl<F> Framed<F, crate::Snapshot> {
    /// `inner` with `snapshot` restored around it: the only way to make a
    /// snapshot jump frame, so that every one is in a `Framed`, pinned
    /// before it is entered (LINK).
    pub(crate) fn snapshot(inner: F, snapshot: crate::Snapshot) -> Self {
        Framed::new(inner, Node::snapshot(snapshot))
    }
}

impl<F, T> Framed<F, T> {
    pub(crate) fn new(inner: F, node: Node<T>) -> Self {
        const {
            assert!(
                core::mem::offset_of!(Framed<F, T>, value) == core::mem::offset_of!(Node<T>, value)
            )
        };
        let Node { header, value } = node;
        Framed {
            header,
            value,
            inner: ManuallyDrop::new(inner),
        }
    }

    /// The frame at the start of the `Framed` at `this`.
    fn node(this: *mut Self) -> NonNull<Node<T>> {
        // SAFETY: a pointer to a struct is not null. The cast keeps the
        // provenance of the whole `Framed`, and the prefix is laid out as a
        // `Node<T>` (`#[repr(C)]`, same first fields, checked in `new`).
        unsafe { NonNull::new_unchecked(this) }.cast()
    }

    /// Calls `f` on the pinned inner value with the frame entered.
    #[inline]
    pub(crate) fn enter<R>(self: Pin<&mut Self>, f: impl FnOnce(Pin<&mut F>) -> R) -> R
    where
        T: 'static,
    {
        // SAFETY: nothing is moved out of the pinned `Framed`: the frame is
        // entered in place, and `inner` is only handed out pinned.
        let this: *mut Self = unsafe { self.get_unchecked_mut() };
        // SAFETY: the prefix of the `Framed` is a `Node<T>`-shaped frame,
        // borrowed mutably (through `self`) for the call; `inner`, the only
        // other borrow, covers other bytes.
        unsafe {
            Node::enter_at(Self::node(this), || {
                // SAFETY: `inner` is structurally pinned: `Framed` is
                // pinned, and `inner` is never moved while it is (only
                // `into_parts`, which takes the unpinned `self`, moves it).
                // The borrow covers `inner` only, not the frame before it.
                // (Made inside the call, from `this`, so that each way into
                // the frame derives it where it needs it.)
                f(Pin::new_unchecked(&mut **core::ptr::addr_of_mut!(
                    (*this).inner
                )))
            })
        }
    }

    pub(crate) fn inner(&self) -> &F {
        &self.inner
    }

    pub(crate) fn inner_mut(&mut self) -> &mut F {
        &mut self.inner
    }

    pub(crate) fn inner_pin_mut(self: Pin<&mut Self>) -> Pin<&mut F> {
        // SAFETY: `inner` is structurally pinned (see `enter`).
        unsafe { self.map_unchecked_mut(|this| &mut *this.inner) }
    }

    pub(crate) fn value(&self) -> &T {
        &self.value
    }

    pub(crate) fn into_parts(self) -> (F, T) {
        let this = ManuallyDrop::new(self);
        #[cfg_attr(not(feature = "alloc"), allow(unused_mut))]
        // SAFETY: `this` is never used or dropped again, so each field is
        // read out exactly once and the destructor (which would drop `inner`
        // a second time) does not run. The header needs no drop.
        let (inner, mut value) = unsafe {
            (
                ManuallyDrop::into_inner(core::ptr::read(&this.inner)),
                core::ptr::read(&this.value),
            )
        };
        #[cfg(feature = "alloc")]
        if may_jump::<T>() && core::ptr::eq(this.header.meta, &SNAPSHOT) {
            // SAFETY: (TYPE) only `Node::snapshot` puts `SNAPSHOT` in a
            // header, that of a `Node<Snapshot>`: `T` is `Snapshot`.
            let snapshot = unsafe { &mut *(&mut value as *mut T).cast::<crate::Snapshot>() };
            // Out of the jump frame: an ordinary snapshot again.
            snapshot.mark_jump(false);
        }
        (inner, value)
    }
}
