#!/usr/bin/env bash
# Issue 11: proves the README's clippy.toml recipe ("Never forget to carry").
# Runs clippy on the fixture crate tests/lint/ (its clippy.toml is the recipe,
# verbatim) and checks that exactly one `disallowed_methods` warning is
# reported, on the raw `tokio::spawn` line marked `RAW` in src/main.rs, and
# none on the adapter's spawn. Also checks that the recipe in the README
# material is the fixture's clippy.toml, so the two cannot drift apart.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
fixture=tests/lint

# The recipe shown to users must be the one tested here.
python3 - "$fixture/clippy.toml" README.md docs/readme/rayon.md <<'PY'
import sys
from pathlib import Path
recipe = Path(sys.argv[1]).read_text()
docs = [Path(p) for p in sys.argv[2:] if Path(p).exists()]
if not any(recipe in p.read_text() for p in docs):
    sys.exit(f"error: {sys.argv[1]} does not appear verbatim in any of {[str(p) for p in docs]}")
print(f"ok: the recipe in {sys.argv[1]} is the one in the README material")
PY

# Reuse the main crate's built dependencies where the versions and features match.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
# Touch the fixture so clippy re-checks it rather than replaying a stale cache.
touch "$fixture/src/main.rs"
out=$(cargo clippy --locked --manifest-path "$fixture/Cargo.toml" --message-format=short 2>&1) || {
    printf '%s\n' "$out" >&2
    echo "error: clippy failed on the lint fixture" >&2
    exit 1
}

raw_line=$(grep -n '// RAW' "$fixture/src/main.rs" | cut -d: -f1)
mapfile -t hits < <(grep -E 'disallowed method' <<<"$out" || true)
if [[ ${#hits[@]} -ne 1 ]]; then
    printf '%s\n' "$out" >&2
    echo "error: expected exactly 1 disallowed-method warning, got ${#hits[@]}" >&2
    exit 1
fi
# (`tokio::spawn` is a re-export: clippy names the function's own path.)
if [[ ${hits[0]} != *"src/main.rs:$raw_line:"*'`tokio::task::spawn`'* ]]; then
    printf '%s\n' "$out" >&2
    echo "error: the warning is not on the raw tokio::spawn (line $raw_line): ${hits[0]}" >&2
    exit 1
fi
# Anything else clippy says about the fixture (an unknown path in the recipe,
# a config error) is a defect of the recipe too.
others=$(grep -E '(^|: )(warning|error)(\[|:)' <<<"$out" | grep -v 'disallowed method' | grep -v 'generated [0-9]* warning' || true)
if [[ -n $others ]]; then
    printf '%s\n' "$out" >&2
    echo "error: clippy reported something else than the raw call" >&2
    exit 1
fi
echo "ok: exactly the raw call is reported: ${hits[0]}"
