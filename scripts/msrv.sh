#!/usr/bin/env bash
# MSRV check (issue 15): builds the library with the toolchain named by
# `rust-version` in Cargo.toml, in a copy of the package under
# target/msrv/, with a lockfile that prefers dependency versions whose own
# `rust-version` fits (`CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback`,
# resolved by the current stable cargo). The repository's Cargo.lock is never
# read or written. Checks, no tests: `cargo check --lib` per configuration.
#
# Installs what it needs (the toolchain, the no_std target). Everything it
# writes is under target/msrv/.
set -euo pipefail
cd "$(dirname "$0")/.."

# Adapter features to check, one per entry. A feature the manifest does not
# have (yet) is skipped. `feature@1.NN` checks that feature with a newer
# toolchain than the crate's MSRV, for an adapter whose dependencies need it.
ADAPTER_FEATURES=(tokio async-std smol rayon tower http log tracing)

# no_std backends, checked for this target (no atomic compare-and-swap: the
# least capable target the README names).
NO_STD_TARGET=thumbv6m-none-eabi
NO_STD_FEATURES=(critical-section critical-section,alloc custom-slot)

step() { printf '\n==> %s\n' "$*"; }

msrv=$(sed -n 's/^rust-version = "\([0-9.]*\)"$/\1/p' Cargo.toml)
if [[ -z "$msrv" ]]; then
    echo "error: no rust-version in Cargo.toml" >&2
    exit 1
fi

root=$PWD
work=$root/target/msrv
copy=$work/crate
export CARGO_TARGET_DIR=$work/target

# ---- the copy: what the package ships, minus dev-only parts ----
# Dev-dependencies (criterion, axum, embassy-executor, ...) and the test,
# bench and example targets are not part of a user's build, and some need
# newer compilers; `cargo check --lib` never builds them, but they would take
# part in the resolution. Drop them from the copied manifest.
step "copy the package to target/msrv/crate (library sources, manifest without dev-only tables)"
rm -rf "$copy"
mkdir -p "$copy"
cp -r src adapters README.md CHANGELOG.md "$copy"/
cp LICENSE-* "$copy"/ 2>/dev/null || true
awk '
    /^\[/ { skip = ($0 ~ /^\[(target\..*\.)?dev-dependencies\]$/ || $0 ~ /^\[\[(test|bench|example)\]\]$/) }
    !skip
' Cargo.toml >"$copy/Cargo.toml"

step "MSRV-aware lockfile (fallback resolver, Rust $msrv)"
CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback \
    cargo generate-lockfile --manifest-path "$copy/Cargo.toml"

step "toolchain $msrv"
toolchains=("$msrv")
for entry in "${ADAPTER_FEATURES[@]}"; do
    [[ "$entry" == *@* ]] && toolchains+=("${entry#*@}")
done
for tc in $(printf '%s\n' "${toolchains[@]}" | sort -u); do
    rustup toolchain install "$tc" --profile minimal
done
rustup target add "$NO_STD_TARGET" --toolchain "$msrv"

has_feature() {
    # A key of the [features] table of the copied manifest.
    awk -v f="$1" '
        /^\[/ { in_features = ($0 == "[features]") }
        in_features && $1 == f && $2 == "=" { found = 1 }
        END { exit !found }
    ' "$copy/Cargo.toml"
}

# Cargo 1.78 prints "unused manifest key: lints.rust.unexpected_cfgs.check-cfg"
# (that key is newer than it); harmless, and users of the published crate never
# see it (Cargo does not lint the manifests of registry dependencies).
check() {
    local tc=$1
    shift
    step "cargo +$tc check --lib $*"
    cargo "+$tc" check --lib --locked --manifest-path "$copy/Cargo.toml" "$@"
}

verified=()

# ---- core (std backend, default features) ----
check "$msrv"
verified+=("core (default features: std, alloc): $msrv")

# ---- no_std backends ----
for features in "${NO_STD_FEATURES[@]}"; do
    check "$msrv" --no-default-features --features "$features" --target "$NO_STD_TARGET"
    verified+=("no_std --features $features ($NO_STD_TARGET): $msrv")
done

# ---- adapters, one at a time, then all features together ----
present=()
for entry in "${ADAPTER_FEATURES[@]}"; do
    feature=${entry%@*}
    tc=$msrv
    [[ "$entry" == *@* ]] && tc=${entry#*@}
    if ! has_feature "$feature"; then
        echo "(skipped: the manifest has no feature \`$feature\`)"
        continue
    fi
    check "$tc" --features "$feature"
    verified+=("--features $feature: $tc")
    present+=("$tc")
done
all_tc=$(printf '%s\n' "$msrv" "${present[@]}" | sort -V | tail -n1)
check "$all_tc" --all-features
verified+=("--all-features: $all_tc")

# ---- what the newest dependency versions would need (information only) ----
# The same copy resolved without regard to rust-version: the highest
# `rust-version` among the packages each configuration pulls in is what a
# user needs who does not use an MSRV-aware resolver (Cargo < 1.84, or
# `incompatible-rust-versions = "allow"`).
step "for comparison: what the newest dependency versions need"
if ! command -v python3 >/dev/null; then
    echo "(skipped: no python3)"
    newest_report=false
else
    newest_report=true
fi
newest=$work/newest
rm -rf "$newest"
mkdir -p "$newest"
cp -r "$copy"/. "$newest"/
rm -f "$newest/Cargo.lock"
# Information only: a failure here does not fail the check.
if $newest_report && ! CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=allow \
    cargo generate-lockfile --manifest-path "$newest/Cargo.toml" 2>/dev/null; then
    echo "(skipped: could not resolve the newest versions)"
    newest_report=false
fi
newest_need() {
    cargo metadata --format-version 1 --locked --filter-platform x86_64-unknown-linux-gnu \
        --manifest-path "$newest/Cargo.toml" "$@" 2>/dev/null | python3 -c '
import json, sys
meta = json.load(sys.stdin)
rv = {p["id"]: (p.get("rust_version") or "0", p["name"] + " " + p["version"]) for p in meta["packages"]}
key = lambda v: tuple(int(x) for x in v.split("."))
ids = [n["id"] for n in meta["resolve"]["nodes"]]
best = max(ids, key=lambda i: key(rv[i][0]))
print(rv[best][0], "(" + rv[best][1] + ")")
'
}
if $newest_report; then
    echo "held back by the MSRV-aware lockfile (its version -> the newest):"
    python3 - "$copy/Cargo.lock" "$newest/Cargo.lock" <<'PY'
import re, sys
def load(path):
    versions, name = {}, None
    for line in open(path):
        m = re.match(r'(name|version) = "(.*)"$', line.strip())
        if m and m[1] == "name":
            name = m[2]
        elif m:
            versions.setdefault(name, set()).add(m[2])
    return versions
msrv, newest = load(sys.argv[1]), load(sys.argv[2])
for name in sorted(msrv):
    if msrv[name] != newest.get(name, set()):
        print("  %s %s -> %s" % (name, ", ".join(sorted(msrv[name])), ", ".join(sorted(newest.get(name, ())))))
PY
    echo "highest rust-version among the packages each configuration pulls in, newest versions:"
    printf '  %-22s %s\n' "default" "$(newest_need)"
    for entry in "${ADAPTER_FEATURES[@]}"; do
        feature=${entry%@*}
        has_feature "$feature" || continue
        printf '  %-22s %s\n' "--features $feature" "$(newest_need --features "$feature")"
    done
fi

step "MSRV verified (cargo check --lib, MSRV-aware lockfile)"
printf '  %s\n' "${verified[@]}"
