#!/usr/bin/env python3
"""Turns criterion's stored estimates into a Markdown table.

Usage (after `cargo bench --all-features`):

    python3 scripts/bench_table.py [CRITERION_DIR] [--stat median|mean|slope]
                                   [--instructions BASELINE | --no-instructions]

For every benchmark in CRITERION_DIR (default: $CRITERION_HOME, else
$CARGO_TARGET_DIR/criterion, else target/criterion) it reads
`<group>/<bench>/new/benchmark.json` and `new/estimates.json` and prints one
row: group, variant, time per element (criterion's median by default: the
statistic least moved by preemption on a shared machine), its 95% confidence
interval, and the ratio to the group's `bare*` variant (the nearest one
above the row, for groups with several).

Time per element = the estimate of one iteration / the `Elements` throughput
the benchmark declares: polls for the poll groups (10 001 per iteration),
reads for `read`, spawned tasks or captures for `spawn_*`/`capture`.

Instruction counts: the table gets a last column, "instructions", with the
callgrind count of the same operation from BASELINE (default
benches/instructions.baseline, written by `scripts/instructions.sh --update`)
for the rows that have a counterpart there (see COUNTERPARTS; the counts of
the build with every feature, as `cargo bench --all-features`), and a second
table lists every count of the baseline (those of the build without
`tracing` too, named "... [without tracing]"). Criterion times an iteration that
may include building the future (amortised over 10,001 polls) or a drop
(`capture`); the count is one operation alone (for the tokio
current-thread spawn rows, one task's spawn, poll and join, plus a
`block_on` and its parent's poll), so compare counts with counts.

Rows keep the order in which criterion wrote them (the benchmarks' order in
the source, when the whole suite was run at once); groups likewise. Only
the Python standard library is used.
"""

import json
import os
import signal
import sys
from pathlib import Path


VALUE_OPTIONS = ("--stat", "--instructions")

# criterion (group, variant) -> benchmark of benches/instructions.rs.
COUNTERPARTS = {
    ("poll", "bare"): "poll_bare",
    ("poll", "with_store u64"): "poll_with_store_u64",
    ("poll", "with_store [u8; 4096]"): "poll_with_store_4k",
    ("poll", "with_store x4 nested (u64 newtypes)"): "poll_with_store_x4_nested",
    ("poll", "with_snapshot (1 store, as adapter-spawned tasks)"): "poll_with_snapshot_1",
    ("poll", "tokio task_local scope u64"): "tokio_poll_scope_u64",
    ("poll", "tokio task_local scope x4 nested"): "tokio_poll_scope_x4_nested",
    ("read", "get depth 1"): "read_get_depth1",
    ("read", "get depth 4"): "read_get_depth4",
    ("read", "get miss (4 frames walked)"): "read_get_miss_4_frames",
    ("read", "tokio LocalKey::with"): "tokio_read_localkey_with",
    ("capture", "capture 1 store"): "snapshot_capture_1",
    ("capture", "capture 4 stores"): "snapshot_capture_4",
    ("spawn_tokio_current_thread", "bare: tokio::spawn"): "tokio_spawn_bare",
    (
        "spawn_tokio_current_thread",
        "adapter: async_local_storage::adapters::tokio::spawn, 1 store",
    ): "spawn_adapter_1",
    (
        "spawn_tokio_current_thread",
        "adapter: async_local_storage::adapters::tokio::spawn, 4 stores",
    ): "spawn_adapter_4",
    (
        "spawn_tokio_current_thread",
        "tokio::spawn + task_local re-scope, 1 key",
    ): "tokio_spawn_task_local",
}


def criterion_dir(argv):
    for i, arg in enumerate(argv):
        if not arg.startswith("--") and (i == 0 or argv[i - 1] not in VALUE_OPTIONS):
            return Path(arg)
    if os.environ.get("CRITERION_HOME"):
        return Path(os.environ["CRITERION_HOME"])
    if os.environ.get("CARGO_TARGET_DIR"):
        return Path(os.environ["CARGO_TARGET_DIR"]) / "criterion"
    return Path(__file__).resolve().parent.parent / "target" / "criterion"


def stat_name(argv):
    if "--stat" in argv:
        i = argv.index("--stat")
        if i + 1 < len(argv):
            return argv[i + 1]
    return "median"


def instructions_baseline(argv):
    """Returns [(name, count)] from the baseline file, or [] if there is none."""
    if "--no-instructions" in argv:
        return []
    path = Path(__file__).resolve().parent.parent / "benches" / "instructions.baseline"
    if "--instructions" in argv:
        i = argv.index("--instructions")
        if i + 1 < len(argv):
            path = Path(argv[i + 1])
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, count = line.split("\t")
            rows.append((name, int(count)))
    return rows


def load(root, stat):
    """Returns {group: [(mtime, variant, ns_per_element, ci_low, ci_high)]}."""
    groups = {}
    for bench_json in root.glob("**/new/benchmark.json"):
        estimates_json = bench_json.with_name("estimates.json")
        if not estimates_json.exists():
            continue
        bench = json.loads(bench_json.read_text())
        estimates = json.loads(estimates_json.read_text())
        est = estimates.get(stat) or estimates["mean"]
        throughput = bench.get("throughput") or {}
        elements = throughput.get("Elements") or 1
        variant = bench["function_id"] or bench.get("value_str") or bench["full_id"]
        if bench.get("function_id") and bench.get("value_str"):
            variant = f'{bench["function_id"]}/{bench["value_str"]}'
        ci = est["confidence_interval"]
        groups.setdefault(bench["group_id"], []).append(
            (
                estimates_json.stat().st_mtime,
                variant,
                est["point_estimate"] / elements,
                ci["lower_bound"] / elements,
                ci["upper_bound"] / elements,
            )
        )
    return groups


def fmt_ns(ns):
    if ns >= 100:
        return f"{ns:,.0f}"
    if ns >= 10:
        return f"{ns:.1f}"
    return f"{ns:.2f}"


def main(argv):
    root = criterion_dir(argv)
    stat = stat_name(argv)
    if not root.is_dir():
        sys.exit(f"no criterion results in {root}: run `cargo bench --all-features` first")
    groups = load(root, stat)
    if not groups:
        sys.exit(f"no criterion results in {root}: run `cargo bench --all-features` first")

    counts = dict(instructions_baseline(argv))
    order = sorted(groups, key=lambda g: min(row[0] for row in groups[g]))
    if counts:
        print(f"| group | variant | ns/op ({stat}) | 95% CI | × bare | instructions |")
        print("|---|---|---:|---:|---:|---:|")
    else:
        print(f"| group | variant | ns/op ({stat}) | 95% CI | × bare |")
        print("|---|---|---:|---:|---:|")
    for group in order:
        rows = sorted(groups[group])
        # A group may compare several things (e.g. `rayon`: iterators, then
        # join): each row is compared to the nearest `bare*` row above it.
        bare = next((r[2] for r in rows if r[1].startswith("bare")), None)
        for _, variant, ns, lo, hi in rows:
            if variant.startswith("bare"):
                bare = ns
            ratio = f"{ns / bare:.2f}" if bare else "–"
            if variant.startswith("bare"):
                ratio = "**1.00**"
            row = f"| {group} | {variant} | {fmt_ns(ns)} | {fmt_ns(lo)}–{fmt_ns(hi)} | {ratio} |"
            if counts:
                name = COUNTERPARTS.get((group, variant))
                row += f" {counts[name]:,} |" if name in counts else " |"
            print(row)

    if counts:
        print()
        print("| instructions (callgrind, one operation) | count |")
        print("|---|---:|")
        for name, count in instructions_baseline(argv):
            label = f"{name} (reference)" if name.startswith("tokio_") else name
            print(f"| {label} | {count:,} |")


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet under `| head`
    main(sys.argv[1:])
