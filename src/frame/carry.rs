//! Owned copies of frames, for snapshots: the carried stores laid out as
//! nodes (header, then value) in one buffer, inline when they fit in
//! [`INLINE_BYTES`], otherwise in a single heap allocation.
//!
//! The nodes are position-independent except for their links, which
//! [`Captured::top`] writes before the nodes are published (LINK): at every
//! call for an inline buffer (it moves with the snapshot), once for a heap
//! buffer. Every node starts at a
//! multiple of the largest node alignment in the buffer (`align`), so the
//! nodes can be walked from the buffer's start with their sizes alone.

extern crate alloc;

use alloc::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use core::cell::{Cell, UnsafeCell};
use core::mem::{self, align_of, size_of, MaybeUninit};
use core::ptr::NonNull;

use super::{imp, shadowed, FramePtr, Header, Kind, Node, Restore};

/// Bytes of stores a snapshot holds without allocating: e.g. a request-id
/// newtype, an `Arc` logger, a `String` tenant and a `u64` deadline
/// (each plus a two-word header).
pub(crate) const INLINE_BYTES: usize = 128;

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
    /// Drops the `Node<T>` at the pointer in place.
    drop: unsafe fn(NonNull<Header>),
}

impl Carry {
    pub(crate) const fn of<T: Clone + Send + 'static>() -> Carry {
        Carry {
            size: size_of::<Node<T>>(),
            align: align_of::<Node<T>>(),
            clone_into: clone_node::<T>,
            drop: drop_node::<T>,
        }
    }
}

/// # Safety
/// `src` heads a live `Node<T>` with the provenance of the whole node, and
/// `dst` is valid for writes of a `Node<T>` and aligned for it.
unsafe fn clone_node<T: Clone + Send + 'static>(src: NonNull<Header>, dst: NonNull<Header>) {
    // SAFETY: (TYPE) guaranteed by the caller.
    let value = unsafe { &src.cast::<Node<T>>().as_ref().value }.clone();
    // SAFETY: guaranteed by the caller.
    unsafe { dst.cast::<Node<T>>().as_ptr().write(Node::store(value)) };
}

/// # Safety
/// `node` heads a `Node<T>` written by `clone_node::<T>` and not dropped yet.
unsafe fn drop_node<T>(node: NonNull<Header>) {
    // SAFETY: guaranteed by the caller.
    unsafe { node.cast::<Node<T>>().as_ptr().drop_in_place() }
}

/// The carry of a snapshot node's header.
fn carry_of(header: &Header) -> Carry {
    match header.meta.kind {
        Kind::Store { carry: Some(carry) } => carry,
        // Only `Carry::clone_into` writes snapshot nodes, always as stores.
        _ => unreachable!("a snapshot node is always a carried store"),
    }
}

/// Rounds `n` up to a multiple of `align` (a power of two).
const fn align_up(n: usize, align: usize) -> usize {
    (n + align - 1) & !(align - 1)
}

#[repr(C, align(8))]
struct Inline(UnsafeCell<MaybeUninit<[u8; INLINE_BYTES]>>);

const _: () = assert!(align_of::<Inline>() == INLINE_ALIGN);

/// The stores of a snapshot: `len` nodes, innermost first.
pub(crate) struct Captured {
    inline: Inline,
    /// Where the nodes are when they did not fit inline (`size` bytes,
    /// aligned to `align`).
    heap: Option<NonNull<u8>>,
    /// Every node starts at a multiple of this: the largest node alignment.
    align: usize,
    /// Bytes reserved for the nodes.
    size: usize,
    /// Nodes written (all of them, except while a capture or clone runs).
    len: usize,
    /// The heap buffer address the links were last written for; 0 if never.
    linked_at: Cell<usize>,
}

// SAFETY: every node holds a `T: Send` (only such types have a `Carry`), and
// the heap buffer is owned by this value alone. It is not `Sync` (`Cell`):
// `T` need not be.
unsafe impl Send for Captured {}

/// The nodes of a buffer, in order.
struct Nodes {
    base: NonNull<u8>,
    align: usize,
    offset: usize,
    left: usize,
}

impl Iterator for Nodes {
    type Item = (NonNull<Header>, Carry);

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

impl Captured {
    pub(crate) const fn empty() -> Captured {
        Captured {
            inline: Inline(UnsafeCell::new(MaybeUninit::uninit())),
            heap: None,
            align: INLINE_ALIGN,
            size: 0,
            len: 0,
            linked_at: Cell::new(0),
        }
    }

    /// An empty buffer for nodes of alignment up to `align` in `size` bytes.
    fn with_capacity(size: usize, align: usize) -> Captured {
        let mut captured = Captured::empty();
        captured.align = align;
        captured.size = size;
        if size > INLINE_BYTES || align > INLINE_ALIGN {
            let layout = Layout::from_size_align(size, align).expect("snapshot too large");
            // SAFETY: `size` is not zero (there is at least one node).
            let ptr = unsafe { alloc(layout) };
            captured.heap = Some(NonNull::new(ptr).unwrap_or_else(|| handle_alloc_error(layout)));
        }
        captured
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn base(&self) -> NonNull<u8> {
        match self.heap {
            Some(heap) => heap,
            None => NonNull::from(&self.inline.0).cast(),
        }
    }

    fn nodes(&self) -> Nodes {
        Nodes {
            base: self.base(),
            align: self.align,
            offset: 0,
            left: self.len,
        }
    }

    /// The first node, with the links written for where the buffer is now;
    /// null when there are none.
    ///
    /// Inline nodes are relinked at every call: the buffer moves with the
    /// snapshot, and even where it does not, a pointer kept from an earlier
    /// call may no longer be used once the snapshot (or the future holding
    /// it) has been mutably borrowed again. Heap nodes never move, and their
    /// pointers derive from the allocation, so they are linked once. A
    /// single node has no link to write (its link is always null).
    #[inline]
    pub(crate) fn top(&self) -> FramePtr {
        if self.len == 0 {
            return FramePtr::NULL;
        }
        let base = self.base();
        if self.len > 1 && (self.heap.is_none() || self.linked_at.get() != base.as_ptr() as usize) {
            self.relink(base);
        }
        FramePtr(Some(base.cast()))
    }

    /// Writes each node's link to the next one, for the buffer at `base`.
    /// Out of line: a one-store snapshot never needs it, and the poll of a
    /// snapshot frame stays small.
    #[cold]
    #[inline(never)]
    fn relink(&self, base: NonNull<u8>) {
        let mut nodes = self.nodes().peekable();
        while let Some((node, _)) = nodes.next() {
            let link = FramePtr(nodes.peek().map(|&(next, _)| next));
            // SAFETY: (LINK) the node is in this buffer, behind an
            // `UnsafeCell` (or in the heap buffer it owns), and no reference
            // to its header is alive: headers are only read through
            // references during a walk, and a walk of these nodes runs
            // inside `run` or a poll, after `top` returns.
            unsafe { (*node.as_ptr()).link = link };
        }
        self.linked_at.set(base.as_ptr() as usize);
    }

    /// Runs `f` with exactly these stores visible.
    pub(crate) fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        let top = self.top();
        let prev = imp::enter(|_| top);
        let _restore = Restore(prev);
        f()
    }

    /// Appends a clone of the store at `src` at `offset`, returns the next
    /// offset.
    ///
    /// # Safety
    /// `src` heads a live carried store with that carry (TYPE, LIFO), and
    /// the node fits in the buffer at `offset`, a multiple of `self.align`.
    unsafe fn push(&mut self, offset: usize, src: NonNull<Header>, carry: Carry) -> usize {
        // SAFETY: guaranteed by the caller: in bounds.
        let dst = unsafe { self.base().as_ptr().add(offset) };
        // SAFETY: `dst` is in the buffer, aligned (`offset` and the base are
        // multiples of `align` >= `carry.align`), with room for the node.
        unsafe { (carry.clone_into)(src, NonNull::new_unchecked(dst).cast()) };
        // Counted only once written: a panicking clone leaves `len` nodes to drop.
        self.len += 1;
        align_up(offset + carry.size, self.align)
    }
}

/// Calls `each` with every store visible from `top` that a snapshot
/// carries: stores installed with `with_store`/`scope`, innermost first,
/// each type once, and none whose type a nearer hidden or local frame
/// shadows.
fn each_carried(top: FramePtr, mut each: impl FnMut(NonNull<Header>, Carry)) {
    let mut next = top;
    while let Some((ptr, header)) = next.get() {
        next = header.link;
        if let Kind::Store { carry: Some(carry) } = header.meta.kind {
            if !shadowed(top, ptr, header.meta.type_id) {
                each(ptr, carry);
            }
        }
    }
}

/// Copies every store visible now that can be carried. Allocates nothing
/// when they fit in [`INLINE_BYTES`], once otherwise.
pub(crate) fn capture() -> Captured {
    copy_from(imp::get())
}

/// Copies the carried stores visible from `top`.
fn copy_from(top: FramePtr) -> Captured {
    if top.is_null() {
        return Captured::empty();
    }
    let min = align_of::<Header>();
    let (mut len, mut sum, mut align) = (0, 0, min);
    each_carried(top, |_, carry| {
        len += 1;
        sum += carry.size;
        align = align.max(carry.align);
    });
    if len == 0 {
        return Captured::empty();
    }
    // Node sizes are multiples of `min`, so each node's padding to `align`
    // is at most `align - min`: exact when nothing is over-aligned.
    let mut captured = Captured::with_capacity(sum + len * (align - min), align);
    let mut offset = 0;
    each_carried(top, |src, carry| {
        // SAFETY: (TYPE, LIFO) `src` is a live carried store with this
        // carry; the same walk as above, so the node fits.
        offset = unsafe { captured.push(offset, src, carry) };
    });
    debug_assert_eq!(captured.len, len);
    captured
}

impl Clone for Captured {
    fn clone(&self) -> Captured {
        if self.len == 0 {
            return Captured::empty();
        }
        let mut copy = Captured::with_capacity(self.size, self.align);
        let mut offset = 0;
        for (src, carry) in self.nodes() {
            // SAFETY: `src` is a written node of `self`, a carried store
            // (TYPE); `copy` has the same layout, so it fits at `offset`.
            offset = unsafe { copy.push(offset, src, carry) };
        }
        copy
    }
}

impl Captured {
    /// Whether the stores of a snapshot include one of type `type_id`.
    #[cfg(test)]
    fn contains(&self, type_id: core::any::TypeId) -> bool {
        self.nodes()
            // SAFETY: a written node starts with a header.
            .any(|(node, _)| unsafe { node.as_ref() }.meta.type_id == type_id)
    }
}

impl Drop for Captured {
    fn drop(&mut self) {
        if self.len > 0 && imp::get().reaches(self.base().cast()) {
            // Still published while being destroyed: a thread-local that
            // owns the snapshot, torn down at process exit inside `run`
            // (LIFO). Unpublish everything rather than leave the slot
            // pointing into freed memory.
            imp::set(FramePtr::NULL);
        }
        /// Frees the heap buffer last, on return and on unwind.
        struct Free(Option<(NonNull<u8>, Layout)>);
        impl Drop for Free {
            fn drop(&mut self) {
                if let Some((ptr, layout)) = self.0 {
                    // SAFETY: allocated by `with_capacity` with this layout,
                    // freed once, after every node in it was dropped.
                    unsafe { dealloc(ptr.as_ptr(), layout) }
                }
            }
        }
        let _free = Free(self.heap.map(|ptr| {
            // The layout `with_capacity` allocated with.
            let layout = Layout::from_size_align(self.size, self.align);
            (ptr, layout.expect("allocated with this layout"))
        }));
        drop_all(&mut self.nodes());
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
        // SAFETY: a written node of this buffer, dropped once: `next` has
        // moved past it before its `Drop` runs.
        unsafe { (carry.drop)(node) }
    }
    mem::forget(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_stores_stay_inline_and_large_ones_take_one_allocation() {
        let top = crate::scope(1u64, || crate::scope(2u32, capture));
        assert_eq!(top.len(), 2);
        assert!(top.heap.is_none());
        assert!(top.contains(core::any::TypeId::of::<u64>()));
        let big = crate::scope([0u8; 256], || crate::scope(2u32, capture));
        assert_eq!(big.len(), 2);
        assert!(big.heap.is_some());
    }
}
