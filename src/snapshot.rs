//! [`Snapshot`]: the visible stores, owned, to carry into new work.

use core::fmt;
use core::marker::PhantomPinned;
use core::pin::Pin;

use crate::frame::carry::{Captured, SNAPSHOT_WORDS};
use crate::frame::FramePtr;

/// The stores visible at one point, copied so they can move to another task
/// or thread and be made visible there again.
///
/// Node carries its store into every callback and promise created inside
/// `run`; Rust has no hook where new work starts, so the adapters
/// ([`tokio`], [`async_std`],
/// [`smol`], [`thread`]) capture a snapshot when
/// they spawn and restore it in the new task. Use it directly where you start
/// work by other means.
///
/// # What is carried
///
/// * Stores installed with [`with_store`](crate::WithStore::with_store) or
///   [`scope`](crate::scope): their value is cloned (they are `Clone + Send`).
/// * Not carried: stores installed with
///   [`with_local_store`](crate::WithStore::with_local_store) or
///   [`scope_local`](crate::scope_local). Where one is the innermost store
///   of its type, the snapshot has no store of that type at all: an outer,
///   shadowed store of the same type never leaks through.
/// * Hiding is kept: a type hidden by `without_store` or [`exit`](crate::exit)
///   at capture is absent in the snapshot.
///
/// Restoring (with [`run`](Snapshot::run) or
/// [`with_snapshot`](crate::WithStore::with_snapshot)) makes exactly the
/// captured stores visible: stores visible where it is restored are hidden
/// meanwhile, except those installed inside it.
///
/// With the `tracing` feature, a snapshot also carries the span that was
/// current at capture (`tracing::Span::current()`), and restoring it enters
/// that span: work started through an adapter runs inside the spawner's
/// span, as `.in_current_span()` would do by hand. (A snapshot captured
/// outside any span enters none, so the span current where it is restored
/// stays current: tracing has no way to leave every span.)
///
/// # Cost
///
/// `capture` walks the visible frames once, cloning each carried store into
/// the snapshot, and allocates nothing when the copies, each with a two-word
/// header, fit in 96 bytes inline (for example a request-id newtype, an
/// `Arc` logger and a `String` tenant, or four `u64`s, on a 64-bit target);
/// otherwise it makes exactly one allocation for all of them. `clone` does
/// the same. Restoring allocates nothing and costs what entering one scope
/// costs: several inline stores are linked to each other at the first poll
/// of a pinned `with_snapshot` future (a snapshot is `!Unpin` for that) or
/// at each [`run`](Snapshot::run), and published as they are at later polls.
/// A `Snapshot` is 104 bytes on 64-bit targets (plus a `tracing::Span`
/// with the `tracing` feature), and it travels inside the
/// task it is restored in; the adapters carry no store, or one word-sized
/// store, in two words instead. Requires the `alloc` feature (on with `std`).
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope, Snapshot};
///
/// let snapshot = scope(String::from("req-42"), Snapshot::capture);
/// assert_eq!(get::<String>(), None);
///
/// let handle = std::thread::spawn(move || snapshot.run(get::<String>));
/// assert_eq!(handle.join().unwrap().as_deref(), Some("req-42"));
/// ```
///
#[cfg_attr(feature = "std", doc = "[`thread`]: crate::thread")]
#[cfg_attr(
    not(feature = "std"),
    doc = "[`thread`]: https://docs.rs/async-local-storage/latest/async_local_storage/thread/index.html"
)]
#[cfg_attr(feature = "tokio", doc = "[`tokio`]: crate::adapters::tokio")]
#[cfg_attr(
    not(feature = "tokio"),
    doc = "[`tokio`]: https://docs.rs/async-local-storage/latest/async_local_storage/adapters/tokio/index.html"
)]
#[cfg_attr(
    feature = "async-std",
    doc = "[`async_std`]: crate::adapters::async_std"
)]
#[cfg_attr(
    not(feature = "async-std"),
    doc = "[`async_std`]: https://docs.rs/async-local-storage/latest/async_local_storage/adapters/async_std/index.html"
)]
#[cfg_attr(feature = "smol", doc = "[`smol`]: crate::adapters::smol")]
#[cfg_attr(
    not(feature = "smol"),
    doc = "[`smol`]: https://docs.rs/async-local-storage/latest/async_local_storage/adapters/smol/index.html"
)]
pub struct Snapshot {
    inner: SnapshotIn<SNAPSHOT_WORDS>,
}

/// A snapshot with `W` words of stores inline: [`Snapshot`] is one with
/// [`SNAPSHOT_WORDS`], as are the full snapshots of an adapter's task
/// (`crate::carried`). The stores and, in `S`, the span current at capture
/// (with `tracing`; a [`NoSpan`] otherwise, and in an adapter's task
/// spawned outside any span).
///
/// It is `!Unpin`, so that a future that holds one (`Scoped<F, Snapshot>`,
/// an adapter's task) is too: once pinned, its stores never move again, and
/// several inline stores are linked to each other once rather than at every
/// poll (see [`run_pinned`](Self::run_pinned)).
pub(crate) struct SnapshotIn<const W: usize, S: SpanSlot = CaptureSpan> {
    stores: Captured<W>,
    span: S,
    _pinned: PhantomPinned,
}

/// What a snapshot keeps of the span current at capture, to enter it with
/// the stores.
pub(crate) trait SpanSlot: Send + Sync + 'static {
    /// The span to enter, unless there is none.
    #[cfg(feature = "tracing")]
    fn span(&self) -> Option<&tracing::Span>;
}

/// No span: what a snapshot keeps without the `tracing` feature, and what
/// an adapter's task spawned outside any span keeps with it (a
/// `tracing::Span` is five words).
#[derive(Clone)]
pub(crate) struct NoSpan;

impl SpanSlot for NoSpan {
    #[cfg(feature = "tracing")]
    #[inline(always)]
    fn span(&self) -> Option<&tracing::Span> {
        None
    }
}

#[cfg(feature = "tracing")]
impl SpanSlot for tracing::Span {
    #[inline]
    fn span(&self) -> Option<&tracing::Span> {
        Some(self).filter(|span| !span.is_none())
    }
}

/// What a [`Snapshot`] keeps of the span current at capture: the span
/// itself with `tracing`, nothing without.
#[cfg(feature = "tracing")]
pub(crate) type CaptureSpan = tracing::Span;
/// What a [`Snapshot`] keeps of the span current at capture: the span
/// itself with `tracing`, nothing without.
#[cfg(not(feature = "tracing"))]
pub(crate) type CaptureSpan = NoSpan;

/// The span current now (`tracing::Span::current()`), or [`NoSpan`]
/// without `tracing`.
#[inline]
pub(crate) fn current_span() -> CaptureSpan {
    #[cfg(feature = "tracing")]
    return tracing::Span::current();
    #[cfg(not(feature = "tracing"))]
    NoSpan
}

impl<const W: usize, S: SpanSlot> SnapshotIn<W, S> {
    /// Copies the stores visible now, with `span` (for a `Snapshot`, the
    /// span current now, which the caller has asked for already). (For the
    /// adapters' tasks: `crate::carried`.)
    #[inline]
    #[cfg_attr(
        not(any(feature = "tokio", feature = "async-std", feature = "smol")),
        allow(dead_code)
    )]
    pub(crate) fn capture_in(span: S) -> Self {
        let mut snapshot = SnapshotIn::empty_in(span);
        snapshot.fill();
        snapshot
    }

    /// No stores yet, and that span.
    #[inline]
    fn empty_in(span: S) -> Self {
        SnapshotIn {
            stores: Captured::empty(),
            span,
            _pinned: PhantomPinned,
        }
    }

    /// Copies the stores visible now into this empty snapshot, in place
    /// (an owner that embeds it, such as `Snapshot`, saves moving it).
    #[inline]
    fn fill(&mut self) {
        self.stores.capture_into();
        self.filled();
    }

    /// Copies the stores of `self` into the empty `copy`, in place.
    #[inline]
    fn clone_to(&self, copy: &mut Self) {
        self.stores.clone_into(&mut copy.stores);
        copy.filled();
    }

    /// Tells the stores what else entering the snapshot involves.
    #[inline]
    fn filled(&mut self) {
        #[cfg(feature = "tracing")]
        if self.span().is_some() {
            self.stores.publish_slowly();
        }
    }

    /// Runs `f` with exactly these stores visible (inside the span).
    #[inline]
    pub(crate) fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        #[cfg(feature = "tracing")]
        let _entered = self.span().map(tracing::Span::enter);
        self.stores.run(f)
    }

    /// [`run`](Self::run) for a snapshot that stays where it is: several
    /// inline stores are linked at the first call only.
    #[inline]
    pub(crate) fn run_pinned<R>(self: Pin<&Self>, f: impl FnOnce() -> R) -> R {
        let this = self.get_ref();
        #[cfg(feature = "tracing")]
        let _entered = this.span().map(tracing::Span::enter);
        // SAFETY: `SnapshotIn` is `!Unpin`, and it is pinned: it does not
        // move until it is dropped.
        let top = unsafe { this.stores.pinned_top() };
        Captured::<W>::run_from(top, f)
    }

    /// [`run_pinned`](Self::run_pinned), to drop in `f` the future these
    /// stores run: see [`Captured::run_from_to_drop`].
    #[inline]
    pub(crate) fn run_pinned_to_drop<R>(self: Pin<&Self>, f: impl FnOnce() -> R) -> R {
        let this = self.get_ref();
        #[cfg(feature = "tracing")]
        let _entered = this.span().map(tracing::Span::enter);
        // SAFETY: as in `run_pinned`.
        let top = unsafe { this.stores.pinned_top() };
        Captured::<W>::run_from_to_drop(top, f)
    }

    /// The span to enter with the snapshot, unless it is none.
    #[cfg(feature = "tracing")]
    #[inline]
    fn span(&self) -> Option<&tracing::Span> {
        self.span.span()
    }
}

impl Snapshot {
    /// Copies the stores visible now.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{scope, Snapshot};
    ///
    /// assert!(Snapshot::capture().is_empty());
    /// let snapshot = scope(1u8, || scope(2u16, Snapshot::capture));
    /// assert_eq!(snapshot.len(), 2);
    /// ```
    #[must_use]
    #[inline]
    pub fn capture() -> Snapshot {
        // Filled in place: `SnapshotIn::capture_in` would be moved in.
        let mut snapshot = Snapshot {
            inner: SnapshotIn::empty_in(current_span()),
        };
        snapshot.inner.fill();
        snapshot
    }

    /// A snapshot with no stores: restoring it hides everything, which
    /// isolates code from the stores of its caller. Without a snapshot at
    /// hand, [`isolate`](crate::isolate) and
    /// [`isolated`](crate::WithStore::isolated) do the same.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, Snapshot};
    ///
    /// let seen = scope(1u8, || Snapshot::empty().run(get::<u8>));
    /// assert_eq!(seen, None);
    /// ```
    #[must_use]
    pub fn empty() -> Snapshot {
        Snapshot {
            #[cfg(feature = "tracing")]
            inner: SnapshotIn::empty_in(tracing::Span::none()),
            #[cfg(not(feature = "tracing"))]
            inner: SnapshotIn::empty_in(NoSpan),
        }
    }

    /// The number of stores in the snapshot.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{scope, Snapshot};
    ///
    /// assert_eq!(scope(1u8, Snapshot::capture).len(), 1);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.stores.len()
    }

    /// Returns `true` if the snapshot holds no store.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::Snapshot;
    ///
    /// assert!(Snapshot::empty().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inner.stores.len() == 0
    }

    /// Calls `f` with exactly the captured stores visible, and returns what
    /// it returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, Snapshot};
    ///
    /// let snapshot = scope(5u32, Snapshot::capture);
    /// assert_eq!(snapshot.run(get::<u32>), Some(5));
    /// assert_eq!(snapshot.run(get::<u32>), Some(5)); // reusable
    /// ```
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        self.inner.run(f)
    }

    /// Captures the current stores and returns `f` bound to them: calling
    /// the result runs `f` with exactly those stores visible, wherever and
    /// whenever it is called (Node's `AsyncLocalStorage.bind`).
    ///
    /// The way to carry stores into work started by means this crate has no
    /// adapter for: a thread pool, a callback registry, `rayon::spawn`.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, Snapshot};
    ///
    /// let job = scope(String::from("req-9"), || Snapshot::bind(get::<String>));
    /// let seen = std::thread::spawn(job).join().unwrap();
    /// assert_eq!(seen.as_deref(), Some("req-9"));
    /// ```
    pub fn bind<F: FnOnce() -> R, R>(f: F) -> impl FnOnce() -> R {
        let snapshot = Snapshot::capture();
        move || snapshot.run(f)
    }
}

impl Snapshot {
    /// The first of the snapshot's nodes, where reads continue inside a
    /// `with_snapshot` frame; for a snapshot that does not move until it is
    /// dropped: several inline stores are linked at the first call only.
    ///
    /// # Safety
    /// The snapshot is pinned (the `with_snapshot` frame that owns it is).
    #[inline]
    pub(crate) unsafe fn pinned_top(&self) -> FramePtr {
        // SAFETY: guaranteed by the caller.
        unsafe { self.inner.stores.pinned_top() }
    }

    /// [`pinned_top`](Self::pinned_top) when it costs nothing and there is
    /// no span to enter (see `Node::enter_jump`).
    #[inline(always)]
    pub(crate) fn fast_top(&self) -> Option<FramePtr> {
        self.inner.stores.fast_top()
    }

    /// Marks or unmarks this snapshot as the value of a `with_snapshot`
    /// frame: see `Captured::mark_jump`.
    pub(crate) fn mark_jump(&mut self, jump: bool) {
        self.inner.stores.mark_jump(jump);
    }

    /// The first node, when this is the marked snapshot of a
    /// `with_snapshot` frame with nothing to do on entry: one compare. See
    /// `Captured::jump_top`.
    #[inline(always)]
    pub(crate) fn jump_top(&self) -> Option<FramePtr> {
        self.inner.stores.jump_top()
    }

    /// The span to enter with the snapshot, unless it is none.
    #[cfg(feature = "tracing")]
    #[inline]
    pub(crate) fn span(&self) -> Option<&tracing::Span> {
        self.inner.span()
    }
}

impl Clone for Snapshot {
    /// Clones every store again (no allocation when they fit inline, one
    /// otherwise).
    fn clone(&self) -> Snapshot {
        let mut copy = Snapshot {
            inner: SnapshotIn::empty_in(self.inner.span.clone()),
        };
        self.inner.clone_to(&mut copy.inner);
        copy
    }
}

impl Default for Snapshot {
    /// The [empty](Snapshot::empty) snapshot.
    fn default() -> Snapshot {
        Snapshot::empty()
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("stores", &self.len())
            .finish()
    }
}
