//! The batch scenario that `examples/batch.rs` (tokio tasks) and
//! `examples/batch_parallel.rs` (rayon) both run: the items, the stages, the
//! seeded failures and the `--seed` argument. Nothing here touches the
//! stores; the two examples show how the item's index reaches the code that
//! logs and fails.

use std::sync::OnceLock;

/// The items of the batch.
pub(crate) const ITEMS: [&str; 20] = [
    "apple",
    "banana",
    "cherry",
    "date",
    "elderberry",
    "fig",
    "grape",
    "honeydew",
    "kiwi",
    "lemon",
    "mango",
    "nectarine",
    "orange",
    "papaya",
    "quince",
    "raspberry",
    "strawberry",
    "tangerine",
    "ugli",
    "watermelon",
];

/// The seed when none is given.
pub(crate) const DEFAULT_SEED: u64 = 42;

/// The three stages every item goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    Load,
    Transform,
    Save,
}

impl Stage {
    /// Chance that the stage fails for an item, in percent.
    pub(crate) fn failure_rate(self) -> u64 {
        match self {
            Stage::Load => 8,
            Stage::Transform => 10,
            Stage::Save => 6,
        }
    }
}

/// The seed, set once by `main`. It is process-wide configuration, so a
/// plain global is fine; the item index is per-task context: that is what
/// the store is for.
pub(crate) static SEED: OnceLock<u64> = OnceLock::new();

/// SplitMix64: a tiny, well-mixed PRNG step (no `rand` dependency needed).
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A number in `0..100` that depends only on its inputs, never on scheduling.
pub(crate) fn dice(seed: u64, item: usize, stage: Stage, salt: u64) -> u64 {
    let key = ((item as u64) << 16) | ((stage as u64) << 8) | salt;
    splitmix64(seed ^ splitmix64(key)) % 100
}

/// Whether `stage` fails for `item` under `seed`.
pub(crate) fn fails(seed: u64, item: usize, stage: Stage) -> bool {
    dice(seed, item, stage, 0) < stage.failure_rate()
}

/// The stage at which `item` is expected to fail, computed without running it.
pub(crate) fn expected_failure(seed: u64, item: usize) -> Option<Stage> {
    [Stage::Load, Stage::Transform, Stage::Save]
        .into_iter()
        .find(|&stage| fails(seed, item, stage))
}

/// The seed from `-- --seed N`, or [`DEFAULT_SEED`]; exits with a usage line
/// (naming `example`, as in `batch --features tokio`) on anything else.
pub(crate) fn parse_seed(example: &str) -> u64 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => DEFAULT_SEED,
        [flag, n] if flag == "--seed" => n.parse().unwrap_or_else(|_| usage(example)),
        _ => usage(example),
    }
}

fn usage(example: &str) -> ! {
    eprintln!("usage: cargo run --example {example} [-- --seed N]");
    std::process::exit(2)
}
