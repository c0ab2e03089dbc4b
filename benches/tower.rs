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
//!   replaces (`next.run(req).with_store(id)`; no body wrapper).
//!
//! `make` returns a constant id, so the figures are the layer's own cost,
//! not the cost of parsing a header. Time per request.
//!
//! Run: `cargo bench --all-features --bench tower`.

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
use tower::ServiceExt;

mod common;

const GROUPS: [&str; 1] = ["tower"];

#[derive(Clone, Copy)]
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

/// One request through `router`, body read to the end; returns its length.
fn one_request(router: &Router) -> usize {
    drive(async {
        let request = Request::builder().uri("/").body(Body::empty()).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "ok");
        body.len()
    })
}

fn bench(c: &mut Criterion) {
    let bare = routes();
    let http = routes().layer(HttpStoreLayer::new(|_: &Request| RequestId(black_box(7))));
    let tower = routes().layer(StoreLayer::new(|_: &Request| RequestId(black_box(7))));
    let from_fn = routes().layer(middleware::from_fn(hand_written));

    let mut g = common::group(c, GROUPS[0], 1);
    g.bench_function("bare: axum router, no layer", |b| {
        b.iter(|| one_request(&bare))
    });
    g.bench_function("HttpStoreLayer", |b| b.iter(|| one_request(&http)));
    g.bench_function("StoreLayer (tower; body not covered)", |b| {
        b.iter(|| one_request(&tower))
    });
    g.bench_function("from_fn + with_store (body not covered)", |b| {
        b.iter(|| one_request(&from_fn))
    });
    g.finish();
}

fn main() {
    common::main(&GROUPS, bench);
}
