//! `adapters::tower::StoreLayer` on plain (non-HTTP) tower services:
//! `cargo test --features tower --test tower`.

use std::convert::Infallible;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use async_local_storage::adapters::tower::{StoreLayer, StoreService};
use async_local_storage::get;
use futures::executor::block_on;
use futures::FutureExt;
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt};

#[derive(Clone, Debug, PartialEq)]
struct JobId(u32);

/// Three calls deep, with a yield in between, so the store has to survive
/// being re-entered at each poll.
async fn deep() -> Option<JobId> {
    deeper().await
}
async fn deeper() -> Option<JobId> {
    yield_now().await;
    deepest().await
}
async fn deepest() -> Option<JobId> {
    get::<JobId>()
}

/// Returns `Pending` once, after waking itself.
async fn yield_now() {
    let mut yielded = false;
    futures::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

fn job_layer() -> StoreLayer<impl Fn(&u32) -> JobId + Clone> {
    StoreLayer::new(|job: &u32| JobId(*job))
}

#[test]
fn each_request_sees_its_own_store() {
    let service =
        ServiceBuilder::new()
            .layer(job_layer())
            .service(service_fn(|job: u32| async move {
                Ok::<_, Infallible>((job, get::<JobId>(), deep().await))
            }));
    for job in [1, 2, 3] {
        let reply = block_on(service.clone().oneshot(job)).unwrap();
        assert_eq!(reply, (job, Some(JobId(job)), Some(JobId(job))));
    }
    // Nothing is left behind on this thread.
    assert_eq!(get::<JobId>(), None);
}

#[test]
fn concurrent_requests_do_not_mix() {
    let service = job_layer().layer(service_fn(|job: u32| async move {
        let seen = deep().await;
        Ok::<_, Infallible>((job, seen))
    }));
    // Interleaved on one thread: every future is polled in turn.
    let calls = (0..50).map(|job| service.clone().oneshot(job));
    let replies = block_on(futures::future::join_all(calls));
    for (job, reply) in (0..50).zip(replies) {
        assert_eq!(reply.unwrap(), (job, Some(JobId(job))));
    }
}

/// A service that records what its synchronous `call` saw.
#[derive(Clone, Default)]
struct RecordsCall {
    seen_in_call: Arc<std::sync::Mutex<Vec<Option<JobId>>>>,
}

impl Service<u32> for RecordsCall {
    type Response = ();
    type Error = Infallible;
    type Future = std::future::Ready<Result<(), Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: u32) -> Self::Future {
        self.seen_in_call.lock().unwrap().push(get::<JobId>());
        std::future::ready(Ok(()))
    }
}

#[test]
fn the_inner_call_sees_the_store_too() {
    let inner = RecordsCall::default();
    let service = job_layer().layer(inner.clone());
    block_on(service.oneshot(9)).unwrap();
    assert_eq!(*inner.seen_in_call.lock().unwrap(), [Some(JobId(9))]);
}

/// Not ready until `open` is set; counts how often it was asked.
#[derive(Clone)]
struct Gate {
    open: Arc<AtomicBool>,
}

impl Service<u32> for Gate {
    type Response = Option<JobId>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Option<JobId>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.open.load(Ordering::SeqCst) {
            Poll::Ready(Ok(()))
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn call(&mut self, _: u32) -> Self::Future {
        assert!(self.open.load(Ordering::SeqCst), "called before ready");
        Box::pin(async { Ok(get::<JobId>()) })
    }
}

#[test]
fn poll_ready_is_forwarded_backpressure_included() {
    let open = Arc::new(AtomicBool::new(false));
    let mut service = job_layer().layer(Gate { open: open.clone() });
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);

    // The inner service is not ready: neither is the layered one.
    assert!(service.poll_ready(&mut cx).is_pending());
    assert!(service.ready().now_or_never().is_none());

    open.store(true, Ordering::SeqCst);
    assert!(matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    let seen = block_on(service.call(4)).unwrap();
    assert_eq!(seen, Some(JobId(4)));
}

#[derive(Debug, PartialEq)]
struct Refused(u32, Option<JobId>);

#[test]
fn errors_pass_through_unchanged() {
    let service = job_layer().layer(service_fn(|job: u32| async move {
        if job % 2 == 1 {
            Err(Refused(job, get::<JobId>()))
        } else {
            Ok(job)
        }
    }));
    // The error type is the inner service's own.
    let error: Refused = block_on(service.clone().oneshot(3)).unwrap_err();
    assert_eq!(error, Refused(3, Some(JobId(3))));
    assert_eq!(block_on(service.oneshot(2)), Ok(2));
}

#[test]
fn a_panicking_make_fails_that_call_and_leaves_no_store() {
    let layer = StoreLayer::new(|job: &u32| {
        assert_ne!(*job, 13, "make refuses job 13");
        JobId(*job)
    });
    let mut service = layer.layer(service_fn(|_: u32| async {
        Ok::<_, Infallible>(get::<JobId>())
    }));

    async_local_storage::scope(JobId(0), || {
        let panicked = catch_unwind(AssertUnwindSafe(|| service.call(13)));
        assert!(panicked.is_err());
        // The outer store is current again, not a half-installed one.
        assert_eq!(get::<JobId>(), Some(JobId(0)));
    });
    assert_eq!(get::<JobId>(), None);

    // The service still works for the next request.
    assert_eq!(block_on(service.oneshot(14)), Ok(Some(JobId(14))));
}

#[test]
fn a_panicking_inner_call_leaves_no_store() {
    let mut service = job_layer().layer(service_fn(|job: u32| {
        assert_ne!(job, 13, "the inner service refuses job 13");
        async { Ok::<_, Infallible>(()) }
    }));
    assert!(catch_unwind(AssertUnwindSafe(|| service.call(13))).is_err());
    assert_eq!(get::<JobId>(), None);
}

#[test]
fn clone_and_debug() {
    let layer = job_layer();
    let debug = format!("{:?}", layer.clone());
    assert!(debug.starts_with("StoreLayer"), "{debug}");

    let service = StoreService::new(7u8, |_: &()| JobId(1));
    let debug = format!("{:?}", service.clone());
    assert!(debug.starts_with("StoreService { inner: 7"), "{debug}");
    assert_eq!(*service.get_ref(), 7);
}
