#!/usr/bin/env bash
# The whole test suite, as README.md gives it: `./scripts/test.sh`.
# Installs what it needs (rustup targets and components; qemu-system-arm with
# apt-get, through scripts/mcu.sh), then runs every test configuration.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# ---- core + adapters (std backend, every feature) ----
step "cargo test --all-features (core, adapters, doctests)"
cargo test --all-features

# ---- issue 10: `tracing` is a dependency only with the `tracing` feature ----
step "tracing: no dependency without the feature (cargo tree), one with it"
for features in "" "tokio,async-std,smol"; do
    if cargo tree -e normal --features "$features" -i tracing 2>/dev/null | grep -q '^tracing v'; then
        echo "error: tracing is a dependency with features [$features]" >&2
        exit 1
    fi
done
cargo tree -e normal --features tracing -i tracing | grep -q '^tracing v'
echo "ok: tracing only with the feature"

# ---- no_std backends (issue 3) ----
# std wins when enabled, so each no_std backend is tested with the default
# features off. The critical-section slot is one global: its host tests run
# every case on one thread (`harness = false`), never under libtest's threads.
NO_STD_TARGETS=(thumbv7em-none-eabihf thumbv6m-none-eabi)
step "rustup target add ${NO_STD_TARGETS[*]}"
rustup target add "${NO_STD_TARGETS[@]}"
for target in "${NO_STD_TARGETS[@]}"; do
    step "no_std build: critical-section, $target"
    cargo build --lib --no-default-features --features critical-section --target "$target"
done
step "no_std build: critical-section + alloc (Snapshot), thumbv7em-none-eabihf"
cargo build --lib --no-default-features --features critical-section,alloc --target thumbv7em-none-eabihf
step "no_std build: custom-slot, thumbv6m-none-eabi"
cargo build --lib --no-default-features --features custom-slot --target thumbv6m-none-eabi
step "no backend: the build must stop with the compile_error! naming the features"
if no_backend=$(cargo check --lib --no-default-features 2>&1); then
    echo "error: building with no slot backend succeeded" >&2
    exit 1
fi
if ! grep -q "needs a slot backend" <<<"$no_backend"; then
    printf '%s\n' "$no_backend" >&2
    echo "error: the build failed without the expected compile_error! message" >&2
    exit 1
fi
echo "ok: failed with the expected message"
# ---- issue 13: no slot without the final binary's `unsafe` say-so ----
# (1) A hosted program that reaches the crate only through a no_std library
# with `critical-section` on, and registers no slot, must fail to link, naming
# the versioned symbol. (It shares this crate's target dir for its deps.)
step "soundness: a hosted build with critical-section and no registered slot must not link"
if no_slot=$(CARGO_TARGET_DIR="$PWD/target" cargo build --manifest-path tests/no_slot/Cargo.toml 2>&1); then
    echo "error: tests/no_slot linked without a registered slot" >&2
    exit 1
fi
if ! grep -q "undefined symbol: _async_local_storage_0_1_slot_get" <<<"$no_slot"; then
    printf '%s\n' "$no_slot" >&2
    echo "error: tests/no_slot failed, but not with the missing-slot link error" >&2
    exit 1
fi
echo "ok: the link fails with: $(grep -m1 -o 'undefined symbol: _async_local_storage_0_1_slot_get' <<<"$no_slot")"
# (2) The registration symbols carry the crate version: a set_slot! binary
# defines exactly the 0_1 symbols and no unversioned ones.
step "soundness: set_slot! defines the versioned symbols (nm on the custom_slot example)"
cargo build --no-default-features --features custom-slot --example custom_slot
symbols=$(nm target/debug/examples/custom_slot | grep -o '_async_local_storage_[a-z0-9_]*' | sort -u)
printf '%s\n' "$symbols"
if [[ "$symbols" != $'_async_local_storage_0_1_slot_get\n_async_local_storage_0_1_slot_set' ]]; then
    echo "error: expected exactly the versioned slot symbols" >&2
    exit 1
fi

step "critical-section backend on the host: core cases, then embassy-executor"
cargo build --no-default-features --features critical-section --test critical_section --test embassy --example embassy
timeout 300 cargo test --no-default-features --features critical-section --test critical_section --test embassy
step "critical-section + alloc: an empty snapshot isolates a preempting poll"
timeout 300 cargo test --no-default-features --features critical-section,alloc --test critical_section
step "custom-slot backend on the host"
cargo build --no-default-features --features custom-slot --test custom_slot --example custom_slot
timeout 300 cargo test --no-default-features --features custom-slot --test custom_slot
step "example: embassy (critical-section backend)"
timeout 120 cargo run --no-default-features --features critical-section --example embassy
step "example: custom_slot (per-core slots)"
timeout 120 cargo run --no-default-features --features custom-slot --example custom_slot

# ---- issue 14: firmware on QEMU ----
# The test firmware (tests/mcu, its own package and lock file) on emulated
# Cortex-M0 (`microbit`) and Cortex-M3 (`lm3s6965evb`), the expected failure
# (`expect-fail`), and the flash/RAM budget of the core. Installs
# qemu-system-arm, the thumb targets and llvm-tools if missing.
step "firmware on QEMU: scripts/mcu.sh"
./scripts/mcu.sh

# ---- issue 16: the first hour (imports next to #[tokio::main], error messages) ----
step "diagnostics: glob imports with every adapter on; the mistakes' errors name the fix"
./scripts/diagnostics.sh

# ---- issue 16: the README's first program ----
# Pasted into a fresh `cargo new` project with the dependency lines the README
# shows (this crate as a path dependency, same features), built and run.
step "README: the first program, pasted into a fresh cargo project, builds and runs"
./scripts/readme_first.sh

# ---- examples (issue 6) ----
# Build first, so the timeouts bound the runs, not the compilation.
step "build the examples (batch, web_logger, batch_parallel)"
cargo build --features tokio --example batch
# web_logger needs the http and log adapters (issue 10).
cargo build --features http,log,tokio --example web_logger
cargo build --features rayon --example batch_parallel
step "example: batch (default seed)"
timeout 120 cargo run --example batch --features tokio
step "example: batch --seed 7"
timeout 120 cargo run --example batch --features tokio -- --seed 7
step "example: web_logger --self-test (loopback; HttpStoreLayer, log bridge, streaming body, spawned sub-task)"
timeout 120 cargo run --example web_logger --features http,log,tokio -- --self-test
# issue 11: the same scenario, CPU-bound, on rayon's parallel iterators.
step "example: batch_parallel (default seed)"
timeout 120 cargo run --example batch_parallel --features rayon
step "example: batch_parallel --seed 7"
timeout 120 cargo run --example batch_parallel --features rayon -- --seed 7
step "example: spawn_and_blocking (every adapter)"
timeout 120 cargo run --example spawn_and_blocking --all-features

# ---- issue 11: clippy recipe fixture ----
# The README's clippy.toml (disallowed-methods) on the fixture crate tests/lint/:
# exactly its raw `tokio::spawn` must be reported, and nothing else.
step "clippy recipe: tests/lint reports exactly the raw tokio::spawn"
rustup component add clippy
timeout 600 ./scripts/lint_fixture.sh

# ---- reliability (issue 7) ----
# The debug run above already ran these with smaller counts (stress: 1,000
# tasks per runtime; model: 2,000 programs). Here: release, full size.
step "build the reliability tests (release)"
cargo test --release --all-features --test stress --test model --test alloc --no-run
step "stress: 10,000 tasks per runtime on tokio, async-std and smol; zero cross-talk"
timeout 600 cargo test --release --all-features --test stress -- --nocapture
step "model: 20,000 random programs against the reference model"
ALS_MODEL_CASES=20000 timeout 600 cargo test --release --all-features --test model -- --nocapture
step "allocations: counting global allocator"
timeout 120 cargo test --release --all-features --test alloc -- --nocapture

echo
echo "all test configurations passed"
