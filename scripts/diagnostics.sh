#!/usr/bin/env bash
# Issue 16: the first hour's compiler errors and imports, checked for real.
# Builds tests/diagnostics (sharing this crate's target dir):
# - its binary (glob imports of the crate and the prelude next to
#   `#[tokio::main]`, every adapter feature on) must build and run;
# - each example is a common mistake and must fail to build with the
#   message that names the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="$PWD/target"
manifest=tests/diagnostics/Cargo.toml

cargo run --quiet --manifest-path "$manifest"

expect_error() { # example, then the substrings its error must contain
    local example=$1 out
    shift
    if out=$(cargo build --manifest-path "$manifest" --example "$example" 2>&1); then
        echo "error: example $example built, but it must not" >&2
        exit 1
    fi
    for needle in "$@"; do
        if ! grep -qF -- "$needle" <<<"$out"; then
            printf '%s\n' "$out" >&2
            echo "error: the error for $example does not say: $needle" >&2
            exit 1
        fi
    done
    echo "ok: $example fails with: $(grep -m1 -F -- "$1" <<<"$out" | sed 's/^error\[E[0-9]*\]: //')"
}

expect_error rc_store "cannot travel into other tasks and threads" ".with_local_store(value)"
expect_error rc_scope "cannot travel into other tasks and threads" "scope_local(value, || ..)"
expect_error not_a_future "is not a future: \`.with_store(..)\` makes a future or a stream run with a store" "use \`scope(value, || ..)\`"
