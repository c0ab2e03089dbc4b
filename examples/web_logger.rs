//! A per-request logger for an axum server, without passing it around.
//!
//! ```text
//! cargo run --example web_logger --features tokio                  # serve on 127.0.0.1:3000 until Ctrl-C
//! curl -i http://127.0.0.1:3000/work/hello                         # (in another terminal)
//! cargo run --example web_logger --features tokio -- --self-test   # send itself 20 concurrent requests and check the logs
//! ```
//!
//! A middleware gives each request an id, builds a `RequestLogger` (request
//! id, method, path) and runs the rest of the request with it in the store.
//! Handlers and the helpers they call, however deep, get it back with
//! `logger()`; outside a request the same call returns a background logger.
//! Lines go through `tracing`, so each one carries the request's fields:
//!
//! ```text
//! INFO db: loaded account acct-7 for token03 request_id=5 method=GET path=/work/token03
//! ```
//!
//! With `--self-test` the example binds a free loopback port, sends itself
//! concurrent requests, and checks that every log line produced for a request
//! carries that request's id and no other. It exits with 0 when they all do.

use std::fmt;
use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_local_storage::{get, WithStore};
use axum::extract::{Path, Request};
use axum::http::{HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get as route_get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------
// The logger, and how code finds it.
// ---------------------------------------------------------------------------

/// The store: a logger that stamps every line with the request's fields.
///
/// Cloning it is cheap (an `Arc`), which matters because `logger()` clones
/// it out of the store on every call.
#[derive(Clone, Debug, Default)]
struct RequestLogger {
    /// `None` for the background logger used outside requests.
    request: Option<Arc<RequestInfo>>,
}

#[derive(Debug)]
struct RequestInfo {
    id: u64,
    method: Method,
    path: String,
}

impl RequestLogger {
    fn for_request(id: u64, method: Method, path: String) -> Self {
        RequestLogger {
            request: Some(Arc::new(RequestInfo { id, method, path })),
        }
    }

    fn request_id(&self) -> Option<u64> {
        self.request.as_ref().map(|request| request.id)
    }

    fn info(&self, message: impl fmt::Display) {
        match &self.request {
            Some(r) => {
                tracing::info!(request_id = r.id, method = %r.method, path = %r.path, "{message}")
            }
            None => tracing::info!("{message}"),
        }
    }
}

/// The logger of the request being handled, or the background logger when
/// called outside a request (at startup, in a background job...).
fn logger() -> RequestLogger {
    get::<RequestLogger>().unwrap_or_default()
}

// ---------------------------------------------------------------------------
// The middleware: one id and one logger per request.
// ---------------------------------------------------------------------------

static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static MAX_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

async fn with_request_logger(request: Request, next: Next) -> Response {
    let id = NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed);
    let request_logger = RequestLogger::for_request(
        id,
        request.method().clone(),
        request.uri().path().to_owned(),
    );

    let mut response = async move {
        let in_flight = IN_FLIGHT.fetch_add(1, Ordering::Relaxed) + 1;
        MAX_IN_FLIGHT.fetch_max(in_flight, Ordering::Relaxed);
        let started = Instant::now();
        logger().info(format_args!("started ({in_flight} in flight)"));

        // The handler, its helpers and every other layer below run inside
        // this future, so they all see the store. (A streaming body is
        // polled by the server after this returns, outside the store.)
        let response = next.run(request).await;

        // A demo gauge: a request cancelled mid-way is not subtracted.
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
        logger().info(format_args!(
            "finished: {} in {:?}",
            response.status(),
            started.elapsed()
        ));
        response
    }
    .with_store(request_logger)
    .await;

    // Hand the id to the client too, so a bug report can quote it.
    response
        .headers_mut()
        .insert("x-request-id", HeaderValue::from(id));
    response
}

// ---------------------------------------------------------------------------
// Handlers and nested helpers: none of them takes a logger or a request id.
// ---------------------------------------------------------------------------

fn app() -> Router {
    Router::new()
        .route("/", route_get(index))
        .route("/work/{token}", route_get(work))
        .layer(middleware::from_fn(with_request_logger))
}

async fn index() -> &'static str {
    logger().info("index");
    "try GET /work/<anything>\n"
}

async fn work(Path(token): Path<String>) -> String {
    logger().info(format_args!("handler: working on {token}"));
    let account = lookup_account(&token).await;
    let score = compute_score(&token).await;
    let id = logger()
        .request_id()
        .expect("handlers run inside a request");
    format!("{token}: account {account}, score {score} (request {id})\n")
}

/// A pretend database call: it waits, so other requests run meanwhile (on
/// this thread or another), and then logs.
async fn lookup_account(key: &str) -> String {
    tokio::time::sleep(pseudo_random_delay(key)).await;
    let account = format!("acct-{}", key.len());
    logger().info(format_args!("db: loaded account {account} for {key}"));
    account
}

async fn compute_score(key: &str) -> u64 {
    tokio::task::yield_now().await; // let other requests interleave here too
    let score = key.bytes().map(u64::from).sum();
    logger().info(format_args!("scoring: {key} scored {score}"));
    score
}

/// A delay of 5 to 24 ms that depends on `key` only.
fn pseudo_random_delay(key: &str) -> Duration {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    Duration::from_millis(5 + hash % 20)
}

// ---------------------------------------------------------------------------
// main: serve, or test itself.
// ---------------------------------------------------------------------------

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [] => serve().await,
        [flag] if flag == "--self-test" => self_test().await,
        _ => {
            eprintln!("usage: cargo run --example web_logger --features tokio [-- --self-test]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("web_logger: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> io::Result<()> {
    tracing_subscriber::fmt()
        .with_target(false)
        .with_ansi(io::stdout().is_terminal())
        .init();

    // Outside any request, `logger()` falls back to the background logger,
    // and the same helpers work unchanged.
    lookup_account("warm-up").await;

    let listener = TcpListener::bind("127.0.0.1:3000").await?;
    logger().info(format_args!(
        "listening on http://{0} (try: curl -i http://{0}/work/hello); Ctrl-C to stop",
        listener.local_addr()?
    ));
    axum::serve(listener, app())
        .with_graceful_shutdown(async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await?;
    logger().info("stopped");
    Ok(())
}

// ---------------------------------------------------------------------------
// --self-test: concurrent requests over loopback, then check the log lines.
// ---------------------------------------------------------------------------

const REQUESTS: usize = 20;

/// Log lines captured in memory (and echoed to stdout) for the self-test.
#[derive(Clone, Default)]
struct CapturedLines(Arc<Mutex<Vec<String>>>);

/// Buffers one event's output; hands it over as lines when dropped.
struct LineWriter {
    sink: Arc<Mutex<Vec<String>>>,
    buffer: Vec<u8>,
}

impl io::Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buffer);
        print!("{text}");
        let mut sink = self.sink.lock().unwrap();
        sink.extend(text.lines().map(str::to_owned));
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLines {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            sink: Arc::clone(&self.0),
            buffer: Vec::new(),
        }
    }
}

/// What the client saw for one request.
#[derive(Debug)]
struct Reply {
    status: u16,
    request_id: Option<u64>,
    body: String,
}

async fn self_test() -> io::Result<()> {
    let captured = CapturedLines::default();
    tracing_subscriber::fmt()
        .with_target(false)
        .with_ansi(false)
        .with_writer(captured.clone())
        .init();

    lookup_account("warm-up").await; // a helper outside any request

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    logger().info(format_args!(
        "self-test: serving on http://{addr}, sending {REQUESTS} concurrent requests"
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app())
            .with_graceful_shutdown(async {
                stopped.await.ok();
            })
            .await
    });

    // Each client picks its own token and puts it in the path; the handler
    // and its helpers log it, which is how lines are matched to requests.
    let tokens: Vec<String> = (0..REQUESTS).map(|i| format!("token{i:02}")).collect();
    let mut clients = tokio::task::JoinSet::new();
    for token in tokens.clone() {
        clients.spawn(async move {
            let reply = http_get(addr, &format!("/work/{token}")).await;
            (token, reply)
        });
    }
    let replies = tokio::time::timeout(Duration::from_secs(30), async {
        let mut replies = Vec::new();
        while let Some(joined) = clients.join_next().await {
            let (token, reply) = joined.expect("client task panicked");
            replies.push((token, reply?));
        }
        io::Result::Ok(replies)
    })
    .await
    .map_err(|_| io::Error::other("self-test: requests timed out"))??;

    stop.send(()).ok();
    server.await.expect("server task panicked")?;
    logger().info("self-test: server stopped");

    let lines = captured.0.lock().unwrap().clone();
    let problems = check(&replies, &lines);
    println!();
    if problems.is_empty() {
        println!(
            "self-test passed: {REQUESTS} concurrent requests (up to {} in flight), {} log lines, \
             each request's lines carry its own id and no other",
            MAX_IN_FLIGHT.load(Ordering::Relaxed),
            lines.len()
        );
        Ok(())
    } else {
        for problem in &problems {
            eprintln!("FAIL: {problem}");
        }
        Err(io::Error::other(format!(
            "self-test failed: {} problem(s)",
            problems.len()
        )))
    }
}

/// Checks the replies and the log lines; returns what is wrong, if anything.
fn check(replies: &[(String, Reply)], lines: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut id_of = std::collections::HashMap::new();

    // Every reply: 200, an `x-request-id` header, a body naming that same id.
    for (token, reply) in replies {
        let Some(id) = reply.request_id.filter(|_| reply.status == 200) else {
            problems.push(format!("{token}: bad reply {reply:?}"));
            continue;
        };
        if !reply.body.contains(&format!("{token}:"))
            || !reply.body.contains(&format!("(request {id})"))
        {
            problems.push(format!(
                "{token}: body {:?} does not match request {id}",
                reply.body
            ));
        }
        if let Some(other) = id_of.insert(token.as_str(), id) {
            problems.push(format!("{token}: answered twice ({other}, {id})"));
        }
    }
    let mut ids: Vec<u64> = id_of.values().copied().collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != replies.len() {
        problems.push(format!("request ids are not unique: {id_of:?}"));
    }

    // Every line: the tokens it mentions and the request ids it carries.
    let mut lines_per_token = std::collections::HashMap::new();
    let mut background = 0;
    for line in lines {
        let tokens = tokens_in(line);
        let line_ids = request_ids_in(line);
        match (tokens.as_slice(), line_ids.as_slice()) {
            // Outside a request: no id, and nothing from a request.
            ([], []) => background += 1,
            // A request's line: its token, its id, and nothing else.
            ([token], [id]) if id_of.get(token) == Some(id) => {
                *lines_per_token.entry(*token).or_insert(0) += 1;
            }
            _ => problems.push(format!(
                "line mixes requests or lacks its id (tokens {tokens:?}, ids {line_ids:?}): {line}"
            )),
        }
    }
    // Per request: started, handler, db, scoring, finished.
    for token in id_of.keys() {
        let count = lines_per_token.get(token).copied().unwrap_or(0);
        if count != 5 {
            problems.push(format!("{token}: {count} log lines, expected 5"));
        }
    }
    if background == 0 {
        problems.push("no background line (the default logger was not used)".into());
    }
    if MAX_IN_FLIGHT.load(Ordering::Relaxed) < 2 {
        problems.push("requests never overlapped: nothing was tested".into());
    }
    problems
}

/// The client tokens (`token07`) a line mentions, without duplicates.
fn tokens_in(line: &str) -> Vec<&str> {
    let mut tokens: Vec<&str> = line
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| {
            word.strip_prefix("token")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    tokens.sort_unstable();
    tokens.dedup();
    tokens
}

/// Every `request_id=N` field in a line.
fn request_ids_in(line: &str) -> Vec<u64> {
    line.match_indices("request_id=")
        .filter_map(|(at, key)| {
            let rest = &line[at + key.len()..];
            let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
            digits.parse().ok()
        })
        .collect()
}

/// A minimal HTTP/1.1 GET over a fresh loopback connection.
async fn http_get(addr: SocketAddr, path: &str) -> io::Result<Reply> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await?; // the server closes after replying

    let malformed = || io::Error::other(format!("malformed response: {raw:?}"));
    let (head, body) = raw.split_once("\r\n\r\n").ok_or_else(malformed)?;
    let mut head = head.lines();
    let status = head
        .next()
        .and_then(|status_line| status_line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(malformed)?;
    let request_id = head
        .filter_map(|header| header.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("x-request-id"))
        .and_then(|(_, value)| value.trim().parse().ok());
    Ok(Reply {
        status,
        request_id,
        body: body.to_owned(),
    })
}
