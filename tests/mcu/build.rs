//! Picks the memory map for the QEMU machine of the target being built.
use std::{env, fs, path::PathBuf};

fn main() {
    let target = env::var("TARGET").unwrap();
    let memory = match target.as_str() {
        // QEMU `microbit`: nRF51822, Cortex-M0, 256K flash, 16K RAM.
        "thumbv6m-none-eabi" => "memory-microbit.x",
        // QEMU `lm3s6965evb`: LM3S6965, Cortex-M3, 256K flash, 64K RAM.
        "thumbv7m-none-eabi" => "memory-lm3s6965.x",
        other => panic!("no QEMU machine for target {other}"),
    };
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    fs::copy(memory, out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={memory}");
    println!("cargo:rerun-if-changed=build.rs");
    // `m3`: the Cortex-M3 build (Snapshot on a heap).
    println!("cargo::rustc-check-cfg=cfg(m3)");
    if target == "thumbv7m-none-eabi" {
        println!("cargo:rustc-cfg=m3");
    }
}
