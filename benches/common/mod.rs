//! Shared pieces of the benchmarks: the leaf future, the executor-like poll
//! loop, the criterion settings, and the ratio summary printed after a run.
//!
//! Every bench binary includes this module with `mod common;` and uses only
//! part of it.
#![allow(dead_code)]

use std::fs;
use std::future::Future;
use std::hint::black_box;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};

/// How many times the leaf future returns `Pending` before `Ready`.
pub(crate) const PENDING: u32 = 10_000;

/// Polls per run of a leaf future: `PENDING` times `Pending`, once `Ready`.
/// Every poll benchmark reports `Throughput::Elements(POLLS)`, so that
/// time per poll = time per iteration / `POLLS`.
pub(crate) const POLLS: u64 = PENDING as u64 + 1;

/// A future that wakes itself and returns `Pending` `left` times, then
/// `Ready(())`: the cheapest possible inner future, so that what wraps it
/// is what gets measured.
#[derive(Debug)]
pub(crate) struct Leaf {
    left: u32,
}

impl Leaf {
    /// A leaf that is polled `PENDING + 1` times.
    pub(crate) fn new() -> Leaf {
        Leaf {
            left: black_box(PENDING),
        }
    }
}

impl Future for Leaf {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.left == 0 {
            return Poll::Ready(());
        }
        self.left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The minimal executor: polls `fut` through `Pin<&mut dyn Future>` (as an
/// executor polls a type-erased task) with a no-op waker until it is ready,
/// and returns the number of polls.
///
/// `black_box` on the trait object keeps the compiler from seeing through
/// the virtual call, so the loop cannot be fused with the future's body.
#[inline(never)]
pub(crate) fn drive(fut: Pin<&mut dyn Future<Output = ()>>) -> u64 {
    let mut fut = black_box(fut);
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    let mut polls = 0;
    loop {
        polls += 1;
        if fut.as_mut().poll(&mut cx).is_ready() {
            return polls;
        }
    }
}

/// Builds a future with `make`, pins it on the stack and drives it to
/// completion: one benchmark iteration of the no-runtime group.
///
/// Building the future (including a 4 KiB value) is part of the iteration;
/// over `POLLS` polls it amortises to well under 0.01 ns per poll.
#[inline(always)]
pub(crate) fn run<F: Future<Output = ()>>(make: impl FnOnce() -> F) -> u64 {
    let fut = std::pin::pin!(make());
    drive(fut)
}

/// The criterion settings shared by every benchmark: short runs (1 s warm-up,
/// 2 s measurement), so that a whole `cargo bench` takes a few minutes.
pub(crate) fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args()
}

/// Starts a group whose every benchmark runs `elements` operations (polls,
/// reads, spawns) per iteration.
pub(crate) fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
    elements: u64,
) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(elements));
    group
}

/// Prints, for each of `groups`, the time per element of every benchmark
/// measured by this run and its ratio to the group's `bare` variant.
///
/// It reads the estimates criterion just wrote (files older than `since` are
/// skipped, so stale results of filtered-out benchmarks do not show), and
/// prints nothing in `--test`/`--list` mode. `scripts/bench_table.py` makes
/// the same table, in Markdown, from every stored result.
pub(crate) fn print_ratios(groups: &[&str], since: SystemTime) {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let Some(root) = criterion_home() else {
        return;
    };
    let mut printed_header = false;
    for group in groups {
        let results = group_results(&root.join(sanitize(group)), since);
        if results.is_empty() {
            continue;
        }
        if !printed_header {
            println!(
                "\n{:<28} {:<48} {:>10} {:>9}",
                "group", "variant", "ns/op", "x bare"
            );
            printed_header = true;
        }
        // Each row is compared to the nearest `bare*` row above it (a group
        // may compare several things), else to the group's first one.
        let mut bare = results
            .iter()
            .find(|r| r.variant.starts_with("bare"))
            .map(|r| r.ns);
        for r in &results {
            if r.variant.starts_with("bare") {
                bare = Some(r.ns);
            }
            let ratio = match bare {
                Some(bare) if bare > 0.0 => format!("{:.2}", r.ns / bare),
                _ => "-".to_owned(),
            };
            println!(
                "{:<28} {:<48} {:>10.2} {:>9}",
                group, r.variant, r.ns, ratio
            );
        }
    }
    if printed_header {
        println!("(ns/op = median time per iteration / elements per iteration; Markdown: python3 scripts/bench_table.py)");
    }
}

struct Measured {
    variant: String,
    ns: f64,
    written: SystemTime,
}

/// Where criterion writes: the same rule criterion applies.
fn criterion_home() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(PathBuf::from(home));
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(target).join("criterion"));
    }
    // `cargo bench` runs bench binaries from the package root.
    let local = PathBuf::from("target/criterion");
    local.is_dir().then_some(local)
}

/// Criterion's directory names: a few characters replaced by `_`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '?' | '"' | '/' | '\\' | '*' | '<' | '>' | ':' | '|' | '^' => '_',
            c => c,
        })
        .collect()
}

fn group_results(dir: &std::path::Path, since: SystemTime) -> Vec<Measured> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let new = entry.path().join("new");
        let (Ok(bench), Ok(estimates)) = (
            fs::read_to_string(new.join("benchmark.json")),
            fs::read_to_string(new.join("estimates.json")),
        ) else {
            continue;
        };
        let Ok(written) = fs::metadata(new.join("estimates.json")).and_then(|m| m.modified())
        else {
            continue;
        };
        if written < since {
            continue;
        }
        let (Some(variant), Some(mean)) = (
            json_string(&bench, "function_id"),
            json_number(after(&estimates, "\"median\""), "point_estimate"),
        ) else {
            continue;
        };
        let elements = json_number(after(&bench, "\"throughput\""), "Elements").unwrap_or(1.0);
        out.push(Measured {
            variant,
            ns: mean / elements,
            written,
        });
    }
    // Criterion measures in definition order: keep it.
    out.sort_by_key(|m| m.written);
    out
}

/// The text after the first occurrence of `key` (or nothing).
fn after<'a>(json: &'a str, key: &str) -> &'a str {
    json.find(key).map_or("", |i| &json[i + key.len()..])
}

/// The first `"key":"value"` string in `json`. Criterion's ids need no
/// unescaping beyond `\"` and `\\`, which the benchmarks do not use.
fn json_string(json: &str, key: &str) -> Option<String> {
    let rest = after(json, &format!("\"{key}\":")).trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

/// The first `"key":number` in `json`.
fn json_number(json: &str, key: &str) -> Option<f64> {
    let rest = after(json, &format!("\"{key}\":")).trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Four store types, for the nesting and depth benchmarks (stores are found
/// by type, so each layer needs its own).
#[derive(Clone, Copy)]
pub(crate) struct A(pub(crate) u64);
#[derive(Clone, Copy)]
pub(crate) struct B(pub(crate) u64);
#[derive(Clone, Copy)]
pub(crate) struct C(pub(crate) u64);
#[derive(Clone, Copy)]
pub(crate) struct D(pub(crate) u64);

/// `f` inside four nested scopes of the `u64` newtypes (`A` outermost):
/// four stores visible, as `nested4` installs them around a future.
pub(crate) fn scopes4<R>(f: impl FnOnce() -> R) -> R {
    use async_local_storage::scope;
    scope(A(1), || scope(B(2), || scope(C(3), || scope(D(4), f))))
}

/// `fut` inside four nested `with_store` layers of the `u64` newtypes (`A`
/// innermost).
pub(crate) fn stores4<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    use async_local_storage::WithStore;
    fut.with_store(black_box(A(1)))
        .with_store(black_box(B(2)))
        .with_store(black_box(C(3)))
        .with_store(black_box(D(4)))
}

/// The leaf inside four nested `with_store` layers of different types.
pub(crate) fn nested4() -> impl Future<Output = ()> {
    stores4(Leaf::new())
}

/// The interleaved mode of the benches on thread pools and servers
/// (`ALS_*_INTERLEAVED`): runs `round(i)` for each variant `i` in
/// `0..variants`, in turn, `rounds` times, and returns each variant's round
/// results (ns per operation), sorted, for the fastest and the median. On a
/// shared machine the interleaving exposes every variant to the same load,
/// where criterion measures one variant after another.
///
/// Each round runs the variants in a new random order (a fixed seed), so
/// that every variant follows every other about equally often. A round
/// leaves state behind that the next one inherits (the allocator's free
/// lists hold chunks of the sizes the last variant freed); in a fixed order
/// a variant always inherits the same neighbour's, and two runs of the
/// same code measured up to 8% apart on tokio, 34% on async-std.
pub(crate) fn interleave(
    rounds: usize,
    variants: usize,
    mut round: impl FnMut(usize) -> f64,
) -> Vec<Vec<f64>> {
    let mut times = vec![Vec::with_capacity(rounds); variants];
    let mut order: Vec<usize> = (0..variants).collect();
    // xorshift64: any fixed sequence that is not periodic in `variants`.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..rounds {
        for i in (1..variants).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        for &i in &order {
            times[i].push(round(i));
        }
    }
    for t in &mut times {
        t.sort_by(f64::total_cmp);
    }
    times
}

/// A bench binary's `main`: runs `bench` with the shared criterion settings,
/// then prints each of `groups`' ratios to its `bare` variant.
pub(crate) fn main(groups: &[&str], bench: impl FnOnce(&mut Criterion)) {
    let start = SystemTime::now();
    let mut c = criterion();
    bench(&mut c);
    c.final_summary();
    print_ratios(groups, start);
}

pin_project_lite::pin_project! {
    /// `inner` made `P` larger and otherwise the same: spawned, what the
    /// runtime itself charges for a larger task, with nothing captured or
    /// restored. The floor under any way of carrying stores inside the
    /// task: an adapter's task is 16 bytes larger with one word-sized store
    /// (its meta pointer and value), 104 with four (a snapshot).
    pub(crate) struct Padded<F, P> {
        #[pin]
        inner: F,
        words: P,
    }
}

impl<F: Future, P> Future for Padded<F, P> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

/// `inner` in a [`Padded`] of `P`, zeroed where the optimizer cannot see it.
pub(crate) fn padded<P: Default, F: Future>(inner: F) -> Padded<F, P> {
    Padded {
        inner,
        words: black_box(P::default()),
    }
}
