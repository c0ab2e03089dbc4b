//! [`Carried`]: how the adapters carry the spawner's stores into a new task,
//! in storage sized for them.
//!
//! A task spawned through an adapter holds a copy of the spawner's stores,
//! inside the task's future (which the runtime allocates anyway). A
//! [`Snapshot`](crate::Snapshot) keeps up to 96 bytes of stores inline, so
//! it would make every such future about 110 bytes larger, and runtimes copy
//! a task's future several times while spawning, completing and joining it
//! (and round its allocation up: tokio to a multiple of 128 bytes). Most
//! tasks carry one small store (a request id, an `Arc` handle):
//! [`spawn_carried!`] carries that in a [`OneWord`] (two words: the store's
//! meta pointer and its value) when it is all there is, and in a [`Full`]
//! snapshot (a `Snapshot`'s size) otherwise. With the `tracing` feature the
//! span current at the spawn travels too (five words): beside a `OneWord`
//! ([`InSpan`]) or inside the snapshot, and only when there is one, so a
//! task spawned outside any span is as small as without the feature (its
//! full snapshot has no room for a span: `Full<NoSpan>`). Each
//! carrier is captured in place, allocates nothing for small stores, and
//! behaves exactly like the others: see
//! [`WithStore::with_snapshot`](crate::WithStore::with_snapshot) for what the
//! task sees.

use core::future::Future;
use core::mem::ManuallyDrop;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

pub(crate) use crate::frame::carry::one_word::OneWord;
use crate::frame::carry::SNAPSHOT_WORDS;
#[cfg(feature = "tracing")]
use crate::snapshot::NoSpan;
use crate::snapshot::{SnapshotIn, SpanSlot};

/// A snapshot of any stores, the size of a [`Snapshot`](crate::Snapshot),
/// with what it keeps of the current span (the span itself with `tracing`),
/// or with `S` (`NoSpan`, outside any span).
pub(crate) type Full<S = crate::snapshot::CaptureSpan> = SnapshotIn<SNAPSHOT_WORDS, S>;

/// What a [`Carried`] future holds: the stores to make visible at each poll.
pub(crate) trait Stores: Send + 'static {
    /// Runs `f` with exactly these stores visible (inside the span). The
    /// stores are pinned (a full snapshot links several once, at the first
    /// call) and borrowed exclusively (a `OneWord` lends its value).
    fn run<R>(self: Pin<&mut Self>, f: impl FnOnce() -> R) -> R;

    /// [`run`](Self::run), to drop the task's future in `f`: also when the
    /// task is dropped inside its own poll (the teardown of a thread that
    /// never unwinds, as at `process::exit`): then the frames the task
    /// published go away with it, and nothing stays published (see
    /// `Captured::run_from_to_drop`, `OneWord::run_to_drop`).
    fn run_to_drop<R>(self: Pin<&mut Self>, f: impl FnOnce() -> R) -> R;
}

impl<const W: usize, S: SpanSlot> Stores for SnapshotIn<W, S> {
    #[inline]
    fn run<R>(self: Pin<&mut Self>, f: impl FnOnce() -> R) -> R {
        SnapshotIn::run_pinned(self.into_ref(), f)
    }

    #[inline]
    fn run_to_drop<R>(self: Pin<&mut Self>, f: impl FnOnce() -> R) -> R {
        SnapshotIn::run_pinned_to_drop(self.into_ref(), f)
    }
}

impl Stores for OneWord {
    #[inline]
    fn run<R>(self: Pin<&mut Self>, f: impl FnOnce() -> R) -> R {
        // (`OneWord` is `Unpin`: nothing points into it between runs.)
        self.get_mut().run(f)
    }

    #[inline]
    fn run_to_drop<R>(self: Pin<&mut Self>, f: impl FnOnce() -> R) -> R {
        self.get_mut().run_to_drop(f)
    }
}

/// A [`OneWord`] and the span current at the spawn (`tracing`): runs
/// inside the span.
#[cfg(feature = "tracing")]
pub(crate) struct InSpan {
    stores: OneWord,
    span: tracing::Span,
}

#[cfg(feature = "tracing")]
impl Stores for InSpan {
    #[inline]
    fn run<R>(self: Pin<&mut Self>, f: impl FnOnce() -> R) -> R {
        // (`InSpan` is `Unpin`, as `OneWord` is.)
        let this = self.get_mut();
        let _entered = this.span.enter();
        this.stores.run(f)
    }

    #[inline]
    fn run_to_drop<R>(self: Pin<&mut Self>, f: impl FnOnce() -> R) -> R {
        let this = self.get_mut();
        let _entered = this.span.enter();
        this.stores.run_to_drop(f)
    }
}

/// What [`spawn_carried!`] puts in the task, decided before anything large
/// is built.
pub(crate) enum Capture {
    /// No store or one word-sized store, outside any span.
    Word(OneWord),
    /// The same, inside a span.
    #[cfg(feature = "tracing")]
    WordInSpan(InSpan),
    /// Anything else: a full snapshot, captured by the spawn's own arm
    /// (inside a span, with the span).
    Full(FullCapture),
    /// Anything else, outside any span: a full snapshot without room for
    /// a span (a `Snapshot`'s 104 bytes, where one with a span is 144, and
    /// tasks above 128 bytes cost more to move and to allocate).
    #[cfg(feature = "tracing")]
    FullOutsideSpan(FullCapture<NoSpan>),
}

/// A full snapshot still to capture, in place in the arm that spawns it
/// (returned from a function, a `Snapshot`'s 104 bytes would be copied
/// once more), with the span that [`capture`] asked for already.
pub(crate) struct FullCapture<S: SpanSlot = crate::snapshot::CaptureSpan> {
    span: S,
}

impl<S: SpanSlot> FullCapture<S> {
    #[inline]
    pub(crate) fn capture(self) -> Full<S> {
        Full::capture_in(self.span)
    }
}

/// Decides how a task carries what its spawner sees now, and copies it
/// unless it takes a full snapshot. Asks tracing for the current span once.
#[inline]
pub(crate) fn capture() -> Capture {
    let span = crate::snapshot::current_span();
    match OneWord::capture() {
        #[cfg(feature = "tracing")]
        Some(stores) if !span.is_none() => Capture::WordInSpan(InSpan { stores, span }),
        Some(stores) => Capture::Word(stores),
        #[cfg(feature = "tracing")]
        None if span.is_none() => Capture::FullOutsideSpan(FullCapture { span: NoSpan }),
        None => Capture::Full(FullCapture { span }),
    }
}

pin_project! {
    /// A future that runs with the stores its spawner saw: the task an
    /// adapter spawns. Like `Scoped<F, Snapshot>`, without a frame header
    /// (a snapshot's frame only ever publishes the snapshot's own nodes).
    pub(crate) struct Carried<F, S: Stores> {
        #[pin]
        inner: ManuallyDrop<F>,
        // Pinned (and `!Unpin`): see `SnapshotIn::run_pinned`.
        #[pin]
        stores: S,
    }

    impl<F, S: Stores> PinnedDrop for Carried<F, S> {
        fn drop(this: Pin<&mut Self>) {
            if !core::mem::needs_drop::<F>() {
                // Dropping `F` runs no code, so nothing can read the stores.
                // (The stores' own drop unpublishes them if they are still
                // published, as at `process::exit`: see `Captured`.)
                return;
            }
            let this = this.project();
            let inner = this.inner;
            this.stores.run_to_drop(|| {
                // SAFETY: `inner` is dropped exactly once, here, and is never
                // touched again: this is the destructor. Dropping in place
                // keeps the pinning promise.
                unsafe { ManuallyDrop::drop(inner.get_unchecked_mut()) }
            });
        }
    }
}

impl<F, S: Stores> Carried<F, S> {
    /// `inner`, to run with `stores`.
    #[inline]
    pub(crate) fn new(inner: F, stores: S) -> Self {
        Carried {
            inner: ManuallyDrop::new(inner),
            stores,
        }
    }
}

impl<F: Future, S: Stores> Future for Carried<F, S> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // SAFETY: `ManuallyDrop<F>` is a transparent wrapper; `F` is never
        // moved out of it, so the projection is structural.
        let inner = unsafe { this.inner.map_unchecked_mut(|inner| &mut **inner) };
        this.stores.run(|| inner.poll(cx))
    }
}

/// Spawns `$future` with the current stores, in the smallest [`Carried`]
/// that holds them: `spawn_carried!(future, |task| runtime::spawn(task))`.
/// The spawn expression is instantiated once per carrier (twice, or with
/// `tracing` four times: one word-sized store or a full snapshot, each
/// with the span or without).
macro_rules! spawn_carried {
    ($future:expr, |$task:ident| $spawn:expr) => {{
        let future = $future;
        match $crate::carried::capture() {
            $crate::carried::Capture::Word(stores) => {
                let $task = $crate::carried::Carried::new(future, stores);
                $spawn
            }
            #[cfg(feature = "tracing")]
            $crate::carried::Capture::WordInSpan(stores) => {
                let $task = $crate::carried::Carried::new(future, stores);
                $spawn
            }
            $crate::carried::Capture::Full(full) => {
                let stores = full.capture();
                let $task = $crate::carried::Carried::new(future, stores);
                $spawn
            }
            #[cfg(feature = "tracing")]
            $crate::carried::Capture::FullOutsideSpan(full) => {
                let stores = full.capture();
                let $task = $crate::carried::Carried::new(future, stores);
                $spawn
            }
        }
    }};
}
pub(crate) use spawn_carried;

#[cfg(all(test, feature = "std"))]
mod tests {
    use crate::{get, scope, scope_local, WithStore};
    use core::task::Poll;
    use futures::executor::block_on;
    use std::string::String;

    /// Which `Carried` the macro picks for the stores visible now, and what
    /// the task sees of `u64` and `String`, polled where none is set.
    fn spawn_here() -> (&'static str, (Option<u64>, Option<String>)) {
        let future = async { (get::<u64>(), get::<String>()) };
        spawn_carried!(future, |task| {
            let carried = core::any::type_name_of_val(&task);
            let class = if carried.contains(core::any::type_name::<super::OneWord>()) {
                "one word"
            } else if carried.contains("::InSpan") {
                "one word in span"
            } else {
                "snapshot"
            };
            (class, block_on(crate::isolate(|| task)))
        })
    }

    #[test]
    fn one_word_sized_store_takes_one_word_and_anything_more_the_full_snapshot() {
        assert_eq!(spawn_here(), ("one word", (None, None)));
        assert_eq!(scope(7u64, spawn_here), ("one word", (Some(7), None)));
        let two = scope(7u64, || scope(String::from("a"), spawn_here));
        assert_eq!(two, ("snapshot", (Some(7), Some(String::from("a")))));
        let string = scope(String::from("b"), spawn_here);
        assert_eq!(string, ("snapshot", (None, Some(String::from("b")))));
        // Shadowed and local stores are not carried, so they do not count.
        let shadowed = scope(1u64, || scope(2u64, spawn_here));
        assert_eq!(shadowed, ("one word", (Some(2), None)));
        let local = scope(7u64, || scope_local(String::from("l"), spawn_here));
        assert_eq!(local, ("one word", (Some(7), None)));
    }

    /// The size of the task `spawn_carried!` makes for `future` here, and
    /// its carrier's type.
    fn task_size<F: core::future::Future + Send + 'static>(future: F) -> (usize, &'static str) {
        spawn_carried!(future, |task| (
            core::mem::size_of_val(&task),
            core::any::type_name_of_val(&task)
        ))
    }

    /// With every feature (`tracing` included), a task that carries one
    /// word-sized store from outside any span grows by two words: the
    /// store's meta pointer and its value, no span.
    #[test]
    fn a_one_word_task_is_its_future_plus_two_words() {
        let future = async { get::<u64>() };
        let word = core::mem::size_of::<usize>();
        let bound = (core::mem::size_of_val(&future) + 2 * word).next_multiple_of(word);
        let (size, carried) = scope(7u64, || task_size(future));
        assert!(
            carried.contains(core::any::type_name::<super::OneWord>()),
            "{carried}"
        );
        assert!(size <= bound, "{size} bytes, more than {bound}");
    }

    /// Inside a span, the span travels too: beside one word-sized store
    /// (and the task grows by the span and two words), or in the full
    /// snapshot; outside it, nothing of it does, and the full snapshot has
    /// no room for it.
    #[cfg(feature = "tracing")]
    #[test]
    fn a_current_span_travels_beside_one_word_or_in_the_snapshot() {
        use tracing::subscriber::with_default;
        fn two_stores<R>(f: impl FnOnce() -> R) -> R {
            scope(7u64, || scope(String::from("a"), f))
        }
        let future = || async { (get::<u64>(), get::<String>()) };
        let (one, two, sized, sized_two, outside, outside_two) =
            with_default(tracing_subscriber::registry(), || {
                let span = tracing::info_span!("request");
                let entered = span.enter();
                let one = scope(7u64, spawn_here);
                let two = two_stores(spawn_here);
                let sized = scope(7u64, || task_size(async { get::<u64>() }));
                let sized_two = two_stores(|| task_size(future()));
                drop(entered);
                let outside = (scope(7u64, spawn_here), two_stores(spawn_here));
                (
                    one,
                    two,
                    sized,
                    sized_two,
                    outside,
                    two_stores(|| task_size(future())),
                )
            });
        assert_eq!(one, ("one word in span", (Some(7), None)));
        assert_eq!(two, ("snapshot", (Some(7), Some(String::from("a")))));
        assert_eq!(outside.0, ("one word", (Some(7), None)));
        assert_eq!(outside.1, two);
        let word = core::mem::size_of::<usize>();
        let span = core::mem::size_of::<tracing::Span>();
        let size = core::mem::size_of_val(&async { get::<u64>() });
        let bound = (size + 2 * word + span).next_multiple_of(word);
        assert!(sized.0 <= bound, "{sized:?}, more than {bound}");
        // Several stores: the full snapshot, with the span inside one, and
        // without room for it outside.
        let size = core::mem::size_of_val(&future());
        let snapshot = core::mem::size_of::<crate::Snapshot>();
        let bound = (size + snapshot).next_multiple_of(word);
        assert!(sized_two.0 <= bound, "{sized_two:?}, more than {bound}");
        let bound = (size + snapshot - span).next_multiple_of(word);
        assert!(outside_two.0 <= bound, "{outside_two:?}, more than {bound}");
        assert!(outside_two.1.contains("NoSpan"), "{}", outside_two.1);
    }

    #[test]
    fn carried_futures_see_their_stores_at_every_poll_and_while_dropped() {
        struct ReadOnDrop(std::sync::Arc<std::sync::Mutex<Option<u64>>>);
        impl Drop for ReadOnDrop {
            fn drop(&mut self) {
                *self.0.lock().unwrap() = get::<u64>();
            }
        }
        for words in [1usize, 2] {
            let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
            let probe = ReadOnDrop(seen.clone());
            let future = async move {
                let _probe = probe;
                let first = get::<u64>();
                let mut yielded = false;
                core::future::poll_fn(|cx| {
                    if core::mem::replace(&mut yielded, true) {
                        Poll::Ready(())
                    } else {
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                })
                .await;
                (first, get::<u64>(), get::<u32>())
            };
            let task = scope(5u64, || {
                if words == 1 {
                    spawn_carried!(future, |task| block_on(task.with_store(9u32)))
                } else {
                    scope(3u32, || spawn_carried!(future, |task| block_on(task)))
                }
            });
            // `with_store` outside the task is hidden inside it.
            assert_eq!(
                task,
                (Some(5), Some(5), if words == 1 { None } else { Some(3) })
            );
            assert_eq!(*seen.lock().unwrap(), Some(5));
        }
    }

    /// `process::exit` inside the poll of an adapter's task whose future a
    /// thread-local owns, as a hand-written executor might keep it: the
    /// thread's destructors drop the task inside its own poll, with the
    /// frames it published (one boxed, so freed with it) still published.
    mod exit_inside_a_poll {
        use crate::{scope, with, WithStore};
        use core::future::Future;
        use core::pin::Pin;
        use core::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        use core::task::Context;
        use std::boxed::Box;
        use std::string::String;

        /// A word-sized store that counts its drops.
        #[derive(Clone, Debug)]
        struct Probe(u64);

        static PROBE_DROPS: AtomicUsize = AtomicUsize::new(0);

        impl Drop for Probe {
            fn drop(&mut self) {
                PROBE_DROPS.fetch_add(1, SeqCst);
            }
        }

        /// Prints what is visible when the exiting thread's destructors
        /// reach it.
        struct Reader;

        impl Drop for Reader {
            fn drop(&mut self) {
                let probe = with(|probe: Option<&Probe>| probe.map(|probe| probe.0));
                let inner = with(|inner: Option<&u32>| inner.copied());
                let drops = PROBE_DROPS.load(SeqCst);
                std::eprintln!("reader: probe {probe:?}, inner {inner:?}, drops {drops}");
            }
        }

        type Task = Pin<Box<dyn Future<Output = ()>>>;

        std::thread_local! {
            static READER: Reader = const { Reader };
            static TASK: core::cell::RefCell<Option<Task>> = const { core::cell::RefCell::new(None) };
        }

        /// The child process's side: the task carries no store, one
        /// word-sized store (a `OneWord`, lent at each poll) or two (a full
        /// snapshot), and exits at its second poll inside a boxed store
        /// frame of its own.
        #[test]
        fn child() {
            let Ok(case) = std::env::var("ALS_CARRIED_EXIT") else {
                return;
            };
            READER.with(|_| {}); // registered first: destroyed last
            let future = async {
                let inner: Task = Box::pin(
                    async {
                        futures::pending!();
                        std::process::exit(0)
                    }
                    .with_store(8u32),
                );
                inner.await
            };
            let spawn = || spawn_carried!(future, |task| Box::pin(task) as Task);
            let task = match case.as_str() {
                "none" => spawn(),
                "word" => scope(Probe(7), spawn),
                "full" => scope(Probe(7), || scope(String::from("tenant"), spawn)),
                other => panic!("unknown case {other}"),
            };
            TASK.with(|slot| {
                *slot.borrow_mut() = Some(task);
                let mut slot = slot.borrow_mut();
                let waker = futures::task::noop_waker();
                loop {
                    let _ = slot
                        .as_mut()
                        .unwrap()
                        .as_mut()
                        .poll(&mut Context::from_waker(&waker));
                }
            })
        }

        /// A later destructor must see nothing: not the task's frames, freed
        /// with it, nor its stores. The `Probe` the scope installed is
        /// dropped when the scope ends; a one-word carrier's copy stays the
        /// lent node's (never dropped), a full snapshot's copy is dropped
        /// with the snapshot.
        #[test]
        #[cfg_attr(miri, ignore = "runs the test binary again, as a child process")]
        fn leaves_nothing_published() {
            for (case, drops) in [("none", 0), ("word", 1), ("full", 2)] {
                let output = std::process::Command::new(std::env::current_exe().unwrap())
                    .args(["--exact", "carried::tests::exit_inside_a_poll::child"])
                    .args(["--nocapture", "--test-threads=1"])
                    .env("ALS_CARRIED_EXIT", case)
                    .output()
                    .unwrap();
                let stderr = String::from_utf8_lossy(&output.stderr);
                assert!(
                    output.status.success(),
                    "case {case}: {}\n{stderr}",
                    output.status
                );
                let expected = std::format!("reader: probe None, inner None, drops {drops}");
                assert!(
                    stderr.contains(&expected),
                    "case {case}: expected `{expected}`:\n{stderr}"
                );
            }
        }
    }
}
