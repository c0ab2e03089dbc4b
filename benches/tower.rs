//! Group `tower`: the per-request cost of `HttpStoreLayer` on an axum
//! router, against the same router without it.
//!
//! One iteration sends one `GET /` through `Router::oneshot` in process (no
//! sockets, no runtime: a trivial handler never waits, so a poll loop with a
//! no-op waker drives it) and reads the whole response body, because the
//! layer's work is spread over the call, the response future and the body.
//! Variants:
//!
//! * `bare`: the router alone;
//! * `HttpStoreLayer`: the router with `.layer(HttpStoreLayer::new(..))`
//!   (store installed for the call, the response future and every body
//!   frame);
//! * `StoreLayer`: the tower layer (no body wrapper), for comparison;
//! * `from_fn + with_store`: the hand-written axum middleware the layer
//!   replaces (`next.run(req).with_store(id)`; no body wrapper);
//! * `no-op layer`: `Router::layer` with a layer that does nothing
//!   (`MapRequestLayer` with the identity): what axum charges for any layer
//!   (it boxes the layered route and the response body);
//! * `HttpStoreLayer around the Router`: `HttpStoreLayer::new(..).layer(router)`,
//!   the layer's own cost without axum's per-layer boxing.
//!
//! `make` returns a constant id, so the figures are the layer's own cost,
//! not the cost of parsing a header. Time per request.
//!
//! Run: `cargo bench --all-features --bench tower`. On a loaded machine,
//! `ALS_TOWER_INTERLEAVED=30 cargo bench --all-features --bench tower` runs
//! the variants in turn instead, timed with the thread's CPU clock, and
//! prints each one's fastest and median round against `bare`.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll};

use async_local_storage::adapters::http::HttpStoreLayer;
use async_local_storage::adapters::tower::StoreLayer;
use async_local_storage::{get, WithStore};
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get as route;
use axum::Router;
use criterion::Criterion;
use http_body_util::BodyExt;
use tower::util::MapRequestLayer;
use tower::{Layer, ServiceExt};

mod common;

const GROUPS: [&str; 1] = ["tower"];

#[derive(Clone, Copy)]
#[allow(dead_code)] // read through `get` only
struct RequestId(u64);

async fn handler() -> &'static str {
    // Read the store, as a real handler would (`None` on the bare router).
    black_box(get::<RequestId>());
    "ok"
}

fn routes() -> Router {
    Router::new().route("/", route(handler))
}

async fn hand_written(request: Request, next: Next) -> Response {
    next.run(request).with_store(RequestId(black_box(7))).await
}

/// Drives `fut` to completion with a no-op waker.
fn drive<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    loop {
        if let Poll::Ready(output) = fut.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// One request through `service`, body read to the end; returns its length.
fn one_request<S, B>(service: &S) -> usize
where
    S: tower::Service<Request, Response = http::Response<B>, Error = std::convert::Infallible>
        + Clone,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    drive(async {
        let request = Request::builder().uri("/").body(Body::empty()).unwrap();
        let response = service.clone().oneshot(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "ok");
        body.len()
    })
}

type Variant = (&'static str, Box<dyn Fn() -> usize>);

/// Every variant: its name and one request through it.
fn variants() -> Vec<Variant> {
    let bare = routes();
    let http = routes().layer(HttpStoreLayer::new(|_: &Request| RequestId(black_box(7))));
    let noop = routes().layer(MapRequestLayer::new(|request: Request| request));
    let outside = HttpStoreLayer::new(|_: &Request| RequestId(black_box(7))).layer(routes());
    let tower = routes().layer(StoreLayer::new(|_: &Request| RequestId(black_box(7))));
    let from_fn = routes().layer(middleware::from_fn(hand_written));
    vec![
        (
            "bare: axum router, no layer",
            Box::new(move || one_request(&bare)),
        ),
        ("HttpStoreLayer", Box::new(move || one_request(&http))),
        (
            "no-op layer (axum's cost of any Router::layer)",
            Box::new(move || one_request(&noop)),
        ),
        (
            "HttpStoreLayer around the Router (Layer::layer)",
            Box::new(move || one_request(&outside)),
        ),
        (
            "StoreLayer (tower; body not covered)",
            Box::new(move || one_request(&tower)),
        ),
        (
            "from_fn + with_store (body not covered)",
            Box::new(move || one_request(&from_fn)),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let mut g = common::group(c, GROUPS[0], 1);
    for (name, run) in variants() {
        g.bench_function(name, |b| b.iter(&run));
    }
    g.finish();
}

fn main() {
    if let Some(rounds) = std::env::var("ALS_TOWER_INTERLEAVED")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        return interleaved(rounds);
    }
    common::main(&GROUPS, bench);
}

/// This thread's CPU time in ns (`CLOCK_THREAD_CPUTIME_ID`: it leaves out the
/// time other processes had the core).
#[cfg(unix)]
fn cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Wall time where there is no thread CPU clock.
#[cfg(not(unix))]
fn cpu_ns() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}

/// `ALS_TOWER_INTERLEAVED=<rounds> cargo bench --all-features --bench tower`:
/// instead of criterion, runs the variants in turn, `rounds` times, 5,000
/// requests each, and prints each variant's fastest round and median round
/// per request, in CPU time of this thread. On a shared, loaded machine the
/// interleaving exposes every variant to the same load, CPU time leaves out
/// the time other processes ran, and the fastest round is the least
/// disturbed one.
fn interleaved(rounds: usize) {
    const REQUESTS: u32 = 5_000;
    let variants = variants();
    let times = common::interleave(rounds, variants.len(), |i| {
        let start = cpu_ns();
        for _ in 0..REQUESTS {
            black_box((variants[i].1)());
        }
        (cpu_ns() - start) as f64 / f64::from(REQUESTS)
    });
    let stats: Vec<(f64, f64)> = times.iter().map(|t| (t[0], t[t.len() / 2])).collect();
    println!(
        "{:<52} {:>9} {:>7} {:>11} {:>7}",
        "variant", "min ns", "x bare", "median ns", "x bare"
    );
    for ((name, _), (min, median)) in variants.iter().zip(&stats) {
        println!(
            "{name:<52} {min:>9.1} {:>7.3} {median:>11.1} {:>7.3}",
            min / stats[0].0,
            median / stats[0].1
        );
    }
}
