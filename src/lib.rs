// With every adapter its examples use enabled (docs.rs, `cargo test
// --all-features`), the README is the crate documentation and all its
// examples are doctests; otherwise the short version, src/crate_docs.md.
#![cfg_attr(
    all(
        feature = "tokio",
        feature = "async-std",
        feature = "smol",
        feature = "rayon",
        feature = "http",
        feature = "log"
    ),
    doc = include_str!("../README.md")
)]
#![cfg_attr(
    not(all(
        feature = "tokio",
        feature = "async-std",
        feature = "smol",
        feature = "rayon",
        feature = "http",
        feature = "log"
    )),
    doc = include_str!("crate_docs.md")
)]
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "std")]
extern crate std;

mod access;
#[cfg(feature = "alloc")]
mod bind;
// Only the executor adapters spawn through it; built with `alloc` all the
// same, so that its unit tests run (under Miri too) without them.
#[cfg(feature = "alloc")]
#[cfg_attr(
    not(any(feature = "tokio", feature = "async-std", feature = "smol")),
    allow(dead_code, unused_imports, unused_macros)
)]
mod carried;
mod frame;
pub mod markers;
mod not_found;
mod scoped;
pub mod slot;
#[cfg(feature = "alloc")]
mod snapshot;

#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub mod thread;

// One parent module for every integration, so that no adapter module can
// shadow the crate it integrates (`tokio`, `log`, ...) in a glob import.
#[path = "../adapters/mod.rs"]
pub mod adapters;

pub mod prelude;

pub use access::{exit, get, is_set, isolate, scope, scope_local, try_get, try_with, with};
pub use frame::{FramePtr, Hidden, Isolated};
pub use not_found::StoreNotFound;
pub use scoped::{Scoped, WithStore};
#[cfg(feature = "custom-slot")]
pub use slot::Slot;
#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
pub use snapshot::Snapshot;
