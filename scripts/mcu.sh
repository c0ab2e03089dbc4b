#!/usr/bin/env bash
# async-local-storage on microcontrollers, emulated (issue 14): `./scripts/mcu.sh`.
#
# 1. Installs what it needs if missing: qemu-system-arm (apt-get), the
#    thumbv6m/thumbv7m targets and llvm-tools (rustup).
# 2. Builds the test firmware (tests/mcu) and runs it in QEMU on `microbit`
#    (Cortex-M0, thumbv6m-none-eabi) and `lm3s6965evb` (Cortex-M3,
#    thumbv7m-none-eabi); the firmware's semihosting exit status is the verdict.
# 3. Runs the `expect-fail` build on both machines, which must fail.
# 4. Measures the flash/RAM cost of the crate's core (the `budget` binary,
#    with and without the crate's calls) at opt-level "s" and "z", prints the
#    table and fails if thumbv6m exceeds 1 KiB of flash or 16 bytes of RAM.
#
# Exits non-zero on any failure. `MCU_QEMU_TIMEOUT` (seconds, default 60)
# bounds each QEMU run; `MCU_TARGET_DIR` (default tests/mcu/target) is the
# firmware's cargo target directory.
set -euo pipefail
cd "$(dirname "$0")/.."

FLASH_BUDGET=1024
RAM_BUDGET=16
QEMU_TIMEOUT=${MCU_QEMU_TIMEOUT:-60}
FW=tests/mcu
TARGET_DIR=${MCU_TARGET_DIR:-$PWD/$FW/target}
# target:machine:cpu
MACHINES=(thumbv6m-none-eabi:microbit:cortex-m0 thumbv7m-none-eabi:lm3s6965evb:cortex-m3)

step() { printf '\n==> %s\n' "$*"; }
die() {
    echo "error: $*" >&2
    exit 1
}

# ---- 1. tools ----
if ! command -v qemu-system-arm >/dev/null; then
    step "apt-get install qemu-system-arm"
    SUDO=()
    if [ "$(id -u)" != 0 ]; then SUDO=(sudo); fi
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends qemu-system-arm >/dev/null
fi
installed_targets=$(rustup target list --installed)
for spec in "${MACHINES[@]}"; do
    target=${spec%%:*}
    if ! grep -qx "$target" <<<"$installed_targets"; then
        step "rustup target add $target"
        rustup target add "$target"
    fi
done
llvm_size() {
    compgen -G "$(rustc --print sysroot)/lib/rustlib/*/bin/llvm-size" | head -n 1 || true
}
if [ -z "$(llvm_size)" ]; then
    step "rustup component add llvm-tools"
    rustup component add llvm-tools
fi
LLVM_SIZE=$(llvm_size)
[ -n "$LLVM_SIZE" ] || die "llvm-size not found after installing llvm-tools"
echo "$(qemu-system-arm --version | head -n 1); llvm-size: $LLVM_SIZE"

cargo_fw() { (cd "$FW" && CARGO_TARGET_DIR="$TARGET_DIR" cargo "$@"); }

# Runs ELF $3 on QEMU machine $1 with cpu $2; output in $QEMU_OUT, status in $QEMU_RC.
run_qemu() {
    set +e
    QEMU_OUT=$(timeout "$QEMU_TIMEOUT" qemu-system-arm -machine "$1" -cpu "$2" -nographic \
        -semihosting-config enable=on,target=native -kernel "$3" 2>&1)
    QEMU_RC=$?
    set -e
}

# ---- 2. the firmware, on both machines ----
failures=()
for spec in "${MACHINES[@]}"; do
    IFS=: read -r target machine cpu <<<"$spec"
    step "firmware: build for $target"
    cargo_fw build --release --locked --target "$target" --bin firmware
    step "firmware: run on QEMU $machine ($cpu)"
    run_qemu "$machine" "$cpu" "$TARGET_DIR/$target/release/firmware"
    printf '%s\n' "$QEMU_OUT"
    if [ "$QEMU_RC" = 0 ] && grep -q '^PASS ' <<<"$QEMU_OUT"; then
        echo "result: $machine PASSED"
    else
        [ "$QEMU_RC" = 124 ] && echo "(timed out after ${QEMU_TIMEOUT}s)"
        echo "result: $machine FAILED (exit status $QEMU_RC)"
        failures+=("firmware on $machine")
    fi
done

# ---- 3. the expected failure: a read that must be None, asserted Some ----
for spec in "${MACHINES[@]}"; do
    IFS=: read -r target machine cpu <<<"$spec"
    step "expected failure: build with feature expect-fail for $target"
    cargo_fw build --release --locked --target "$target" --bin firmware --features expect-fail
    step "expected failure: run on QEMU $machine (must fail)"
    run_qemu "$machine" "$cpu" "$TARGET_DIR/$target/release/firmware"
    printf '%s\n' "$QEMU_OUT"
    # Must fail through the firmware's own check: not a timeout, not a crash.
    if [ "$QEMU_RC" = 1 ] && grep -q '^FAIL .*expect-fail' <<<"$QEMU_OUT"; then
        echo "result: $machine failed as expected"
    else
        echo "result: $machine did NOT fail as expected (exit status $QEMU_RC)"
        failures+=("expect-fail on $machine")
    fi
done
# Leave the normal build in place for anyone running the ELF by hand.
for spec in "${MACHINES[@]}"; do
    cargo_fw build -q --release --locked --target "${spec%%:*}" --bin firmware
done

# ---- 4. flash/RAM budget of the core ----
# Section sizes of an ELF: "text rodata data bss".
sections() {
    "$LLVM_SIZE" -A "$1" | awk '
        $1 == ".text" { t = $2 } $1 == ".rodata" { r = $2 }
        $1 == ".data" { d = $2 } $1 == ".bss" { b = $2 }
        END { printf "%d %d %d %d\n", t, r, d, b }'
}
step "flash/RAM budget: tests/mcu/src/bin/budget.rs with and without the crate's calls"
table="| target | opt-level | \`.text\` with / without (crate) | \`.rodata\` with / without (crate) | flash: crate | static RAM (\`.data\`+\`.bss\`): crate |
|---|---|---|---|---|---|"
for spec in "${MACHINES[@]}"; do
    IFS=: read -r target machine cpu <<<"$spec"
    for profile in release:s size-z:z; do
        IFS=: read -r prof opt <<<"$profile"
        cargo_fw build -q --locked --profile "$prof" --target "$target" --bin budget --no-default-features
        read -r t1 r1 d1 b1 < <(sections "$TARGET_DIR/$target/$prof/budget")
        if [ "$prof" = release ]; then
            # The measured program must work.
            run_qemu "$machine" "$cpu" "$TARGET_DIR/$target/$prof/budget"
            [ "$QEMU_RC" = 0 ] || failures+=("budget binary on $machine (exit status $QEMU_RC)")
        fi
        cargo_fw build -q --locked --profile "$prof" --target "$target" --bin budget --no-default-features --features without-als
        read -r t0 r0 d0 b0 < <(sections "$TARGET_DIR/$target/$prof/budget")
        flash=$(((t1 + r1 + d1) - (t0 + r0 + d0)))
        ram=$(((d1 + b1) - (d0 + b0)))
        table+=$'\n'"| $target | \"$opt\" | $t1 / $t0 ($((t1 - t0))) | $r1 / $r0 ($((r1 - r0))) | $flash B | $ram B |"
        if [ "$target" = thumbv6m-none-eabi ]; then
            if [ "$flash" -gt "$FLASH_BUDGET" ]; then
                failures+=("flash budget: $flash B > $FLASH_BUDGET B on $target, opt-level $opt")
            fi
            if [ "$ram" -gt "$RAM_BUDGET" ]; then
                failures+=("RAM budget: $ram B > $RAM_BUDGET B on $target, opt-level $opt")
            fi
        fi
    done
done
printf '%s\n' "$table"
echo "budget (thumbv6m): at most $FLASH_BUDGET B of flash and $RAM_BUDGET B of static RAM for the core"

echo
if [ "${#failures[@]}" -gt 0 ]; then
    printf 'FAILED: %s\n' "${failures[@]}"
    exit 1
fi
echo "mcu: both machines passed, the expected failure failed, the budget holds"
