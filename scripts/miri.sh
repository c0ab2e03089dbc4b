#!/usr/bin/env bash
# The core test suite under Miri (strict provenance). Installs the component if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup toolchain install nightly --profile minimal --component miri,rust-src >/dev/null
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}"
cargo +nightly miri setup
# Core tests only: the adapters' runtimes do I/O Miri cannot run.
CORE_TESTS=(visibility nesting interleaving drop_in_scope panic_safety reentrancy auto_traits after_completion stream snapshot bind thread alloc try_get)
args=()
for t in "${CORE_TESTS[@]}"; do args+=(--test "$t"); done
cargo +nightly miri test --lib "${args[@]}"
# The snapshots' storage with the `tracing` feature (a span changes how several
# inline stores are published), and the adapters' carriers (with a current
# span a task takes the full snapshot).
cargo +nightly miri test --lib --features tracing -- frame::carry carried::
# The no_std backends' host tests (each runs its cases on one thread).
cargo +nightly miri test --no-default-features --features critical-section,alloc --test critical_section
cargo +nightly miri test --no-default-features --features custom-slot --test custom_slot
# The core tests that lay out frames and snapshots, on two 32-bit targets: a
# header is two 4-byte words there, so nodes are not multiples of 8 bytes
# (`Node<u32>` is 12), and a `u64` is aligned to 8 (ARM) or 4 (i686). Run
# from `tests/miri32/`, a package without the crate's C-compiling
# dev-dependencies (Miri builds the targets' standard library itself).
for target in arm-unknown-linux-gnueabi i686-unknown-linux-gnu; do
    (cd tests/miri32 && cargo +nightly miri test --locked --target "$target")
done
