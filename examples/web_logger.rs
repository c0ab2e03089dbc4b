//! Every log line of a request carries its id, without passing anything
//! around: an axum server with `HttpStoreLayer` and the `log` bridge.
//!
//! ```text
//! cargo run --example web_logger --features http,log,tokio                  # serve 127.0.0.1:3000 until Ctrl-C
//! curl -i http://127.0.0.1:3000/work/hello                                 # (in another terminal)
//! cargo run --example web_logger --features http,log,tokio -- --self-test   # 20 concurrent requests to itself, checked
//! ```
//!
//! One layer, `HttpStoreLayer::new(|_| RequestId::next())`, gives each
//! request an id and installs it as a store for everything the request runs:
//! the middleware below it, the handler and its helpers however deep, a task
//! spawned through `async_local_storage::adapters::tokio::spawn`, and the
//! streaming response body, which the server polls after the handler has
//! returned. The global logger is env_logger wrapped in a `StoreLogger`,
//! which adds `request_id=<id>` to every record logged while a `RequestId`
//! is visible:
//!
//! ```text
//! [INFO  web_logger] db: loaded account acct-7 for token03 request_id=5
//! [INFO  web_logger] chunk 2/3 of token03 request_id=5
//! [INFO  web_logger] db: loaded account acct-7 for warm-up
//! ```
//!
//! With `--self-test` the example binds a free loopback port, sends itself
//! concurrent requests, and checks that every log line produced for a request
//! (nine each, from six places) carries that request's id and no other. It
//! exits with 0 when they all do.

use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_local_storage::adapters::http::HttpStoreLayer;
use async_local_storage::adapters::log::StoreLogger;
use async_local_storage::get;
use axum::body::Body;
use axum::extract::{Path, Request};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get as route_get;
use axum::Router;
use futures::StreamExt;
use log::info;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------
// The store: one id per request.
// ---------------------------------------------------------------------------

/// The request id: the store `HttpStoreLayer` installs, and the key-value
/// `StoreLogger` adds to every record.
#[derive(Clone, Copy, Debug, PartialEq)]
struct RequestId(u64);

static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

impl RequestId {
    fn next() -> Self {
        RequestId(NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The logger: env_logger, with `request_id=<id>` added while a request's
/// store is visible. `target` replaces stderr (for the self-test).
fn install_logger(target: Option<env_logger::Target>) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if let Some(target) = target {
        builder.target(target);
    }
    let env_logger = builder.build();
    let max_level = env_logger.filter();
    StoreLogger::new(env_logger)
        .field::<RequestId>("request_id")
        .install(max_level)
        .expect("the only logger");
}

// ---------------------------------------------------------------------------
// The application: one layer for the store; nothing below it takes an id.
// ---------------------------------------------------------------------------

fn app() -> Router {
    Router::new()
        .route("/", route_get(index))
        .route("/work/{token}", route_get(work))
        // Below the store layer: it sees the request's id.
        .layer(middleware::from_fn(access_log))
        .layer(HttpStoreLayer::new(|_: &Request| RequestId::next()))
}

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static MAX_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Logs the start and end of each request and hands its id to the client
/// (`x-request-id`), so that a bug report can quote it.
async fn access_log(request: Request, next: Next) -> Response {
    let what = format!("{} {}", request.method(), request.uri().path());
    let in_flight = IN_FLIGHT.fetch_add(1, Ordering::Relaxed) + 1;
    MAX_IN_FLIGHT.fetch_max(in_flight, Ordering::Relaxed);
    let started = Instant::now();
    info!("started {what} ({in_flight} in flight)");

    let mut response = next.run(request).await;

    IN_FLIGHT.fetch_sub(1, Ordering::Relaxed); // a demo gauge: cancelled requests are not subtracted
    info!(
        "finished {what}: {} in {:?} (body still streaming)",
        response.status(),
        started.elapsed()
    );
    if let Some(id) = get::<RequestId>() {
        response
            .headers_mut()
            .insert("x-request-id", HeaderValue::from(id.0));
    }
    response
}

async fn index() -> &'static str {
    info!("index");
    "try GET /work/<anything>\n"
}

const CHUNKS: usize = 3;

async fn work(Path(token): Path<String>) -> Body {
    info!("handler: working on {token}");
    let account = lookup_account(&token).await;
    let score = compute_score(&token).await;

    // A sub-task: the adapter's spawn carries the request's store into it.
    let audit_token = token.clone();
    let audit = async_local_storage::adapters::tokio::spawn(async move {
        tokio::task::yield_now().await;
        info!("audit: {audit_token} used account {account}");
    });
    audit.await.expect("the audit task panicked");

    let id = get::<RequestId>().expect("handlers run inside a request");
    let head = format!("{token}: account score {score} (request {id})\n");
    // The body is polled by the server after this function has returned;
    // each chunk is made, and logged, then, still inside the request's store.
    let chunks = futures::stream::iter(1..=CHUNKS).then(move |k| {
        let token = token.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            info!("chunk {k}/{CHUNKS} of {token}");
            Ok::<_, io::Error>(format!("chunk {k}\n"))
        }
    });
    let head = futures::stream::once(async move { Ok::<_, io::Error>(head) });
    Body::from_stream(head.chain(chunks))
}

/// A pretend database call: it waits, so other requests run meanwhile (on
/// this thread or another), and then logs.
async fn lookup_account(key: &str) -> String {
    tokio::time::sleep(pseudo_random_delay(key)).await;
    let account = format!("acct-{}", key.len());
    info!("db: loaded account {account} for {key}");
    account
}

async fn compute_score(key: &str) -> u64 {
    tokio::task::yield_now().await; // let other requests interleave here too
    let score = key.bytes().map(u64::from).sum();
    info!("scoring: {key} scored {score}");
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
            eprintln!(
                "usage: cargo run --example web_logger --features http,log,tokio [-- --self-test]"
            );
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
    install_logger(None);

    // Outside any request the same helpers log without an id.
    lookup_account("warm-up").await;

    let listener = TcpListener::bind("127.0.0.1:3000").await?;
    info!(
        "listening on http://{0} (try: curl -i http://{0}/work/hello); Ctrl-C to stop",
        listener.local_addr()?
    );
    axum::serve(listener, app())
        .with_graceful_shutdown(async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await?;
    info!("stopped");
    Ok(())
}

// ---------------------------------------------------------------------------
// --self-test: concurrent requests over loopback, then check the log lines.
// ---------------------------------------------------------------------------

const REQUESTS: usize = 20;

/// Log lines per request: started, handler, db, scoring, audit (the spawned
/// task), finished, and one per body chunk.
const LINES_PER_REQUEST: usize = 6 + CHUNKS;

/// env_logger's output, echoed to stdout and kept, line by line.
#[derive(Clone, Default)]
struct CapturedLines(Arc<Mutex<Vec<String>>>);

impl Write for CapturedLines {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        // env_logger writes each record whole, in one call.
        let text = String::from_utf8_lossy(bytes);
        print!("{text}");
        self.0
            .lock()
            .unwrap()
            .extend(text.lines().map(str::to_owned));
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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
    install_logger(Some(env_logger::Target::Pipe(Box::new(captured.clone()))));

    lookup_account("warm-up").await; // a helper outside any request

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    info!("self-test: serving on http://{addr}, sending {REQUESTS} concurrent requests");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app())
            .with_graceful_shutdown(async {
                stopped.await.ok();
            })
            .await
    });

    // Each client picks its own token and puts it in the path; every line
    // logged for the request names it, which is how lines are matched to
    // requests.
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
    info!("self-test: server stopped");

    let lines = captured.0.lock().unwrap().clone();
    let problems = check(&replies, &lines);
    println!();
    if problems.is_empty() {
        println!(
            "self-test passed: {REQUESTS} concurrent requests (up to {} in flight), {} log lines, \
             each request's {LINES_PER_REQUEST} lines (handler, helpers, spawned task, body \
             chunks) carry its own id and no other",
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
        let chunks = (1..=CHUNKS).map(|k| format!("chunk {k}\n"));
        if !reply.body.starts_with(&format!("{token}:"))
            || !reply.body.contains(&format!("(request {id})\n"))
            || !reply.body.ends_with(&chunks.collect::<String>())
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
    for token in id_of.keys() {
        let count = lines_per_token.get(token).copied().unwrap_or(0);
        if count != LINES_PER_REQUEST {
            problems.push(format!(
                "{token}: {count} log lines, expected {LINES_PER_REQUEST}"
            ));
        }
    }
    if background == 0 {
        problems.push("no background line (logging outside a request)".into());
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

/// Every `request_id=N` key-value in a line.
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
    let headers: Vec<(&str, &str)> = head
        .filter_map(|header| header.split_once(':'))
        .map(|(name, value)| (name, value.trim()))
        .collect();
    let header = |wanted: &str| {
        headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(_, value)| *value)
    };
    let request_id = header("x-request-id").and_then(|value| value.parse().ok());
    let body = if header("transfer-encoding") == Some("chunked") {
        dechunk(body).ok_or_else(malformed)?
    } else {
        body.to_owned()
    };
    Ok(Reply {
        status,
        request_id,
        body,
    })
}

/// Decodes a chunked HTTP/1.1 body (the streaming response).
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
