//! The batch scenario of `examples/batch.rs`, CPU-bound, on rayon's parallel
//! iterator: every log line knows which batch and which item it belongs to.
//!
//! ```text
//! cargo run --example batch_parallel --features rayon              # default seed
//! cargo run --example batch_parallel --features rayon -- --seed 7  # another set of failures
//! ```
//!
//! Twenty items are processed in parallel on a rayon pool of four threads.
//! The batch sets one store for the whole run (`Batch`); the parallel
//! iterator carries it to every worker with `.with_stores()`, and each item
//! adds its own (`scope(ItemIndex(i), ..)`). The nested functions
//! (`process_item` -> `load` -> `transform` -> `save`) and the `log` helper
//! read both from the stores, so no signature carries them. `transform`
//! splits its work with the adapter's `join`, so half of an item may run on
//! another thread: its lines still name the item. Some items fail; the error
//! records the item it was raised in, and the error handler names it.
//!
//! Work and failures come from a seeded PRNG keyed by (seed, item, stage),
//! so a seed fails the same items on every run: which thread runs what, and
//! the order of the lines, change from run to run; the outcome does not.

mod batch_scenario;

use std::collections::HashSet;
use std::fmt;
use std::sync::Mutex;
use std::thread::ThreadId;

use async_local_storage::adapters::rayon::{self as als, ParallelIteratorExt, ThreadPoolExt};
use async_local_storage::{get, scope};
use batch_scenario::{
    dice, expected_failure, fails, parse_seed, splitmix64, Stage, DEFAULT_SEED, ITEMS, SEED,
};
use rayon::prelude::*;

const THREADS: usize = 4;

// ---------------------------------------------------------------------------
// The context: one store for the batch, one per item.
// ---------------------------------------------------------------------------

/// The batch-wide store, set once by `main` and carried to every worker by
/// `.with_stores()`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Batch {
    name: String,
}

/// The per-item store: the index of the item the current code works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ItemIndex(usize);

/// The item being processed by whatever code runs here, if any.
fn current_item() -> Option<usize> {
    get::<ItemIndex>().map(|ItemIndex(index)| index)
}

/// One logged line: the batch and item it was attributed to (from the
/// stores), the thread it ran on, and the text.
struct Line {
    batch: Option<String>,
    item: Option<usize>,
    thread: ThreadId,
    message: String,
}

static LOG: Mutex<Vec<Line>> = Mutex::new(Vec::new());

/// Logs a line prefixed with the batch and the item, taken from the stores.
fn log(message: impl fmt::Display) {
    let batch = get::<Batch>().map(|b| b.name);
    let item = current_item();
    let message = message.to_string();
    let worker = rayon::current_thread_index().map_or("main".to_owned(), |i| format!("w{i}"));
    let batch_name = batch.as_deref().unwrap_or("-");
    match item {
        Some(index) => println!("[{batch_name} item {index:>2} @{worker:<4}] {message}"),
        None => println!("[{batch_name}         @{worker:<4}] {message}"),
    }
    LOG.lock().unwrap().push(Line {
        batch,
        item,
        thread: std::thread::current().id(),
        message,
    });
}

// ---------------------------------------------------------------------------
// The work: nested functions, none of which takes the index or the batch.
// ---------------------------------------------------------------------------

/// Runs one item and handles its failure, inside the item's scope.
fn run_item(name: &'static str) -> Result<u64, ItemError> {
    let result = process_item(name);
    if let Err(error) = &result {
        on_error(error);
    }
    result
}

/// The error handler. It is passed the error, not the item: it finds out
/// which item failed from the store, like every other function here.
fn on_error(error: &ItemError) {
    assert_eq!(error.item, current_item(), "an error crossed items");
    log(format_args!("FAILED: {error}"));
}

fn process_item(name: &'static str) -> Result<u64, ItemError> {
    log(format_args!("processing {name}"));
    let records = load(name)?;
    let output = transform(&records)?;
    let checksum = save(&output)?;
    log(format_args!("done: {} records saved", output.len()));
    Ok(checksum)
}

fn load(name: &str) -> Result<Vec<u64>, ItemError> {
    let (work, fails) = chaos(Stage::Load);
    if fails {
        return Err(ItemError::new(
            Stage::Load,
            format!("checksum mismatch in {name}.csv"),
        ));
    }
    let records: Vec<u64> = (0..work)
        .map(|r| splitmix64(r ^ name.len() as u64))
        .collect();
    log(format_args!(
        "loaded {} records from {name}.csv",
        records.len()
    ));
    Ok(records)
}

fn transform(records: &[u64]) -> Result<Vec<u64>, ItemError> {
    // The adapter's `join`: the back half may be stolen by another worker,
    // and still runs with this item's stores.
    let half = records.len() / 2;
    let (front, back) = als::join(
        || transform_part("front", &records[..half]),
        || transform_part("back", &records[half..]),
    );
    let mut output = front?;
    output.extend(back?);
    Ok(output)
}

fn transform_part(part: &str, records: &[u64]) -> Result<Vec<u64>, ItemError> {
    let (_, fails) = chaos(Stage::Transform);
    // Only the back half fails, so each item fails at most once here.
    if fails && part == "back" {
        let line = records.len();
        return Err(ItemError::new(
            Stage::Transform,
            format!("malformed record on line {line}"),
        ));
    }
    // The CPU-bound part: a few rounds of mixing per record.
    let output: Vec<u64> = records
        .iter()
        .map(|&r| (0..64).fold(r, |acc, round| splitmix64(acc ^ round)))
        .collect();
    log(format_args!(
        "transformed the {part} half ({} records)",
        records.len()
    ));
    Ok(output)
}

fn save(output: &[u64]) -> Result<u64, ItemError> {
    let (_, fails) = chaos(Stage::Save);
    if fails {
        return Err(ItemError::new(Stage::Save, "disk quota exceeded"));
    }
    let checksum = output.iter().fold(0u64, |acc, x| acc.wrapping_add(*x));
    log(format_args!("saved checksum {checksum:016x}"));
    Ok(checksum)
}

// ---------------------------------------------------------------------------
// Errors that remember where they were raised.
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct ItemError {
    /// The item whose work raised the error, read from the store when the
    /// error was made: it survives the trip out of the parallel iterator.
    item: Option<usize>,
    stage: Stage,
    reason: String,
}

impl ItemError {
    fn new(stage: Stage, reason: impl Into<String>) -> Self {
        ItemError {
            item: current_item(),
            stage,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} failed: {}", self.stage, self.reason)
    }
}

impl std::error::Error for ItemError {}

// ---------------------------------------------------------------------------
// Deterministic chaos: work sizes and failures from a seeded PRNG.
// The PRNG, the stages and the seed are shared with the other batch example
// (batch_scenario/mod.rs); here, a stage costs its item CPU work.
// ---------------------------------------------------------------------------

/// The amount of work and the outcome of `stage` for the current item (from
/// the store).
fn chaos(stage: Stage) -> (u64, bool) {
    let seed = *SEED.get().expect("seed is set in main");
    let item = current_item().expect("chaos() runs inside an item");
    let work = 2_000 + 400 * dice(seed, item, stage, 1);
    (work, fails(seed, item, stage))
}

// ---------------------------------------------------------------------------
// main: run the batch, collect the outcomes, check the invariants.
// ---------------------------------------------------------------------------

fn main() {
    let seed = parse_seed("batch_parallel --features rayon");
    SEED.set(seed).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .build()
        .unwrap();
    let batch = Batch {
        name: format!("nightly-{seed}"),
    };

    let outcomes: Vec<Result<u64, ItemError>> = scope(batch.clone(), || {
        log(format_args!(
            "{} items on {THREADS} threads, seed {seed} (change it with `-- --seed N`)",
            ITEMS.len()
        ));
        // `install_with_stores` and `.with_stores()` carry `Batch` to every
        // worker. The index is the item's own store: set once, here, and
        // read back by everything the item calls.
        pool.install_with_stores(|| {
            ITEMS
                .into_par_iter()
                .enumerate()
                .with_stores()
                .map(|(index, name)| scope(ItemIndex(index), || run_item(name)))
                .collect()
        })
    });

    // Back outside every item and the batch: no store is visible here.
    assert_eq!(current_item(), None);
    assert_eq!(get::<Batch>(), None);

    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for (index, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Ok(checksum) => ok.push((index, checksum)),
            Err(error) => failed.push((index, error)),
        }
    }

    println!();
    println!(
        "summary ({}): {} ok, {} failed",
        batch.name,
        ok.len(),
        failed.len()
    );
    let names: Vec<String> = ok
        .iter()
        .map(|&(i, _)| format!("{i} {}", ITEMS[i]))
        .collect();
    println!("  ok:     {}", names.join(", "));
    for (_, error) in &failed {
        // The error itself knows which item it came from.
        let item = error.item.expect("errors are raised inside items");
        println!("  failed: item {item} ({}): {error}", ITEMS[item]);
    }

    let threads = check_invariants(seed, &batch, &ok, &failed);
    println!(
        "\ninvariants hold: every line names its batch and the right item (work ran on {threads} threads)"
    );
}

/// The example checks itself, so CI catches a regression. Returns the
/// number of threads the items' lines came from.
fn check_invariants(
    seed: u64,
    batch: &Batch,
    ok: &[(usize, u64)],
    failed: &[(usize, ItemError)],
) -> usize {
    // Each error names the item that raised it, and the failures are the ones
    // the seed predicts, whatever the scheduling.
    for (index, error) in failed {
        assert_eq!(
            error.item,
            Some(*index),
            "error attributed to the wrong item"
        );
        assert_eq!(expected_failure(seed, *index), Some(error.stage));
    }
    for &(index, _) in ok {
        assert_eq!(expected_failure(seed, index), None);
    }
    assert_eq!(ok.len() + failed.len(), ITEMS.len());
    if seed == DEFAULT_SEED {
        // The default run demonstrates both outcomes.
        assert!(!ok.is_empty() && !failed.is_empty());
    }

    let log = LOG.lock().unwrap();
    // Every line, on every worker, was logged with the batch's store.
    for line in log.iter() {
        assert_eq!(
            line.batch.as_deref(),
            Some(batch.name.as_str()),
            "{:?} logged without the batch",
            line.message
        );
    }
    // Every item logged "processing <its own name>" exactly once, attributed
    // to its own index; both halves of each transform that ran name the item.
    for (index, name) in ITEMS.iter().enumerate() {
        let expected = format!("processing {name}");
        let lines: Vec<_> = log.iter().filter(|l| l.message == expected).collect();
        assert_eq!(lines.len(), 1, "{expected:?} logged {} times", lines.len());
        assert_eq!(
            lines[0].item,
            Some(index),
            "{expected:?} attributed to the wrong item"
        );
        let halves = log
            .iter()
            .filter(|l| l.item == Some(index) && l.message.starts_with("transformed the "))
            .count();
        let reached_transform = expected_failure(seed, index) != Some(Stage::Load);
        let back_fails = expected_failure(seed, index) == Some(Stage::Transform);
        let expected_halves = match (reached_transform, back_fails) {
            (false, _) => 0,
            (true, true) => 1,
            (true, false) => 2,
        };
        assert_eq!(halves, expected_halves, "item {index}: transform halves");
    }
    // Each failed item logged exactly one failure report, its own.
    let reports: Vec<_> = log
        .iter()
        .filter(|l| l.message.starts_with("FAILED: "))
        .collect();
    assert_eq!(reports.len(), failed.len());
    for (index, error) in failed {
        let report = format!("FAILED: {error}");
        assert!(reports
            .iter()
            .any(|l| l.item == Some(*index) && l.message == report));
    }
    log.iter()
        .filter(|l| l.item.is_some())
        .map(|l| l.thread)
        .collect::<HashSet<_>>()
        .len()
}
