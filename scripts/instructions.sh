#!/usr/bin/env bash
# The instruction-count gate (issue 12): runs `benches/instructions.rs` under
# callgrind (gungraun), built with every feature and again without `tracing`
# (names ending in " [without tracing]"), prints `name | baseline | now |
# change`, and fails when any of our figures grows by more than 5% over
# `benches/instructions.baseline`.
# The references (names starting with `tokio_` or `smol_`: tokio's
# `task_local!`, and each runtime's plain spawns) are shown and never fail
# the gate.
#
#   scripts/instructions.sh            # check against the baseline
#   scripts/instructions.sh --update   # rewrite the baseline with this run
#   scripts/instructions.sh --runner   # only install what is missing; print
#                                      # the runner's path (for GUNGRAUN_RUNNER)
#
# Needs valgrind (installed with apt-get if missing) and `gungraun-runner` of
# exactly the version of the `gungraun` dev-dependency, which is pinned in one
# place, Cargo.toml (`gungraun = "=X"`); the version is read from Cargo.lock.
# The runner is used from $GUNGRAUN_RUNNER, else from PATH if its version
# matches, else from $ALS_TOOLS_DIR/gungraun-runner-X (default
# ~/.cache/async-local-storage, or under $XDG_CACHE_HOME), where it is
# installed with `cargo install` the first time (minutes of compiling; later
# runs, CI's included, reuse it).
#
# Counts are exact and repeat run to run, but depend on the compiler and
# glibc (capture allocates): after a toolchain change, rerun with --update
# and say so in the commit. The baseline records the rustc it was made with.
# snapshot_capture_4 also depends on whether the benchmark's four store types
# share a bit of the capture walk's Bloom filter (they do today, in both
# builds: 37 instructions without tracing, 19 with it); `TypeId`s change
# with the compiler and with the features, so that figure can move by a
# fifth with no code change: see
# BENCHMARKS.md, "Instruction counts: the CI gate".
set -euo pipefail
cd "$(dirname "$0")/.."

BASELINE=benches/instructions.baseline
THRESHOLD_PCT=5
update=0
only_runner=0
case "${1:-}" in
    "") ;;
    --update) update=1 ;;
    --runner) only_runner=1 ;;
    *) echo "usage: $0 [--update | --runner]" >&2; exit 2 ;;
esac

# ---- valgrind ----
if ! command -v valgrind >/dev/null; then
    echo "valgrind not found: installing it (apt-get)" >&2
    # (stdout is reserved for the runner's path in --runner mode)
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >&2
fi

# ---- gungraun-runner, same version as the library ----
version=$(awk '/^name = "gungraun"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
if [[ -z "$version" ]]; then
    echo "error: no gungraun package in Cargo.lock" >&2
    exit 1
fi
runner_version() { "$1" --version 2>/dev/null | awk '{ print $NF }'; }
if [[ -n "${GUNGRAUN_RUNNER:-}" ]]; then
    runner=$GUNGRAUN_RUNNER
elif command -v gungraun-runner >/dev/null &&
    [[ "$(runner_version gungraun-runner)" == "$version" ]]; then
    runner=$(command -v gungraun-runner)
else
    root="${ALS_TOOLS_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/async-local-storage}/gungraun-runner-$version"
    runner="$root/bin/gungraun-runner"
    if [[ ! -x "$runner" ]]; then
        echo "installing gungraun-runner $version into $root" >&2
        start=$SECONDS
        # --debug: half the compile time of a release build (about 2.5 CPU
        # minutes instead of 5), and the runner is as fast: its work is
        # reading callgrind's small output files.
        cargo install --locked --quiet --debug gungraun-runner --version "$version" --root "$root" >&2
        echo "installed gungraun-runner in $((SECONDS - start)) s" >&2
    fi
fi
if [[ "$(runner_version "$runner")" != "$version" ]]; then
    echo "error: $runner is version $(runner_version "$runner"), the gungraun library is $version" >&2
    exit 1
fi
export GUNGRAUN_RUNNER=$runner
if ((only_runner)); then
    echo "$runner"
    exit 0
fi

# ---- run: one JSON summary per benchmark on stdout, for each build ----
# Two builds: every feature (as CI's other checks), and without `tracing`
# (`--features tokio,smol`, what the benchmark needs), the usual build, where
# some paths differ (a snapshot has no span; see `settle_one_word` in
# src/frame/carry.rs). The second build's names end in SUFFIX, and its
# references (the runtimes' own figures, the same in both builds) are left
# out.
SUFFIX=" [without tracing]"
out_all=$(mktemp)
out_plain=$(mktemp)
trap 'rm -f "$out_all" "$out_plain"' EXIT
cargo bench --profile instructions --all-features --bench instructions -- --output-format=json --nosummary >"$out_all"
cargo bench --profile instructions --features tokio,smol --bench instructions -- --output-format=json --nosummary >"$out_plain"

# ---- compare ----
RUSTC_VERSION=$(rustc --version) python3 - "$out_all" "$out_plain" "$SUFFIX" "$BASELINE" "$THRESHOLD_PCT" "$update" <<'EOF'
import json
import os
import sys

out_all, out_plain, suffix, baseline_path, threshold, update = sys.argv[1:7]
threshold, update = float(threshold), update == "1"
REFERENCE_PREFIXES = ("tokio_", "smol_")

# Instructions executed (callgrind's Ir) per benchmark, in run order: the
# build with every feature, then the one without `tracing` (names + suffix).
now = {}
for out, name_suffix in ((out_all, ""), (out_plain, suffix)):
    found = 0
    for line in open(out):
        line = line.strip()
        if not line.startswith("{"):
            continue
        summary = json.loads(line)
        callgrind = [p for p in summary["profiles"] if p["tool"] == "Callgrind"]
        ir = callgrind[0]["data"]["total"]["metrics"]["Ir"]["values"]["new"]
        found += 1
        if name_suffix and summary["function_name"].startswith(REFERENCE_PREFIXES):
            # The runtimes' figures do not depend on `tracing`: shown once.
            continue
        now[summary["function_name"] + name_suffix] = int(ir)
    if not found:
        sys.exit(f"error: the benchmark{name_suffix} printed no summary")
zero = [name for name, ir in now.items() if ir == 0]
if zero:
    # The entry point (measured_op) was not found: nothing was counted.
    sys.exit(f"error: no instructions counted for {', '.join(zero)}")

rustc = os.environ.get("RUSTC_VERSION", "")
header = (
    "# Instruction counts (callgrind Ir) of benches/instructions.rs, one operation each.\n"
    "# Made by scripts/instructions.sh --update with: " + rustc + "\n"
    "# Names starting with tokio_ or smol_ are a reference and are not gated.\n"
    "# Names ending in" + suffix + " are of the build without the tracing feature.\n"
)

if update:
    with open(baseline_path, "w") as f:
        f.write(header)
        for name, ir in now.items():
            f.write(f"{name}\t{ir}\n")

baseline, made_with = {}, None
if os.path.exists(baseline_path):
    for line in open(baseline_path):
        line = line.rstrip("\n")
        if line.startswith("# Made by") and "with: " in line:
            made_with = line.split("with: ", 1)[1]
        if not line or line.startswith("#"):
            continue
        name, ir = line.split("\t")
        baseline[name] = int(ir)

rows, failures = [], []
for name in list(baseline) + [n for n in now if n not in baseline]:
    reference = name.startswith(REFERENCE_PREFIXES)
    base, cur = baseline.get(name), now.get(name)
    label = name + (" (reference)" if reference else "")
    if base is None:
        change = "not in baseline"
        if not reference:
            failures.append(f"{name}: not in the baseline (run with --update)")
    elif cur is None:
        change = "not run"
        if not reference:
            failures.append(f"{name}: in the baseline but not run")
    else:
        pct = (cur - base) * 100.0 / base
        change = f"{pct:+.1f}%"
        if pct > threshold and not reference:
            change += " FAIL"
            failures.append(f"{name}: {base} -> {cur} ({pct:+.1f}% > {threshold:g}%)")
    rows.append((label, "-" if base is None else str(base), "-" if cur is None else str(cur), change))

w = max(len(r[0]) for r in rows + [("name",)])
c = max(len(r[3]) for r in rows + [("", "", "", "change")])
print(f"\n| {'name':<{w}} | baseline |      now | {'change':>{c}} |")
print(f"|{'-' * (w + 2)}|---------:|---------:|{'-' * (c + 1)}:|")
for label, base, cur, change in rows:
    print(f"| {label:<{w}} | {base:>8} | {cur:>8} | {change:>{c}} |")

if update:
    print(f"\nbaseline written: {baseline_path} ({len(now)} benchmarks)")
    sys.exit(0)
if made_with and rustc and made_with != rustc:
    print(f"\nnote: the baseline was made with {made_with}, this is {rustc}: "
          "counts may move with the compiler (rerun with --update after a toolchain change)")
if failures:
    print(f"\ninstruction-count gate FAILED (threshold +{threshold:g}%):")
    for f in failures:
        print(f"  {f}")
    sys.exit(1)
print(f"\ninstruction-count gate passed: no gated figure grew by more than {threshold:g}%")
EOF
