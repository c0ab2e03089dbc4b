//! The flash/RAM budget of the crate's core (issue 14): one store type,
//! `with_store`, `get`, `scope` and `isolate`, in a program that does little
//! else.
//!
//! Built twice per target and opt-level by `scripts/mcu.sh`: as is, and with
//! the `without-als` feature, which swaps the crate's calls for stand-ins
//! with the same signatures that do nothing. The difference in
//! `.text`/`.rodata` and in `.data`/`.bss` is what the crate costs: its code,
//! its slot (the global cell the binary registers with `set_slot!`) and
//! the `critical-section` implementation it pulls in (cortex-m's
//! single-core one). The program also runs under QEMU, so the measured code is code
//! that works.
#![no_std]
#![no_main]

use core::future::{poll_fn, Future};
use core::hint::black_box;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use cortex_m_rt::entry;
use cortex_m_semihosting::debug;
use panic_halt as _;

#[cfg(not(feature = "without-als"))]
use async_local_storage::{get, isolate, scope, WithStore};

#[cfg(not(feature = "without-als"))]
struct AppSlot;
// SAFETY: one core, no interrupt handlers: a single context.
#[cfg(not(feature = "without-als"))]
unsafe impl async_local_storage::slot::CriticalSectionSlot for AppSlot {}
#[cfg(not(feature = "without-als"))]
async_local_storage::set_slot!(AppSlot);

/// Stand-ins for the crate's calls: same shapes, no stores.
#[cfg(feature = "without-als")]
mod stand_ins {
    pub(crate) fn get<T: Clone + 'static>() -> Option<T> {
        None
    }
    pub(crate) fn scope<T, R>(_value: T, f: impl FnOnce() -> R) -> R {
        f()
    }
    pub(crate) fn isolate<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
    pub(crate) trait WithStore: Sized {
        fn with_store<T>(self, _value: T) -> Self {
            self
        }
    }
    impl<F> WithStore for F {}
}
#[cfg(feature = "without-als")]
use stand_ins::{get, isolate, scope, WithStore};

// Only so that a plain `cargo build` (default features: `snapshot`, which
// turns the crate's `alloc` on) links this binary too; never used. The
// budget is measured with `--no-default-features`.
#[cfg(feature = "snapshot")]
#[global_allocator]
static HEAP: embedded_alloc::LlffHeap = embedded_alloc::LlffHeap::empty();

/// The one store type.
#[derive(Clone, Copy, PartialEq, Eq)]
struct RequestId(u32);

/// A minimal executor: polls until ready with a no-op waker.
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// Pending once, then ready.
fn yield_now() -> impl Future<Output = ()> {
    let mut yielded = false;
    poll_fn(move |_cx: &mut Context<'_>| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            Poll::Pending
        }
    })
}

#[inline(never)]
fn current() -> Option<RequestId> {
    get::<RequestId>()
}

async fn handle() -> Option<RequestId> {
    yield_now().await;
    current()
}

#[entry]
fn main() -> ! {
    let id = black_box(7u32);
    let in_task = block_on(handle().with_store(RequestId(id)));
    let in_scope = scope(RequestId(id + 1), current);
    let isolated = scope(RequestId(id + 2), || isolate(current));
    let outside = current();

    let expected = if cfg!(feature = "without-als") {
        (None, None)
    } else {
        (Some(RequestId(id)), Some(RequestId(id + 1)))
    };
    let ok = (in_task, in_scope) == expected && isolated.is_none() && outside.is_none();
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop)]
    loop {}
}
