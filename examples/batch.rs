//! Batch processing where every log line knows which item it belongs to.
//!
//! ```text
//! cargo run --example batch --features tokio              # default seed
//! cargo run --example batch --features tokio -- --seed 7  # another set of failures
//! ```
//!
//! Twenty items are processed concurrently on a multi-threaded tokio
//! runtime. Each item's task is wrapped once with its index
//! (`.with_store(ItemIndex(i))`); the nested functions
//! (`process_item` -> `load` -> `transform` -> `save`) and the `log` helper
//! read it back from the store, so no signature carries it. Some items fail;
//! the error records the item it was raised in, and the error handler names
//! it.
//!
//! Delays and failures come from a seeded PRNG keyed by (seed, item, stage),
//! so a seed fails the same items on every run: the interleaving of the lines
//! changes from run to run, the outcome does not.

mod batch_scenario;

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_local_storage::{get, WithStore};
use batch_scenario::{dice, expected_failure, fails, parse_seed, Stage, DEFAULT_SEED, ITEMS, SEED};

// ---------------------------------------------------------------------------
// The context: one store per item task.
// ---------------------------------------------------------------------------

/// The store: the index of the item the current task is working on.
///
/// Stores are looked up by type, so the index gets its own type rather than
/// a bare `usize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ItemIndex(usize);

/// The item being processed by whatever task is polling this code, if any.
fn current_item() -> Option<usize> {
    get::<ItemIndex>().map(|ItemIndex(index)| index)
}

/// Every line logged, with the item it was attributed to: `main` checks the
/// attribution at the end.
static LOG: Mutex<Vec<(Option<usize>, String)>> = Mutex::new(Vec::new());

/// Logs a line prefixed with the current item, which it takes from the store.
fn log(message: impl fmt::Display) {
    let item = current_item();
    let message = message.to_string();
    match item {
        Some(index) => println!("[item {index:>2}] {message}"),
        None => println!("[batch   ] {message}"),
    }
    LOG.lock().unwrap().push((item, message));
}

// ---------------------------------------------------------------------------
// The work: nested async functions, none of which takes the index.
// ---------------------------------------------------------------------------

/// Runs one item and handles its failure, inside the item's task.
async fn run_item(name: &'static str) -> Result<usize, ItemError> {
    let result = process_item(name).await;
    if let Err(error) = &result {
        on_error(error);
    }
    result
}

/// The error handler. It is passed the error, not the item: it finds out
/// which item failed from the store, like every other function here.
fn on_error(error: &ItemError) {
    // The error was raised deeper in this same task, so it names this item.
    assert_eq!(error.item, current_item(), "an error crossed tasks");
    log(format_args!("FAILED: {error}"));
}

async fn process_item(name: &'static str) -> Result<usize, ItemError> {
    log(format_args!("processing {name}"));
    let records = load(name).await?;
    let output = transform(records).await?;
    save(&output).await?;
    log(format_args!("done: {} records saved", output.len()));
    Ok(output.len())
}

async fn load(name: &str) -> Result<Vec<u64>, ItemError> {
    let (delay, fails) = chaos(Stage::Load);
    tokio::time::sleep(delay).await; // other items run meanwhile, maybe on another thread
    if fails {
        return Err(ItemError::new(
            Stage::Load,
            format!("connection reset while reading {name}.csv"),
        ));
    }
    let records: Vec<u64> = (1..=name.len() as u64).collect();
    log(format_args!(
        "loaded {} records from {name}.csv in {delay:?}",
        records.len()
    ));
    Ok(records)
}

async fn transform(records: Vec<u64>) -> Result<Vec<u64>, ItemError> {
    // `join!` polls both halves inside this task, so both see the store.
    let half = records.len() / 2;
    let (front, back) = tokio::join!(
        transform_part("front", &records[..half]),
        transform_part("back", &records[half..]),
    );
    let mut output = front?;
    output.extend(back?);
    Ok(output)
}

async fn transform_part(part: &str, records: &[u64]) -> Result<Vec<u64>, ItemError> {
    let (delay, fails) = chaos(Stage::Transform);
    tokio::time::sleep(delay).await;
    // Only the back half fails, so each item fails at most once here.
    if fails && part == "back" {
        let line = records.first().copied().unwrap_or(0);
        return Err(ItemError::new(
            Stage::Transform,
            format!("malformed record on line {line}"),
        ));
    }
    log(format_args!(
        "transformed the {part} half ({} of the records)",
        records.len()
    ));
    Ok(records.iter().map(|r| r * r).collect())
}

async fn save(output: &[u64]) -> Result<(), ItemError> {
    let (delay, fails) = chaos(Stage::Save);
    tokio::time::sleep(delay).await;
    if fails {
        return Err(ItemError::new(Stage::Save, "disk quota exceeded"));
    }
    log(format_args!(
        "saved checksum {}",
        output.iter().sum::<u64>()
    ));
    Ok(())
}

// ---------------------------------------------------------------------------
// Errors that remember where they were raised.
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct ItemError {
    /// The item whose task raised the error, read from the store when the
    /// error was made: it survives the trip out of the task.
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
// Deterministic chaos: delays and failures from a seeded PRNG.
// The PRNG, the stages and the seed are shared with the other batch example
// (batch_scenario/mod.rs); here, a stage costs its item a delay.
// ---------------------------------------------------------------------------

/// The delay and the outcome of `stage` for the current item (from the store).
fn chaos(stage: Stage) -> (Duration, bool) {
    let seed = *SEED.get().expect("seed is set in main");
    let item = current_item().expect("chaos() runs inside an item task");
    let delay = Duration::from_millis(1 + dice(seed, item, stage, 1) % 20);
    (delay, fails(seed, item, stage))
}

// ---------------------------------------------------------------------------
// main: spawn the items, collect the outcomes, check the invariants.
// ---------------------------------------------------------------------------

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let seed = parse_seed("batch --features tokio");
    SEED.set(seed).unwrap();
    log(format_args!(
        "{} items, seed {seed} (change it with `-- --seed N`)",
        ITEMS.len()
    ));

    // One task per item. The store is attached to the item's future itself,
    // so it travels with it into `tokio::spawn` and is visible on whichever
    // worker thread polls it. (`tokio::spawn` does not carry the *spawner's*
    // stores: use `async_local_storage::adapters::tokio::spawn` for that.)
    let tasks: Vec<_> = ITEMS
        .iter()
        .enumerate()
        .map(|(index, &name)| tokio::spawn(run_item(name).with_store(ItemIndex(index))))
        .collect();

    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for (index, task) in tasks.into_iter().enumerate() {
        match task.await.expect("item task panicked") {
            Ok(_records) => ok.push(index),
            Err(error) => failed.push((index, error)),
        }
    }

    // Back outside every item: no store is visible here.
    assert_eq!(current_item(), None);

    println!();
    println!(
        "summary (seed {seed}): {} ok, {} failed",
        ok.len(),
        failed.len()
    );
    let names: Vec<String> = ok.iter().map(|&i| format!("{i} {}", ITEMS[i])).collect();
    println!("  ok:     {}", names.join(", "));
    for (_, error) in &failed {
        // The error itself knows which item it came from.
        let item = error.item.expect("errors are raised inside items");
        println!("  failed: item {item} ({}): {error}", ITEMS[item]);
    }

    check_invariants(seed, &ok, &failed);
    println!("\ninvariants hold: every line and every error names the right item");
}

/// The example checks itself, so CI catches a regression.
fn check_invariants(seed: u64, ok: &[usize], failed: &[(usize, ItemError)]) {
    // Each error names the item whose task raised it, and failures are the
    // ones the seed predicts: deterministic whatever the scheduling.
    for (index, error) in failed {
        assert_eq!(
            error.item,
            Some(*index),
            "error attributed to the wrong item"
        );
        assert_eq!(expected_failure(seed, *index), Some(error.stage));
    }
    for &index in ok {
        assert_eq!(expected_failure(seed, index), None);
    }
    assert_eq!(ok.len() + failed.len(), ITEMS.len());
    if seed == DEFAULT_SEED {
        // The default run demonstrates both outcomes.
        assert!(!ok.is_empty() && !failed.is_empty());
    }

    // Every item logged "processing <its own name>" exactly once, attributed
    // to its own index: no line was logged with another task's store.
    let log = LOG.lock().unwrap();
    for (index, name) in ITEMS.iter().enumerate() {
        let expected = format!("processing {name}");
        let lines: Vec<_> = log.iter().filter(|(_, line)| *line == expected).collect();
        assert_eq!(lines.len(), 1, "{expected:?} logged {} times", lines.len());
        assert_eq!(
            lines[0].0,
            Some(index),
            "{expected:?} attributed to the wrong item"
        );
    }
    // Each failed item logged exactly one failure report, its own; the
    // others logged none.
    let reports: Vec<_> = log
        .iter()
        .filter(|(_, line)| line.starts_with("FAILED: "))
        .collect();
    assert_eq!(reports.len(), failed.len());
    for (index, error) in failed {
        let report = format!("FAILED: {error}");
        assert!(reports.contains(&&(Some(*index), report)));
    }
}
