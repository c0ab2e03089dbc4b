//! Owned copies of frames, for snapshots: the carried stores laid out as
//! nodes (header, then value) in one buffer, inline when they fit in
//! `W` words (`SNAPSHOT_WORDS` for a `Snapshot`), otherwise in a single
//! heap allocation.
//!
//! The nodes are position-independent except for their links (LINK): a heap
//! buffer never moves, so its links are written once, when it is filled; an
//! inline buffer moves with the snapshot, so its links are written where it
//! is before its nodes are published: at each [`Captured::run`], and once
//! for a pinned snapshot ([`Captured::pinned_top`]), which never moves
//! again (a single node's link is always null). Every node starts at a
//! multiple of the largest node alignment in the buffer (`align`; for an
//! inline buffer, `INLINE_ALIGN`), so the nodes can be walked from the
//! buffer's start with their sizes alone, each rounded up to `align`.

extern crate alloc;

use alloc::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use core::cell::{Cell, UnsafeCell};
use core::mem::{self, align_of, size_of, MaybeUninit};
use core::ops::ControlFlow;
use core::ptr::NonNull;

use super::{imp, run_torn_down, shadowed, FramePtr, Header, Kind, Meta, MetaOf, Node, Restore};

// Only the executor adapters' tasks carry one (`crate::carried`).
#[cfg_attr(
    not(any(feature = "tokio", feature = "async-std", feature = "smol")),
    allow(dead_code)
)]
pub(crate) mod one_word;

/// Words (`u64`s) of stores a `Snapshot` holds without allocating, each
/// store with its two-word header: e.g. a request-id newtype, an `Arc`
/// logger and a `String` tenant (24 + 24 + 40 bytes on 64-bit targets), or
/// four `u64`s.
pub(crate) const SNAPSHOT_WORDS: usize = 12;

/// The inline buffer's alignment; nodes aligned more strictly go to the heap.
const INLINE_ALIGN: usize = 8;

/// How to copy a `Node<T>` into a snapshot and drop it there.
#[derive(Clone, Copy)]
pub(crate) struct Carry {
    /// `size_of::<Node<T>>()`.
    size: usize,
    /// `align_of::<Node<T>>()`.
    align: usize,
    /// Writes a `Node<T>` holding a clone of the source's value at `dst`.
    clone_into: unsafe fn(NonNull<Header>, NonNull<Header>),
    /// Drops the `Node<T>` at the pointer in place; `None` when `T` needs
    /// no drop, so that dropping a snapshot of such stores calls nothing.
    drop: Option<unsafe fn(NonNull<Header>)>,
}

impl Carry {
    pub(crate) const fn of<T: Clone + Send + 'static>() -> Carry {
        Carry {
            size: size_of::<Node<T>>(),
            align: align_of::<Node<T>>(),
            clone_into: clone_node::<T>,
            drop: if mem::needs_drop::<T>() {
                Some(drop_node::<T>)
            } else {
                None
            },
        }
    }
}

/// # Safety
/// `src` heads a live `Node<T>` with the provenance of the whole node, and
/// `dst` is valid for writes of a `Node<T>` and aligned for it.
unsafe fn clone_node<T: Clone + Send + 'static>(src: NonNull<Header>, dst: NonNull<Header>) {
    // SAFETY: (TYPE) guaranteed by the caller.
    let value = unsafe { Node::value_at(src.cast::<Node<T>>()) }.clone();
    let node = dst.cast::<Node<T>>().as_ptr();
    // SAFETY: guaranteed by the caller: `dst` is valid for writes of a
    // `Node<T>` and aligned for it.
    unsafe { core::ptr::addr_of_mut!((*node).value).write(value) };
    // The header is copied in one piece from a promoted constant, not
    // written field by field: a snapshot is moved right after a capture,
    // and a move that loads the two words of a header stored separately
    // waits for them to reach the cache (a store-forwarding stall, which
    // made a one-store capture a third slower on x86).
    let header: &'static Header = &const { Header::new(&MetaOf::<T>::STORE) };
    // SAFETY: as above; the header is the node's first field.
    unsafe { dst.as_ptr().copy_from_nonoverlapping(header, 1) };
}

/// Rewrites the value of a one-word node written at `node` by its carry's
/// `clone_into`, and the eight unused bytes after it, as one 16-byte store,
/// on x86-64: a snapshot is usually moved right after a capture or a clone
/// (out of `capture`, into a closure or a future), and compilers copy it 16
/// bytes at a time. A 16-byte load that spans the value, which its `Clone`
/// wrote alone, cannot take it from the store buffer and waits until it
/// reaches the cache (a store-forwarding stall, about a dozen cycles: a
/// third of a one-store capture). The word is read back alone, which
/// forwards, and the move then reads one whole store. (Elsewhere, and for
/// other nodes, nothing is done; nor with the `tracing` feature, where a
/// `Snapshot` is 144 bytes: moves of it call `memcpy`, whose 32-byte loads
/// span the header's store too, so that the stall stays, and the rewrite
/// made a one-store capture half a nanosecond slower.)
///
/// # Safety
/// `node` is the start of a buffer of `bytes` bytes, aligned to 8, that
/// holds one node written by `carry.clone_into` and nothing after it.
#[inline(always)]
unsafe fn settle_one_word(node: NonNull<u8>, carry: &Carry, bytes: usize) {
    #[cfg(all(target_arch = "x86_64", not(feature = "tracing")))]
    if carry.size == size_of::<Header>() + 8 && bytes >= size_of::<Header>() + 16 {
        use core::arch::x86_64::__m128i;
        /// A word and a zero, to store as one vector. (An uninitialized
        /// upper half would let the compiler store the word alone.)
        #[repr(C)]
        union Pair {
            words: [MaybeUninit<u64>; 2],
            vector: MaybeUninit<__m128i>,
        }
        // SAFETY: the value starts right after the header (`Node` is
        // `#[repr(C)]`, and a node of this size holds at most a word,
        // aligned to at most 8), at offset 16 of a buffer aligned to 8; it
        // is read as a `MaybeUninit`, so padding bytes are fine.
        let value = unsafe { node.as_ptr().add(size_of::<Header>()) };
        // SAFETY: as above: in bounds and aligned.
        let word = unsafe { value.cast::<MaybeUninit<u64>>().read() };
        let pair = Pair {
            words: [word, MaybeUninit::new(0)],
        };
        // SAFETY: both fields are plain bytes, `MaybeUninit`; the 16 bytes
        // from `value` are in the buffer (`bytes` is at least 32): the
        // value's word, written back unchanged, then 8 bytes after the one
        // node, which nothing reads (written unaligned: the buffer is
        // aligned to 8 only).
        unsafe {
            value
                .cast::<MaybeUninit<__m128i>>()
                .write_unaligned(pair.vector)
        };
    }
    #[cfg(not(all(target_arch = "x86_64", not(feature = "tracing"))))]
    let _ = (node, carry, bytes);
}

/// # Safety
/// `node` heads a `Node<T>` written by `clone_node::<T>` and not dropped yet.
unsafe fn drop_node<T>(node: NonNull<Header>) {
    // SAFETY: guaranteed by the caller.
    unsafe { node.cast::<Node<T>>().as_ptr().drop_in_place() }
}

/// The carry of a snapshot node's header.
#[inline(always)]
fn carry_of(header: &Header) -> &'static Carry {
    match header.meta.carry() {
        Some(carry) => carry,
        // Only `Carry::clone_into` writes snapshot nodes, always as stores.
        None => unreachable!("a snapshot node is always a carried store"),
    }
}

impl Meta {
    /// How to copy a store of this meta into a snapshot, and drop it there:
    /// `None` unless it is a carried store.
    #[inline(always)]
    fn carry(&'static self) -> Option<&'static Carry> {
        match &self.kind {
            Kind::Store { carry } => carry.as_ref(),
            _ => None,
        }
    }
}

/// Rounds `n` up to a multiple of `align` (a power of two).
const fn align_up(n: usize, align: usize) -> usize {
    (n + align - 1) & !(align - 1)
}

/// `W` words of nodes, or a heap buffer's address. Aligned to
/// `INLINE_ALIGN` on every target (a `u64` is aligned to 4 on some 32-bit
/// ones, i686 among them).
#[repr(C, align(8))]
struct Inline<const W: usize>(UnsafeCell<[MaybeUninit<u64>; W]>);

const _: () = assert!(align_of::<Inline<1>>() == INLINE_ALIGN);

/// The stores of a snapshot: `len` nodes, innermost first.
///
/// Kept small (104 bytes on 64-bit targets), because it travels inside
/// every task an adapter spawns: the counts are packed into one word, and a
/// heap buffer's address is kept in the inline buffer it replaces. (Small
/// enough that `Scoped<F, Snapshot>` for a small `F` is at most 128 bytes,
/// which compilers copy with a few moves rather than a `memcpy` call.)
///
/// Every snapshot uses `W = SNAPSHOT_WORDS` now, but the parameter stays:
/// generic, these methods are compiled in the crate that captures, where
/// they can be inlined. Made concrete, they were not, and a capture of four
/// stores took 355 instructions instead of 329 (the instruction gate).
///
/// `#[repr(C)]`, the buffer first: a move copies the snapshot 16 bytes at a
/// time from its start, so that the first node's value lines up with one of
/// those copies (see [`settle_one_word`]).
#[repr(C)]
pub(crate) struct Captured<const W: usize = SNAPSHOT_WORDS> {
    /// The nodes; or, when they did not fit (`bits & HEAP`), the address
    /// of the heap buffer that holds them (`size` bytes, aligned to
    /// `1 << (bits & ALIGN_LOG2)`) in its first word.
    inline: Inline<W>,
    /// The counts: see [`State`].
    state: Cell<State>,
}

/// The counts of a [`Captured`], packed in one word that is always written
/// whole:
///
/// * `publish` (bits 0-7, so that testing it is one byte compare): how
///   [`Captured::top`] finds the first node;
/// * `bits` (bits 8-15): every node starts at a multiple of
///   `1 << (bits & ALIGN_LOG2)`, the largest node alignment;
///   `bits & NEEDS_DROP` is set when a node needs dropping, `bits & HEAP`
///   when the nodes are on the heap;
/// * `len` (bits 16-31): nodes written (all of them, except while a
///   capture or clone runs);
/// * `size` (bits 32-63): bytes reserved for the nodes; with
///   [`Publish::Few`], the offsets of the second to the last inline node
///   instead, one byte each (the inline layout needs no size).
///
/// Why one word: a snapshot is moved (into a task, out of `capture`) right
/// after it is filled. A move that loads a word which was stored in parts (a
/// byte, then two, then four) cannot take it from the store buffer and
/// waits until the parts reach the cache (a store-forwarding stall, about a
/// dozen cycles on x86): more than the rest of a one-store capture costs.
#[derive(Clone, Copy)]
struct State(u64);

impl State {
    const BITS_SHIFT: u32 = 8;
    const LEN_SHIFT: u32 = 16;
    const SIZE_SHIFT: u32 = 32;

    #[inline(always)]
    const fn new(size: u32, len: u16, bits: u8, publish: Publish) -> State {
        State(
            publish as u64
                | (bits as u64) << Self::BITS_SHIFT
                | (len as u64) << Self::LEN_SHIFT
                | (size as u64) << Self::SIZE_SHIFT,
        )
    }

    #[inline(always)]
    fn size(self) -> u32 {
        (self.0 >> Self::SIZE_SHIFT) as u32
    }

    #[inline(always)]
    fn len(self) -> u16 {
        (self.0 >> Self::LEN_SHIFT) as u16
    }

    #[inline(always)]
    fn bits(self) -> u8 {
        (self.0 >> Self::BITS_SHIFT) as u8
    }

    /// Whether `publish` is `how`: one compare of the low byte.
    #[inline(always)]
    fn publishes(self, how: Publish) -> bool {
        self.0 as u8 == how as u8
    }

    /// `publish`, decoded (without the [`JUMP`] mark), for the out-of-line
    /// paths (the fast path tests the byte with
    /// [`publishes`](Self::publishes) and
    /// [`publishes_from_start`](Self::publishes_from_start)).
    fn publish(self) -> Publish {
        match self.0 as u8 & !JUMP {
            0 => Publish::Null,
            1 => Publish::Inline,
            2 => Publish::Few,
            6 => Publish::FewSpan,
            8 => Publish::LinkedSpan,
            _ => Publish::Slow,
        }
    }

    /// Whether `publish` is `Inline`, marked or not: one bit test.
    #[inline(always)]
    fn publishes_from_start(self) -> bool {
        self.0 as u8 & FROM_START != 0
    }

    /// Whether `publish` is `Inline` with the [`JUMP`] mark: one compare.
    #[inline(always)]
    fn jumps_from_start(self) -> bool {
        self.0 as u8 == Publish::Inline as u8 | JUMP
    }

    #[inline(always)]
    fn with_size(self, size: u32) -> State {
        State(self.0 & u64::from(u32::MAX) | u64::from(size) << Self::SIZE_SHIFT)
    }

    #[inline(always)]
    fn with_bits(self, bits: u8) -> State {
        let mask = u64::from(u8::MAX) << Self::BITS_SHIFT;
        State(self.0 & !mask | u64::from(bits) << Self::BITS_SHIFT)
    }

    /// With `bits` set in `bits`, the others kept.
    #[inline(always)]
    fn or_bits(self, bits: u8) -> State {
        State(self.0 | u64::from(bits) << Self::BITS_SHIFT)
    }

    /// With `publish` set, and the [`JUMP`] mark kept.
    #[inline(always)]
    fn with_publish(self, publish: Publish) -> State {
        State(self.0 & !u64::from(!JUMP) | publish as u64)
    }

    /// With the [`JUMP`] mark set or cleared.
    #[inline(always)]
    fn with_jump(self, jump: bool) -> State {
        let marked = if jump { u64::from(JUMP) } else { 0 };
        State(self.0 & !u64::from(JUMP) | marked)
    }

    /// The counts of an inline copy, whose links are not written yet (the
    /// inverse of [`Publish::linked`]), and which is not a jump frame's.
    #[inline(always)]
    fn unlinked(self) -> State {
        let state = self.with_jump(false);
        let publish = state.0 as u8;
        if publish == Publish::Inline as u8 && state.len() > 1 {
            state.with_publish(Publish::Few)
        } else if publish == Publish::LinkedSpan as u8 {
            state.with_publish(Publish::FewSpan)
        } else {
            state
        }
    }

    /// One more node written.
    #[inline(always)]
    fn counted(self) -> State {
        State(self.0 + (1 << Self::LEN_SHIFT))
    }
}

/// How a snapshot's first node is found, decided when its buffer is
/// filled, so that the poll of a `with_snapshot` future needs one compare
/// in the usual cases.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Publish {
    /// No node: reads find nothing.
    Null = 0,
    /// The start of the inline buffer, with nothing to write first: one
    /// inline node (its link is null), or two to five whose links are
    /// written for where the snapshot is pinned ([`Captured::pinned_top`]:
    /// a pinned snapshot never moves again, so its links stay right until
    /// it is dropped; a clone of several is `Few` again).
    Inline = 1,
    /// Two to five inline nodes, whose offsets `size` holds: the start of
    /// the inline buffer, once the links are rewritten from those offsets.
    Few = 2,
    /// Anything else (several inline nodes to relink, a heap buffer, or
    /// something the owner does on entry): [`Captured::top_slow`].
    Slow = 4,
    /// `Few`, in a snapshot whose owner does something on entry (enters
    /// the span captured with it): out of line, but linked only once when
    /// pinned, as `Few` is.
    FewSpan = 6,
    /// `Few` linked where the snapshot is pinned (as `Inline` is), in a
    /// snapshot whose owner does something on entry.
    LinkedSpan = 8,
}

impl Publish {
    /// What a snapshot of this kind becomes once its links are written
    /// where it is pinned, if it has links to write once.
    fn linked(self) -> Option<Publish> {
        match self {
            Publish::Few => Some(Publish::Inline),
            Publish::FewSpan => Some(Publish::LinkedSpan),
            _ => None,
        }
    }
}

/// The bit of the `Publish` byte that says `publish` is `Inline` (the one
/// odd value): the start of the inline buffer, with nothing to write first.
const FROM_START: u8 = 1;
/// The bit of the `Publish` byte that marks the snapshot of a
/// `with_snapshot` jump frame, set only by [`Captured::mark_jump`] (see
/// there): the poll of such a frame tests the jump and the publish kind
/// with one compare ([`Captured::jump_top`]).
const JUMP: u8 = 0x80;
const _: () = assert!(
    Publish::Inline as u8 & FROM_START != 0
        && Publish::Null as u8 & FROM_START == 0
        && Publish::Few as u8 & FROM_START == 0
        && Publish::Slow as u8 & FROM_START == 0
        && Publish::FewSpan as u8 & FROM_START == 0
        && Publish::LinkedSpan as u8 & FROM_START == 0
        && Publish::LinkedSpan as u8 & JUMP == 0
);

// SAFETY: every node holds a `T: Send` (only such types have a `Carry`), and
// the heap buffer is owned by this value alone. It is not `Sync`: the links
// of inline nodes are rewritten through `&self` (`UnsafeCell`), and `T` need
// not be `Sync`.
unsafe impl<const W: usize> Send for Captured<W> {}

/// The nodes of a buffer, in order.
struct Nodes {
    base: NonNull<u8>,
    align: usize,
    offset: usize,
    left: usize,
}

impl Iterator for Nodes {
    type Item = (NonNull<Header>, &'static Carry);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        // SAFETY: `offset` is the start of one of the buffer's written nodes
        // (the first `left` ones from here are written), inside the buffer.
        let node = unsafe { NonNull::new_unchecked(self.base.as_ptr().add(self.offset)) }.cast();
        // SAFETY: a written node starts with a header.
        let carry = carry_of(unsafe { node.as_ref() });
        self.offset = align_up(self.offset + carry.size, self.align);
        self.left -= 1;
        Some((node, carry))
    }
}

impl<const W: usize> Captured<W> {
    /// Bytes held inline.
    const INLINE_BYTES: usize = W * 8;

    #[inline]
    pub(crate) fn empty() -> Captured<W> {
        const { assert!(W >= 1, "the inline buffer must hold a heap address") };
        Captured {
            inline: Inline(UnsafeCell::new([MaybeUninit::uninit(); W])),
            state: Cell::new(State::new(
                0,
                0,
                INLINE_ALIGN.trailing_zeros() as u8,
                Publish::Null,
            )),
        }
    }

    /// Decides how `top` finds the first node, once the buffer is filled.
    #[inline]
    fn filled(&mut self) {
        let publish = match (self.heap(), self.state.get().len()) {
            (None, 0) => Publish::Null,
            (None, 1) => Publish::Inline,
            // (`capture_into` and `clone_into` left the offsets in `size`.)
            (None, 2..=5) => Publish::Few,
            _ => {
                // A heap buffer never moves: its links are written once.
                if self.heap().is_some() {
                    self.relink();
                }
                Publish::Slow
            }
        };
        self.state.set(self.state.get().with_publish(publish));
    }

    /// Makes [`fast_top`](Self::fast_top) return `None`, for an owner that
    /// has more to do on entry (a snapshot that carries a span).
    #[cfg(feature = "tracing")]
    pub(crate) fn publish_slowly(&mut self) {
        let state = self.state.get();
        let slowly = match state.publish() {
            Publish::Few | Publish::FewSpan => Publish::FewSpan,
            _ => Publish::Slow,
        };
        self.state.set(state.with_publish(slowly));
    }

    /// Makes this empty buffer ready for the nodes of `other`, in the same
    /// layout.
    #[inline]
    fn reserve_like(&mut self, other: &Captured<W>) {
        debug_assert!(self.state.get().len() == 0 && self.heap().is_none());
        // Same alignment, and the same nodes to drop.
        self.state.set(State::new(
            other.state.get().size(),
            0,
            other.state.get().bits() & !HEAP,
            Publish::Null,
        ));
        if other.heap().is_some() {
            self.set_heap(allocate(other.state.get().size() as usize, other.align()));
        }
    }

    pub(crate) fn len(&self) -> usize {
        usize::from(self.state.get().len())
    }

    fn align(&self) -> usize {
        1 << (self.state.get().bits() & ALIGN_LOG2)
    }

    /// The heap buffer, when the nodes did not fit inline.
    #[inline]
    fn heap(&self) -> Option<NonNull<u8>> {
        if self.state.get().bits() & HEAP == 0 {
            return None;
        }
        // SAFETY: with `HEAP` set, the inline buffer's first word holds the
        // heap buffer's address, written by `set_heap` as a pointer (so with
        // its provenance); the buffer is aligned for it.
        Some(unsafe { self.inline.0.get().cast::<NonNull<u8>>().read() })
    }

    /// Keeps `heap` as the buffer of the nodes. The inline buffer holds no
    /// node any more (they were moved, or none was written).
    #[inline]
    fn set_heap(&mut self, heap: NonNull<u8>) {
        debug_assert!(self.state.get().bits() & HEAP == 0);
        // SAFETY: the inline buffer is ours, aligned for a pointer and
        // large enough; nothing in it is used once `HEAP` is set.
        unsafe { self.inline.0.get().cast::<NonNull<u8>>().write(heap) };
        self.state.set(self.state.get().or_bits(HEAP));
    }

    fn set_align(&mut self, align: usize) {
        let bits = (self.state.get().bits() & !ALIGN_LOG2) | align.trailing_zeros() as u8;
        self.state.set(self.state.get().with_bits(bits));
    }

    fn base(&self) -> NonNull<u8> {
        match self.heap() {
            Some(heap) => heap,
            None => NonNull::from(&self.inline.0).cast(),
        }
    }

    fn nodes(&self) -> Nodes {
        Nodes {
            base: self.base(),
            align: self.align(),
            offset: 0,
            left: self.len(),
        }
    }

    /// The first node, with the links written for where the buffer is now;
    /// null when there are none.
    #[inline]
    pub(crate) fn top(&self) -> FramePtr {
        match self.fast_top() {
            Some(top) => top,
            None => self.top_slow(),
        }
    }

    /// [`top`](Self::top) when it costs nothing: no node, one inline node,
    /// or inline nodes already linked where the snapshot is pinned, and an
    /// owner with nothing else to do on entry. (Two to five inline nodes
    /// not linked yet take [`top_slow`](Self::top_slow) or
    /// [`pinned_top_slow`](Self::pinned_top_slow), out of line, to keep
    /// this to one test.)
    #[inline(always)]
    pub(crate) fn fast_top(&self) -> Option<FramePtr> {
        let state = self.state.get();
        // The usual cases first, so that they take one test.
        if state.publishes_from_start() {
            return Some(FramePtr(Some(self.inline_base().cast())));
        }
        state.publishes(Publish::Null).then_some(FramePtr::NULL)
    }

    /// Marks (or unmarks) this snapshot as the value of a `with_snapshot`
    /// jump frame: only `Node::snapshot` sets the mark, and only
    /// `Framed::into_parts` (the one way to move the value out of such a
    /// frame) clears it; a clone is unmarked. So the poll of a frame
    /// holding a `Snapshot` tells a jump frame from an ordinary store with
    /// the same one compare that finds its top
    /// ([`jump_top`](Self::jump_top)).
    pub(crate) fn mark_jump(&mut self, jump: bool) {
        self.state.set(self.state.get().with_jump(jump));
    }

    /// The first node, when this is the marked snapshot of a jump frame
    /// (see [`mark_jump`](Self::mark_jump)) whose top is the start of the
    /// inline buffer with nothing to write first: one inline node, or
    /// several already linked where the frame is pinned. One compare.
    #[inline(always)]
    pub(crate) fn jump_top(&self) -> Option<FramePtr> {
        let state = self.state.get();
        state
            .jumps_from_start()
            .then(|| FramePtr(Some(self.inline_base().cast())))
    }

    /// [`top`](Self::top) for a snapshot that stays where it is until it
    /// is dropped: two to five inline nodes are linked once, at the first
    /// call, and published as they are afterwards (`Inline`).
    ///
    /// # Safety
    /// `self` is pinned: it does not move until it is dropped. (The owner
    /// is `!Unpin` and borrowed through a `Pin`, or being dropped.) Under
    /// Rust's aliasing rules, the links written now stay usable at later
    /// calls only because a pinned `!Unpin` value is never reborrowed as
    /// unique: the same rule lets an `async` block keep references into
    /// itself across polls.
    #[inline]
    pub(crate) unsafe fn pinned_top(&self) -> FramePtr {
        match self.fast_top() {
            Some(top) => top,
            // SAFETY: guaranteed by the caller.
            None => unsafe { self.pinned_top_slow() },
        }
    }

    /// [`pinned_top`](Self::pinned_top) when the links are not written yet.
    ///
    /// # Safety
    /// As for [`pinned_top`](Self::pinned_top).
    #[inline(never)]
    pub(crate) unsafe fn pinned_top_slow(&self) -> FramePtr {
        let state = self.state.get();
        let Some(linked) = state.publish().linked() else {
            return self.top_slow();
        };
        let top = self.link_few();
        // (LINK) the links are right for as long as the snapshot lives:
        // guaranteed by the caller.
        self.state.set(state.with_publish(linked));
        top
    }

    /// Rewrites the links of two to five inline nodes from the offsets
    /// kept in `size`, and returns the first node.
    #[inline(always)]
    fn link_few(&self) -> FramePtr {
        let base = self.inline_base();
        let mut node = base.cast::<Header>();
        for &offset in self
            .state
            .get()
            .size()
            .to_le_bytes()
            .iter()
            .take(self.len() - 1)
        {
            // SAFETY: `offset` is the start of a written inline node (set
            // by `filled` for this buffer's `len` nodes), inside the buffer.
            let next = unsafe { NonNull::new_unchecked(base.as_ptr().add(usize::from(offset))) };
            // SAFETY: (LINK) as in `relink`: a node of this buffer, behind
            // the `UnsafeCell`, with no reference to its header alive.
            unsafe { (*node.as_ptr()).link = FramePtr(Some(next.cast())) };
            node = next.cast();
        }
        FramePtr(Some(base.cast()))
    }

    /// [`top`](Self::top) in every case. Inline nodes are relinked at every
    /// call (when there are two or more) unless they are linked (`Inline`): an
    /// unpinned buffer moves with the snapshot, and even where it does not,
    /// a pointer kept from an earlier call may no longer be used once the
    /// snapshot (or the future holding it) has been mutably borrowed again.
    /// Heap nodes never move, and their pointers derive from the
    /// allocation: they were linked when the buffer was filled.
    #[inline(never)]
    pub(crate) fn top_slow(&self) -> FramePtr {
        match self.state.get().publish() {
            // Pinned, and linked there (see `pinned_top_slow`).
            Publish::LinkedSpan => return FramePtr(Some(self.inline_base().cast())),
            Publish::Few | Publish::FewSpan => return self.link_few(),
            _ => {}
        }
        if let Some(heap) = self.heap() {
            // (A heap buffer holds at least one node once filled.)
            return FramePtr(Some(heap.cast()).filter(|_| self.len() != 0));
        }
        match self.len() {
            0 => FramePtr::NULL,
            1 => FramePtr(Some(self.inline_base().cast())),
            _ => self.relink(),
        }
    }

    fn inline_base(&self) -> NonNull<u8> {
        NonNull::from(&self.inline.0).cast()
    }

    /// Writes each node's link to the next one, for the buffer where it is
    /// now, and returns the first.
    fn relink(&self) -> FramePtr {
        let mut nodes = self.nodes();
        let first = nodes.next().map(|(node, _)| node);
        let mut prev = first;
        for (node, _) in nodes {
            if let Some(prev) = prev {
                // SAFETY: (LINK) `prev` is a node of this buffer, behind an
                // `UnsafeCell` (or in the heap buffer it owns), and no
                // reference to its header is alive: headers are only read
                // through references during a walk, and a walk of these
                // nodes runs inside `run` or a poll, after `top` returns.
                unsafe { (*prev.as_ptr()).link = FramePtr(Some(node)) };
            }
            prev = Some(node);
        }
        // (The last node's link is null, as written.)
        FramePtr(first)
    }

    /// Runs `f` with exactly these stores visible.
    pub(crate) fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        Self::run_from(self.top(), f)
    }

    /// Runs `f` with `top` (this snapshot's first node, from `top` or
    /// `pinned_top`, or null) published.
    #[inline]
    pub(crate) fn run_from<R>(top: FramePtr, f: impl FnOnce() -> R) -> R {
        let prev = imp::enter(|_| top);
        let _restore = Restore(prev);
        f()
    }

    /// [`run_from`](Self::run_from), to drop in `f` the future this
    /// snapshot runs (an adapter's task): also when the task is dropped
    /// inside its own `run`, in the teardown of a thread that never unwinds
    /// (LIFO), which shows as `top` reachable from the slot (only this
    /// snapshot's own call publishes its nodes). The frames the task
    /// published above them go away with it, and what was below is unknown
    /// here: `f` runs with `top` published, and then nothing is published.
    #[inline]
    pub(crate) fn run_from_to_drop<R>(top: FramePtr, f: impl FnOnce() -> R) -> R {
        let Some(node) = top.0 else {
            return Self::run_from(top, f);
        };
        if !imp::get().reaches(node) {
            return Self::run_from(top, f);
        }
        run_torn_down(top, f)
    }

    /// Writes a clone of the store at `src` at `offset`, in the inline
    /// buffer if `inline` (known there, which saves testing for a heap
    /// buffer), else wherever the nodes are.
    ///
    /// # Safety
    /// `src` heads a live carried store with that carry (TYPE, LIFO), and
    /// the node fits in the buffer at `offset`, a multiple of
    /// `self.align()`; if `inline`, the nodes are inline.
    #[inline(always)]
    unsafe fn push(&mut self, inline: bool, offset: usize, src: NonNull<Header>, carry: &Carry) {
        // (The address derives from `self` here: a pointer made before this
        // `&mut self` would no longer be usable under it.)
        let base = if inline {
            self.inline_base()
        } else {
            self.base()
        };
        // SAFETY: guaranteed by the caller: in bounds.
        let dst = unsafe { base.as_ptr().add(offset) };
        // SAFETY: `dst` is in the buffer, aligned (`offset` and the base are
        // multiples of `align` >= `carry.align`), with room for the node.
        unsafe { (carry.clone_into)(src, NonNull::new_unchecked(dst).cast()) };
        // Counted only once written, with whether it needs dropping, in one
        // write: a panicking clone leaves `len` nodes to drop. (`reserve`
        // checked that the total fits.)
        let counted = self.state.get().counted();
        self.state.set(if carry.drop.is_some() {
            counted.or_bits(NEEDS_DROP)
        } else {
            counted
        });
    }
}

/// The bits of `Captured::bits` that hold the log2 of its alignment.
const ALIGN_LOG2: u8 = 0x3f;
/// The bit of `Captured::bits` set when a node needs dropping.
const NEEDS_DROP: u8 = 0x80;
/// The bit of `Captured::bits` set when the nodes are on the heap.
const HEAP: u8 = 0x40;

/// Whether a node of `carry` fits in an inline buffer of `bytes` bytes
/// when it ends at `end`: the rule `capture_into` follows.
#[inline(always)]
fn fits(end: usize, carry: &Carry, bytes: usize) -> bool {
    end <= bytes && carry.align <= INLINE_ALIGN
}

/// One bit of a word chosen by `type_id`'s hash: equal types choose the
/// same bit (`Hash` agrees with `Eq`), different ones usually not.
#[inline(always)]
fn type_bit(type_id: &core::any::TypeId) -> u64 {
    /// Keeps what the `TypeId` writes: its `Hash` writes one `u64` (the
    /// low half of the id, itself a hash), which this takes as it is.
    struct Fold(u64);
    impl core::hash::Hasher for Fold {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for &byte in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(byte);
            }
        }
        fn write_u64(&mut self, n: u64) {
            self.0 ^= n;
        }
    }
    let mut fold = Fold(0);
    core::hash::Hash::hash(type_id, &mut fold);
    1 << (core::hash::Hasher::finish(&fold) % 64)
}

/// A snapshot holds at most `u16::MAX` stores in at most 4 GiB.
#[cold]
#[inline(never)]
fn too_many(len: usize) -> ! {
    panic!("cannot capture {len} stores: a snapshot holds at most 65535 stores in at most 4 GiB")
}

/// The heap buffer for stores that do not fit inline (`size` is not zero).
#[cold]
#[inline(never)]
fn allocate(size: usize, align: usize) -> NonNull<u8> {
    let layout = Layout::from_size_align(size, align).expect("snapshot too large");
    // SAFETY: `size` is not zero: there is at least one node.
    let ptr = unsafe { alloc(layout) };
    NonNull::new(ptr).unwrap_or_else(|| handle_alloc_error(layout))
}

/// Calls `each` with every store visible from `top` that a snapshot
/// carries: stores installed with `with_store`/`scope`, innermost first,
/// each type once, and none whose type a nearer hidden or local frame
/// shadows.
/// Stops early when `each` breaks.
#[inline(always)]
fn each_carried(
    top: FramePtr,
    mut each: impl FnMut(NonNull<Header>, &'static Carry) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let mut next = top;
    while let Some((ptr, header)) = next.get() {
        next = header.link;
        if let Some(carry) = header.meta.carry() {
            if !shadowed(top, ptr, header.meta.type_id) {
                each(ptr, carry)?;
            }
        }
    }
    ControlFlow::Continue(())
}

impl<const W: usize> Captured<W> {
    /// Copies into this empty buffer every store visible now that can be
    /// carried, in one walk of the frames. Allocates nothing when they fit
    /// in `W` words; otherwise, at the first store that does not
    /// fit, sizes all of them, moves the ones copied so far to one heap
    /// allocation and goes on there. Filling in place (rather than
    /// returning a new buffer) saves copying the inline buffer on the way
    /// out.
    #[inline(always)]
    pub(crate) fn capture_into(&mut self) {
        debug_assert_eq!(self.len(), 0);
        let top = imp::get();
        let Some((src, header)) = top.get() else {
            // No scope: nothing to copy (`empty` is filled as it is).
            return;
        };
        // The usual case, a task with one store (its context), without the
        // bookkeeping of the walk: one frame, a carried store that fits.
        if header.link.is_null() {
            if let Some(carry) = header.meta.carry() {
                if fits(carry.size, carry, Self::INLINE_BYTES) {
                    // SAFETY: (TYPE, LIFO) `src` is a live carried store
                    // with this carry; the empty inline buffer is aligned
                    // for it and large enough (`fits`).
                    unsafe { (carry.clone_into)(src, self.inline_base().cast()) };
                    // SAFETY: the one node of this inline buffer, just
                    // written.
                    unsafe { settle_one_word(self.inline_base(), carry, Self::INLINE_BYTES) };
                    // Counted only once written (a panicking clone leaves
                    // nothing to drop), in one write (see `State`).
                    let drop = if carry.drop.is_some() { NEEDS_DROP } else { 0 };
                    let bits = INLINE_ALIGN.trailing_zeros() as u8 | drop;
                    self.state.set(State::new(0, 1, bits, Publish::Inline));
                    return;
                }
            }
        }
        self.capture_walk(top);
    }

    /// [`capture_into`](Self::capture_into) in every case: the walk of
    /// every frame from `top`. Out of line, so that the short path is
    /// small enough to inline into every capture site (with the walk
    /// inlined, the compiler stopped inlining `capture_into` once the
    /// adapters used it too, and a one-store capture took 71 instructions
    /// instead of 55).
    #[inline(never)]
    fn capture_walk(&mut self, top: FramePtr) {
        const { assert!(W * 8 < 256, "inline offsets are kept in bytes") };
        let mut offset = 0;
        // The offsets of the last four nodes, one byte each, the latest in
        // the top byte: the second to the fifth inline node's (see `Few`)
        // once shifted into place after the walk.
        let mut offsets = 0u32;
        // The walk of `each_carried`, written out: with a closure that
        // borrows `self` mutably the compiler keeps more in memory, and a
        // capture costs 3-5% more instructions.
        let mut next = top;
        // The types of the frames walked so far, as a one-word Bloom
        // filter: a store whose type is not in it is not shadowed, without
        // walking back to the top to check.
        let mut seen = 0u64;
        while let Some((src, header)) = next.get() {
            next = header.link;
            let bit = type_bit(&header.meta.type_id);
            let maybe_shadowed = seen & bit != 0;
            seen |= bit;
            let Some(carry) = header.meta.carry() else {
                continue;
            };
            if maybe_shadowed && shadowed(top, src, header.meta.type_id) {
                continue;
            }
            if !fits(offset + carry.size, carry, Self::INLINE_BYTES) {
                // SAFETY: `src` is this walk's current frame, a carried
                // store, not shadowed.
                return unsafe { self.capture_rest_on_heap(top, src) };
            }
            // (Inline offsets are below 256.)
            offsets = (offsets >> 8) | ((offset as u32) << 24);
            // SAFETY: (TYPE, LIFO) `src` is a live carried store with this
            // carry. It fits, by the check above, and `offset` is a multiple
            // of `INLINE_ALIGN` (rounded up below), so of `carry.align`.
            unsafe { self.push(true, offset, src, carry) };
            // The next node starts at a multiple of `INLINE_ALIGN`, where
            // `Nodes` looks for it. Where a header is aligned to it (64-bit
            // targets), so is every inline node's size, and this adds
            // nothing: compiled out. On 32-bit targets a header is 8 bytes
            // aligned to 4, and a `Node<u32>` 12 bytes.
            offset += carry.size;
            if align_of::<Header>() < INLINE_ALIGN {
                offset = align_up(offset, INLINE_ALIGN);
            }
        }
        let len = self.state.get().len();
        if (2..=5).contains(&len) {
            // The first node's offset (0) and any before it shift out.
            self.state.set(
                self.state
                    .get()
                    .with_size(offsets >> (8 * (5 - u32::from(len)))),
            );
        }
        self.filled();
    }

    /// The rest of [`capture_walk`](Self::capture_walk) from the frame at
    /// `from`, the first store that does not fit inline: moves the nodes
    /// copied so far to one heap buffer sized for every store of the walk,
    /// and goes on there. Out of line, so that the inline walk keeps no
    /// state for it.
    ///
    /// # Safety
    /// `from` is a frame of the walk from `top`, a carried store that is
    /// not shadowed, and every store before it that a capture takes is
    /// copied (inline).
    #[cold]
    #[inline(never)]
    unsafe fn capture_rest_on_heap(&mut self, top: FramePtr, from: NonNull<Header>) {
        let mut offset = self.spill(top);
        let align = self.align();
        let mut reached = false;
        // The same walk (`each_carried` takes the same stores in the same
        // order), copying from `from` on.
        let _ = each_carried(top, |src, carry| {
            reached |= src == from;
            if reached {
                // SAFETY: (TYPE, LIFO) `src` is a live carried store with
                // this carry; `spill` sized the heap buffer for every store
                // of this walk, at offsets that are multiples of `align`.
                unsafe { self.push(false, offset, src, carry) };
                offset = align_up(offset + carry.size, align);
            }
            ControlFlow::Continue(())
        });
        self.filled();
    }

    /// Moves the nodes written so far (inline) to a heap buffer with room
    /// for every store a capture from `top` takes, and returns the offset
    /// after them there.
    #[cold]
    #[inline(never)]
    fn spill(&mut self, top: FramePtr) -> usize {
        let min = align_of::<Header>();
        let (mut len, mut sum, mut align) = (0, 0, min);
        let _ = each_carried(top, |_, carry| {
            len += 1;
            sum += carry.size;
            align = align.max(carry.align);
            ControlFlow::Continue(())
        });
        // Node sizes are multiples of `min`, so each node's padding to
        // `align` is at most `align - min`: exact when nothing is
        // over-aligned.
        let size = sum + len * (align - min);
        if len > usize::from(u16::MAX) || size > u32::MAX as usize {
            too_many(len);
        }
        let heap = allocate(size, align);
        let mut offset = 0;
        for (node, carry) in self.nodes() {
            // SAFETY: moves a written inline node (`carry.size` bytes) to
            // the new buffer, aligned for it (`offset` is a multiple of
            // `align`), with room for it: the buffer holds every node of the
            // walk, these included. The inline copy is never used again
            // (`set_heap` below overwrites its start, before anything can
            // unwind).
            unsafe {
                core::ptr::copy_nonoverlapping(
                    node.as_ptr().cast::<u8>(),
                    heap.as_ptr().add(offset),
                    carry.size,
                );
            }
            offset = align_up(offset + carry.size, align);
        }
        self.set_heap(heap);
        self.set_align(align);
        self.state.set(self.state.get().with_size(size as u32));
        offset
    }

    /// Copies the stores of `self` into the empty buffer `copy`: no
    /// allocation when they are inline, one otherwise.
    #[inline]
    pub(crate) fn clone_into(&self, copy: &mut Captured<W>) {
        debug_assert_eq!(copy.len(), 0);
        let state = self.state.get();
        if state.len() == 0 {
            return;
        }
        if state.len() == 1 && state.bits() & HEAP == 0 {
            // The usual case, one inline node, without the walk.
            let src = self.inline_base().cast::<Header>();
            // SAFETY: the buffer's one node, written, starts with a header.
            let carry = carry_of(unsafe { src.as_ref() });
            // SAFETY: (TYPE) `src` heads a live carried store with this
            // carry; the copy's empty inline buffer has the same size and
            // alignment, so it fits at the same offset, 0.
            unsafe { (carry.clone_into)(src, copy.inline_base().cast()) };
            // SAFETY: the copy's one node, just written, inline.
            unsafe { settle_one_word(copy.inline_base(), carry, Self::INLINE_BYTES) };
            // The same counts (a single node's link is null), in one write
            // once the node is written: a panicking clone leaves the copy
            // empty.
            copy.state.set(state.unlinked());
            return;
        }
        copy.reserve_like(self);
        let mut nodes = self.nodes();
        loop {
            let offset = nodes.offset;
            let Some((src, carry)) = nodes.next() else {
                break;
            };
            // SAFETY: `src` is a written node of `self`, at `offset`, a
            // carried store (TYPE); `copy` has the same layout, so the node
            // fits at the same offset.
            unsafe { copy.push(false, offset, src, carry) };
        }
        if self.heap().is_none() {
            // The same nodes at the same offsets: the same counts, found
            // the same way, written in one piece.
            let state = self.state.get();
            // (The copy's links are not written yet.)
            copy.state.set(state.unlinked());
        } else {
            copy.filled();
        }
    }
}

impl<const W: usize> Captured<W> {
    /// Whether the stores of a snapshot include one of type `type_id`.
    #[cfg(test)]
    fn contains(&self, type_id: core::any::TypeId) -> bool {
        self.nodes()
            // SAFETY: a written node starts with a header.
            .any(|(node, _)| unsafe { node.as_ref() }.meta.type_id == type_id)
    }
}

impl<const W: usize> Drop for Captured<W> {
    #[inline]
    fn drop(&mut self) {
        if self.len() == 0 && self.state.get().bits() & HEAP == 0 {
            // Nothing to drop, and never published: an empty snapshot
            // publishes null.
            return;
        }
        self.unpublish();
        if self.state.get().bits() & (HEAP | NEEDS_DROP) != 0 {
            self.drop_nodes();
        }
    }
}

impl<const W: usize> Captured<W> {
    /// Unpublishes the nodes if they are still published while being
    /// destroyed: a thread-local that owns the snapshot, torn down at
    /// process exit inside `run` (LIFO). Everything is unpublished rather
    /// than leave the slot pointing into freed memory.
    #[inline]
    fn unpublish(&self) {
        if imp::get().reaches(self.base().cast()) {
            imp::set(FramePtr::NULL);
        }
    }

    /// Drops the nodes that need it and frees the heap buffer.
    fn drop_nodes(&mut self) {
        /// Frees the heap buffer last, on return and on unwind.
        struct Free(Option<(NonNull<u8>, usize, usize)>);
        impl Drop for Free {
            fn drop(&mut self) {
                if let Some((ptr, size, align)) = self.0 {
                    // SAFETY: allocated by `allocate` with this size and
                    // alignment (a valid layout), freed once, after every
                    // node in it was dropped.
                    unsafe { dealloc(ptr.as_ptr(), Layout::from_size_align_unchecked(size, align)) }
                }
            }
        }
        let _free = Free(
            self.heap()
                .map(|ptr| (ptr, self.state.get().size() as usize, self.align())),
        );
        if self.state.get().bits() & NEEDS_DROP != 0 {
            drop_all(&mut self.nodes());
        }
    }
}

/// Drops every node left in `nodes`. If one's `Drop` panics, the rest are
/// still dropped while the panic unwinds (a second panic aborts), as `Vec`
/// does: nothing is leaked.
fn drop_all(nodes: &mut Nodes) {
    /// Continues with the nodes left, when a drop unwinds.
    struct Rest<'a>(&'a mut Nodes);
    impl Drop for Rest<'_> {
        fn drop(&mut self) {
            drop_all(self.0);
        }
    }
    let rest = Rest(nodes);
    for (node, carry) in rest.0.by_ref() {
        if let Some(drop) = carry.drop {
            // SAFETY: a written node of this buffer, dropped once: `next`
            // has moved past it before its `Drop` runs.
            unsafe { drop(node) }
        }
    }
    mem::forget(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture() -> Captured {
        let mut captured = Captured::empty();
        captured.capture_into();
        captured
    }

    #[test]
    fn small_stores_stay_inline_and_large_ones_take_one_allocation() {
        let top = crate::scope(1u64, || crate::scope(2u32, capture));
        assert_eq!(top.len(), 2);
        assert!(top.heap().is_none());
        assert!(top.contains(core::any::TypeId::of::<u64>()));
        let big = crate::scope([0u8; 256], || crate::scope(2u32, capture));
        assert_eq!(big.len(), 2);
        assert!(big.heap().is_some());
    }

    #[derive(Clone, Debug, PartialEq)]
    #[repr(align(32))]
    struct Aligned32(u8);

    /// Reads every store of the test types through the snapshot.
    fn reads(captured: &Captured) -> (Option<u64>, Option<u32>, Option<Aligned32>, Option<u16>) {
        captured.run(|| {
            (
                crate::get::<u64>(),
                crate::get::<u32>(),
                crate::get::<Aligned32>(),
                crate::get::<u16>(),
            )
        })
    }

    #[test]
    fn stores_copied_inline_move_to_the_heap_when_a_later_one_does_not_fit() {
        // Innermost first: u32 and u16 are copied inline, then the
        // over-aligned store (and the u64 after it) need the heap.
        let spilled = crate::scope(1u64, || {
            crate::scope(Aligned32(3), || {
                crate::scope(2u32, || crate::scope(4u16, capture))
            })
        });
        assert_eq!(spilled.len(), 4);
        assert!(spilled.heap().is_some());
        assert_eq!(spilled.align(), 32);
        let all = (Some(1), Some(2), Some(Aligned32(3)), Some(4));
        assert_eq!(reads(&spilled), all);
        let mut copy = Captured::empty();
        spilled.clone_into(&mut copy);
        drop(spilled);
        assert_eq!(reads(&copy), all);

        // Too large, after stores that filled part of the buffer.
        let spilled = crate::scope([7u8; 80], || {
            crate::scope(1u64, || crate::scope(2u32, capture))
        });
        assert!(spilled.heap().is_some());
        assert_eq!(spilled.run(crate::get::<[u8; 80]>), Some([7; 80]));
        assert_eq!(reads(&spilled), (Some(1), Some(2), None, None));
    }

    #[test]
    fn a_snapshot_of_four_word_stores_stays_inline() {
        let four = crate::scope(1u64, || {
            crate::scope(2u32, || {
                crate::scope(Aligned8(3), || crate::scope(4u16, capture))
            })
        });
        assert_eq!(four.len(), 4);
        assert!(four.heap().is_none());
        assert!(four.state.get().publishes(Publish::Few));
        assert_eq!(four.state.get().size().to_le_bytes(), [24, 48, 72, 0]);
        assert_eq!(four.run(crate::get::<Aligned8>), Some(Aligned8(3)));
        assert_eq!(reads(&four), (Some(1), Some(2), None, Some(4)));
    }

    #[derive(Clone, Debug, PartialEq)]
    struct Aligned8(u64);

    /// What `Snapshot` does when it carries a span: several inline stores
    /// take the out-of-line path, and are linked once all the same when
    /// pinned.
    #[cfg(feature = "tracing")]
    #[test]
    fn with_a_span_several_inline_stores_are_linked_once_when_pinned() {
        let three = (Some(1), Some(2), None, Some(4));
        let copy = {
            let mut pinned =
                crate::scope(1u64, || crate::scope(2u32, || crate::scope(4u16, capture)));
            pinned.publish_slowly();
            assert!(pinned.state.get().publishes(Publish::FewSpan));
            // Unpinned: relinked at each run, and still `FewSpan`.
            assert_eq!(reads(&pinned), three);
            assert!(pinned.state.get().publishes(Publish::FewSpan));
            // SAFETY: `pinned` stays where it is until it is dropped, at
            // the end of this block.
            let top = unsafe { pinned.pinned_top() };
            assert!(pinned.state.get().publishes(Publish::LinkedSpan));
            let read = || {
                (
                    crate::get::<u64>(),
                    crate::get::<u32>(),
                    crate::get::<Aligned32>(),
                    crate::get::<u16>(),
                )
            };
            assert_eq!(Captured::<SNAPSHOT_WORDS>::run_from(top, read), three);
            // SAFETY: as above.
            let again = unsafe { pinned.pinned_top() };
            assert_eq!(again, top);
            assert_eq!(reads(&pinned), three);
            let mut copy = Captured::empty();
            pinned.clone_into(&mut copy);
            assert!(
                copy.state.get().publishes(Publish::FewSpan),
                "a clone links anew"
            );
            copy
        };
        assert_eq!(reads(&copy), three);
    }

    #[test]
    fn one_store_alone_takes_the_short_path() {
        // Drop glue: the copy is dropped once, with the snapshot.
        let counted = std::sync::Arc::new(());
        let one = crate::scope(counted.clone(), capture);
        assert_eq!(one.len(), 1);
        assert!(one.heap().is_none());
        assert!(one.state.get().publishes(Publish::Inline));
        assert_ne!(one.state.get().bits() & NEEDS_DROP, 0);
        assert_eq!(std::sync::Arc::strong_count(&counted), 2);
        let copy = {
            let mut copy = Captured::empty();
            one.clone_into(&mut copy);
            copy
        };
        assert_eq!(
            copy.state.get().0,
            one.state.get().0,
            "an inline copy has the same counts"
        );
        assert_eq!(std::sync::Arc::strong_count(&counted), 3);
        drop(one);
        assert_eq!(
            copy.run(crate::get::<std::sync::Arc<()>>)
                .map(|a| std::sync::Arc::ptr_eq(&a, &counted)),
            Some(true)
        );
        drop(copy);
        assert_eq!(std::sync::Arc::strong_count(&counted), 1);

        // No drop glue: nothing to call on drop.
        let id = crate::scope(7u64, capture);
        assert_eq!(id.state.get().bits() & NEEDS_DROP, 0);
        assert_eq!(id.run(crate::get::<u64>), Some(7));

        // One frame that is not carried, or does not fit: the walk decides.
        let local = crate::scope_local(7u64, capture);
        assert_eq!(local.len(), 0);
        assert!(local.state.get().publishes(Publish::Null));
        let large = crate::scope([7u8; 200], capture);
        assert!(large.heap().is_some());
        assert_eq!(large.run(crate::get::<[u8; 200]>), Some([7; 200]));
    }

    /// Eight bytes, seven of them padding (never initialized).
    #[derive(Clone, Copy, Debug, PartialEq)]
    #[repr(C, align(8))]
    struct Padded(u8);

    /// Captures the one store `value`, clones the snapshot, drops the
    /// original, and reads the store back through the copy, after moving it.
    fn round_trip<T: Clone + Send + 'static>(value: T) -> Option<T> {
        let one = crate::scope(value, capture);
        assert_eq!(one.len(), 1);
        assert!(one.heap().is_none());
        let direct = one.run(crate::get::<T>);
        let mut copy = Captured::empty();
        one.clone_into(&mut copy);
        drop(one);
        let moved = core::hint::black_box(copy);
        let through_copy = moved.run(crate::get::<T>);
        assert_eq!(direct.is_some(), through_copy.is_some());
        through_copy
    }

    #[test]
    fn a_one_word_store_keeps_its_bytes_when_its_node_is_rewritten_whole() {
        // Word-sized values whose node `settle_one_word` rewrites (on
        // x86-64 without `tracing`), and their neighbours in size, which it
        // leaves alone. Under Miri, reading the padding of `Padded` as an
        // integer would be reported.
        assert_eq!(round_trip(u64::MAX - 1), Some(u64::MAX - 1));
        assert_eq!(round_trip(0xdead_beef_u32), Some(0xdead_beef));
        assert_eq!(round_trip(Padded(0xa5)), Some(Padded(0xa5)));
        assert_eq!(round_trip(0x5a_u8), Some(0x5a));
        assert_eq!(round_trip(()), Some(()));
        assert_eq!(round_trip("sixteen bytes"), Some("sixteen bytes"));
        assert_eq!(round_trip([1u64, 2, 3]), Some([1, 2, 3]));
        let counted = std::sync::Arc::new(5);
        let back = round_trip(counted.clone()).expect("carried");
        assert!(std::sync::Arc::ptr_eq(&back, &counted));
        drop(back);
        assert_eq!(std::sync::Arc::strong_count(&counted), 1, "no copy leaked");
    }
}
