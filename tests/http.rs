//! `adapters::http::HttpStoreLayer` on a real axum server over loopback,
//! with the `log` bridge and the tokio adapter:
//! `cargo test --features http,log,tokio --test http`.
//!
//! Each client sends its own id in `x-request-id`; the layer's `make` turns
//! it into the store. The server reports, in the response body, what each
//! place saw: the handler, a helper three calls deep, a task spawned through
//! `adapters::tokio::spawn`, and each chunk of a streaming body (made when
//! the server polls the body, after the handler has returned). Every one of
//! them, and every `log` record they write, must see exactly that id.

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use async_local_storage::adapters::http::HttpStoreLayer;
use async_local_storage::adapters::log::StoreLogger;
use async_local_storage::adapters::tower::StoreLayer;
use async_local_storage::get;
use axum::body::Body;
use axum::http::{HeaderMap, Request};
use axum::routing::get as route;
use axum::Router;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TARGET: &str = "http_test";
const CHUNKS: u64 = 4;

// ---------------------------------------------------------------------------
// The store and the application.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
struct RequestId(u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The id the client sent (0 when it sent none).
fn header_id(headers: &HeaderMap) -> u64 {
    headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok()?.parse().ok())
        .unwrap_or(0)
}

impl<B> From<&Request<B>> for RequestId {
    fn from(request: &Request<B>) -> Self {
        if request.headers().contains_key("x-panic") {
            panic!("make refuses this request");
        }
        RequestId(header_id(request.headers()))
    }
}

/// What the current code sees, as text.
fn seen() -> String {
    get::<RequestId>().map_or_else(|| "none".to_owned(), |id| id.to_string())
}

async fn helper_1() -> String {
    tokio::task::yield_now().await;
    helper_2().await
}

async fn helper_2() -> String {
    tokio::time::sleep(Duration::from_millis(1)).await;
    helper_3().await
}

async fn helper_3() -> String {
    tokio::task::yield_now().await;
    log::info!(target: TARGET, "helper of {}", "deep");
    seen()
}

/// Waits until `n` requests are inside handlers at once (when set).
static GATE: OnceLock<tokio::sync::Barrier> = OnceLock::new();

/// Reports what every place saw; logs from the handler, the helper, the
/// spawned task and each chunk. Log messages name the client's id, so
/// records can be matched to requests whatever their key-values say.
async fn work(headers: HeaderMap) -> Body {
    let client = header_id(&headers);
    if let Some(gate) = GATE.get().filter(|_| (1000..2000).contains(&client)) {
        gate.wait().await; // every request is in flight at this point
    }
    log::info!(target: TARGET, "handler of client={client}");
    let handler = seen();
    let helper = helper_1().await;
    let spawned = async_local_storage::adapters::tokio::spawn(async move {
        tokio::task::yield_now().await;
        log::info!(target: TARGET, "spawned task of client={client}");
        seen()
    })
    .await
    .unwrap();

    let head = format!("handler={handler}\nhelper={helper}\nspawned={spawned}\n");
    let chunks = futures::stream::iter(0..CHUNKS).then(move |k| async move {
        tokio::task::yield_now().await;
        log::info!(target: TARGET, "chunk {k} of client={client}");
        Ok::<_, Infallible>(format!("chunk{k}={}\n", seen()))
    });
    let head = futures::stream::once(async move { Ok::<_, Infallible>(head) });
    Body::from_stream(head.chain(chunks))
}

async fn handler_panics() -> &'static str {
    panic!("the handler refuses this request");
}

/// A route outside the layer: what is visible on the thread between layered
/// requests.
async fn bare() -> String {
    seen()
}

fn routes() -> Router {
    Router::new()
        .route("/work", route(work))
        .route("/handler-panics", route(handler_panics))
}

fn with_http_layer() -> Router {
    routes()
        .layer(HttpStoreLayer::new(|req: &Request<_>| RequestId::from(req)))
        .route("/bare", route(bare))
}

// ---------------------------------------------------------------------------
// Log capture: one global logger for the whole test binary.
// ---------------------------------------------------------------------------

/// A captured record: its message and its `request_id` key-value.
#[derive(Clone, Debug)]
struct Captured {
    message: String,
    request_id: Option<String>,
}

#[derive(Default)]
struct Capture(Mutex<Vec<Captured>>);

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target() == TARGET
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let request_id = record
            .key_values()
            .get(log::kv::Key::from_str("request_id"))
            .map(|value| value.to_string());
        self.0.lock().unwrap().push(Captured {
            message: record.args().to_string(),
            request_id,
        });
    }

    fn flush(&self) {}
}

fn records() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::default());
        struct Shared(&'static Capture);
        impl log::Log for Shared {
            fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
                self.0.enabled(metadata)
            }
            fn log(&self, record: &log::Record<'_>) {
                self.0.log(record)
            }
            fn flush(&self) {}
        }
        StoreLogger::new(Shared(capture))
            .field::<RequestId>("request_id")
            .install(log::LevelFilter::Info)
            .expect("no other logger in this test binary");
        capture
    })
}

/// The captured records whose message names `client=<id>` or, for the
/// helper (whose message names nobody), any record: returns
/// `(records naming a client, problems)`.
fn check_logs(clients: &[u64], expect_ids: bool) -> (usize, Vec<String>) {
    let records = records().0.lock().unwrap().clone();
    let mut problems = Vec::new();
    let mut matched = 0;
    for record in &records {
        let Some(client) = record
            .message
            .split("client=")
            .nth(1)
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if !clients.contains(&client) {
            continue; // another test's request
        }
        matched += 1;
        let want = expect_ids.then(|| client.to_string());
        if record.request_id != want {
            problems.push(format!(
                "record {:?} has request_id {:?}, expected {want:?}",
                record.message, record.request_id
            ));
        }
    }
    (matched, problems)
}

// ---------------------------------------------------------------------------
// The server and a minimal HTTP/1.1 client.
// ---------------------------------------------------------------------------

struct Server {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

async fn serve(app: Router) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                stopped.await.ok();
            })
            .await
    });
    Server { addr, stop, task }
}

impl Server {
    async fn stop(self) {
        self.stop.send(()).ok();
        self.task.await.unwrap().unwrap();
    }
}

/// A response: `None` when the connection closed without one.
#[derive(Debug, PartialEq)]
struct Reply {
    status: u16,
    body: String,
}

async fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, String)]) -> Option<Reply> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request += &format!("{name}: {value}\r\n");
    }
    request += "\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    // A connection reset counts as "no response", like an early close.
    stream.read_to_end(&mut raw).await.ok()?;
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body).expect("malformed chunked body")
    } else {
        body.to_owned()
    };
    Some(Reply { status, body })
}

fn dechunk(mut raw: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = raw.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out += rest.get(..size)?;
        raw = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// What one request must report when every place sees `expected`.
fn expected_body(expected: &str) -> String {
    let mut body = format!("handler={expected}\nhelper={expected}\nspawned={expected}\n");
    for k in 0..CHUNKS {
        body += &format!("chunk{k}={expected}\n");
    }
    body
}

/// Sends one `/work` request per id, all at once; returns the replies.
async fn send_all(addr: SocketAddr, ids: &[u64]) -> Vec<(u64, Option<Reply>)> {
    let mut clients = tokio::task::JoinSet::new();
    for &id in ids {
        clients.spawn(async move {
            let reply = http_get(addr, "/work", &[("x-request-id", id.to_string())]).await;
            (id, reply)
        });
    }
    let mut replies = Vec::new();
    while let Some(joined) = clients.join_next().await {
        replies.push(joined.unwrap());
    }
    replies.sort_by_key(|(id, _)| *id);
    replies
}

async fn bounded<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(120), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: timed out"))
}

// ---------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------

const CONCURRENT: u64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_place_of_every_request_sees_exactly_its_own_id() {
    records();
    GATE.set(tokio::sync::Barrier::new(CONCURRENT as usize))
        .unwrap();
    let server = serve(with_http_layer()).await;
    let ids: Vec<u64> = (1000..1000 + CONCURRENT).collect();

    let replies = bounded("200 concurrent requests", send_all(server.addr, &ids)).await;
    server.stop().await;

    let mut problems = Vec::new();
    for (id, reply) in &replies {
        let want = Reply {
            status: 200,
            body: expected_body(&id.to_string()),
        };
        if reply.as_ref() != Some(&want) {
            problems.push(format!("request {id}: got {reply:?}"));
        }
    }
    // handler, spawned task, and each chunk log once per request.
    let (matched, log_problems) = check_logs(&ids, true);
    problems.extend(log_problems);
    if matched != ids.len() * (2 + CHUNKS as usize) {
        problems.push(format!("{matched} matching log records"));
    }
    // The helper's records name no client: each carries some id of this test.
    let helper_ids: Vec<Option<String>> = records()
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.message == "helper of deep")
        .map(|r| r.request_id.clone())
        .collect();
    let ours = helper_ids
        .iter()
        .filter(|id| {
            id.as_deref()
                .and_then(|id| id.parse::<u64>().ok())
                .is_some_and(|id| ids.contains(&id))
        })
        .count();
    if ours != ids.len() {
        problems.push(format!("{ours} helper records carry an id of this test"));
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_layer_nothing_sees_an_id() {
    records();
    let server = serve(routes()).await;
    let ids: Vec<u64> = (5000..5020).collect();
    let replies = bounded("requests without the layer", send_all(server.addr, &ids)).await;
    server.stop().await;

    for (id, reply) in replies {
        let reply = reply.unwrap_or_else(|| panic!("request {id}: no reply"));
        assert_eq!(reply.body, expected_body("none"), "request {id}");
    }
    let (matched, problems) = check_logs(&ids, false);
    assert_eq!(matched, ids.len() * (2 + CHUNKS as usize));
    assert!(problems.is_empty(), "{problems:?}");
}

/// The plain tower layer covers the handler but not the body: the body is
/// polled by the server after the response future is done. This is what
/// `HttpStoreLayer`'s body wrapper is for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tower_layer_alone_misses_the_streaming_body() {
    records();
    let app = routes().layer(StoreLayer::new(|req: &Request<Body>| RequestId::from(req)));
    let server = serve(app).await;
    let ids: Vec<u64> = (6000..6020).collect();
    let replies = bounded("requests with StoreLayer", send_all(server.addr, &ids)).await;
    server.stop().await;

    for (id, reply) in replies {
        let reply = reply.unwrap_or_else(|| panic!("request {id}: no reply"));
        let mut want = format!("handler={id}\nhelper={id}\nspawned={id}\n");
        for k in 0..CHUNKS {
            want += &format!("chunk{k}=none\n");
        }
        assert_eq!(reply.body, want, "request {id}");
    }
}

/// A `make` that panics fails its request the way a panicking handler does
/// (axum without a panic-catching layer: the connection is closed with no
/// response), the server keeps serving, and nothing is left installed on the
/// thread that ran it. One thread serves everything here, so "the worker
/// thread" is this test's thread.
#[tokio::test(flavor = "current_thread")]
async fn a_panicking_make_fails_only_its_request_and_leaves_no_store() {
    records();
    let server = serve(with_http_layer()).await;
    let addr = server.addr;

    let handler_panic = bounded("handler panic", http_get(addr, "/handler-panics", &[])).await;
    assert_eq!(
        handler_panic, None,
        "a panicking handler closes the connection"
    );

    let refused = [("x-request-id", "7001".into()), ("x-panic", "1".into())];
    let make_panic = bounded("make panic", http_get(addr, "/work", &refused)).await;
    assert_eq!(
        make_panic, handler_panic,
        "a panicking make fails the same way"
    );

    // The server keeps serving, layered routes and others alike.
    let next = bounded(
        "next request",
        http_get(addr, "/work", &[("x-request-id", "7002".into())]),
    )
    .await;
    assert_eq!(
        next,
        Some(Reply {
            status: 200,
            body: expected_body("7002")
        })
    );
    let bare = bounded("bare route", http_get(addr, "/bare", &[])).await;
    assert_eq!(bare.map(|reply| reply.body), Some("none".to_owned()));

    // Between polls, the thread that ran all of it has no store.
    assert_eq!(get::<RequestId>(), None);
    server.stop().await;
    assert_eq!(get::<RequestId>(), None);
}

// ---------------------------------------------------------------------------
// In process (no sockets): the body's drop, size_hint and is_end_stream.
// ---------------------------------------------------------------------------

/// A body of one frame that records what it saw when polled and dropped.
struct Probe {
    polled: Option<String>,
    seen: std::sync::Arc<Mutex<Vec<String>>>,
}

impl http_body::Body for Probe {
    type Data = axum::body::Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Infallible>>> {
        let frame = self.polled.take().map(|text| {
            self.seen
                .lock()
                .unwrap()
                .push(format!("{text}: {}", seen()));
            Ok(http_body::Frame::data(text.into()))
        });
        std::task::Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.polled.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.polled.as_ref().map_or(0, |t| t.len() as u64))
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.seen.lock().unwrap().push(format!("drop: {}", seen()));
    }
}

#[test]
fn the_body_is_polled_and_dropped_inside_the_store_and_forwards_its_hints() {
    use http_body::Body as _;
    use http_body_util::BodyExt;
    use tower::{Layer, ServiceExt};

    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let inner = tower::service_fn(move |_: Request<()>| {
        let seen = log.clone();
        async move {
            let body = Probe {
                polled: Some("frame".to_owned()),
                seen,
            };
            Ok::<_, Infallible>(http::Response::new(body))
        }
    });
    let service = HttpStoreLayer::new(|_: &Request<()>| RequestId(3)).layer(inner);

    let response = futures::executor::block_on(service.clone().oneshot(Request::new(()))).unwrap();
    let mut body = response.into_body();
    assert_eq!(body.size_hint().exact(), Some(5));
    assert!(!body.is_end_stream());
    let frame = futures::executor::block_on(body.frame()).unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "frame");
    assert_eq!(body.size_hint().exact(), Some(0));
    assert!(body.is_end_stream());
    drop(body);
    assert_eq!(*seen.lock().unwrap(), ["frame: 3", "drop: 3"]);

    // A body dropped unpolled (a client gone away) is dropped inside it too.
    seen.lock().unwrap().clear();
    let response = futures::executor::block_on(service.oneshot(Request::new(()))).unwrap();
    drop(response);
    assert_eq!(*seen.lock().unwrap(), ["drop: 3"]);
    assert_eq!(get::<RequestId>(), None);
}
