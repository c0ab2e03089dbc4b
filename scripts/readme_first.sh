#!/usr/bin/env bash
# Issue 16: the README's first program, as a dependency user gets it.
# Pastes the first ```rust block of README.md into a fresh `cargo new`
# project whose [dependencies] are the lines the README shows (the first
# ```toml block), with this crate as a path dependency instead of the version
# (same features), then builds and runs it. The project lives under target/
# and shares this crate's target dir, so the dependencies are built once.
#
#   ./scripts/readme_first.sh [README]     (default: README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
readme=${1:-README.md}
project=target/readme-first
export CARGO_TARGET_DIR="$root/target"

# The first ```rust block (any ```rust... info string) and the first ```toml block.
block() { # language, file
    awk -v lang="$1" '
        !inside && $0 ~ "^```" lang "([,[:space:]].*)?$" { inside = 1; next }
        inside && /^```[[:space:]]*$/ { exit }
        inside { print }
    ' "$2"
}
program=$(block rust "$readme")
toml=$(block toml "$readme")
[[ -n "$program" ]] || { echo "error: no \`\`\`rust block in $readme" >&2; exit 1; }
grep -q '^async-local-storage = ' <<<"$toml" || {
    echo "error: the first \`\`\`toml block of $readme has no async-local-storage line" >&2
    exit 1
}
# The repository's two commands (Developing) stay in the README, verbatim.
for command in "cargo run --example batch --features tokio" "./scripts/test.sh"; do
    grep -qF -- "$command" "$readme" || { echo "error: $readme no longer shows \`$command\`" >&2; exit 1; }
done
if grep -q '^# ' <<<"$program"; then
    echo "error: the first program has rustdoc hidden lines (# ...): it does not paste" >&2
    exit 1
fi

rm -rf "$project"
mkdir -p target
cargo new --quiet --bin --vcs none --name readme_first "$project"
# The README's dependency lines, the crate's version replaced by its path.
deps=$(sed -n '/^\[dependencies\]/,/^\[/{/^\[/d;p}' <<<"$toml" |
    sed -E "s|^async-local-storage = \{ version = \"[^\"]*\"|async-local-storage = { path = \"$root\"|")
grep -q "path = \"$root\"" <<<"$deps" || {
    echo "error: could not turn the README's async-local-storage line into a path dependency:" >&2
    printf '%s\n' "$deps" >&2
    exit 1
}
printf '%s\n' "$deps" >>"$project/Cargo.toml"
printf '%s\n' "$program" >"$project/src/main.rs"
# Start from this crate's lockfile, so the versions (and builds) are shared.
cp Cargo.lock "$project/Cargo.lock"
echo "--- $project/Cargo.toml [dependencies]"
sed -n '/^\[dependencies\]/,$p' "$project/Cargo.toml"
echo "--- build and run the first program ($(wc -l <<<"$program") lines)"
cargo build --quiet --manifest-path "$project/Cargo.toml"
out=$(timeout 60 cargo run --quiet --manifest-path "$project/Cargo.toml")
printf '%s\n' "$out"
echo "ok: the README's first program builds and runs as pasted"
