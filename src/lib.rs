// With every adapter enabled (docs.rs, `cargo test --all-features`), the
// README is the crate documentation and all its examples are doctests.
#![cfg_attr(
    all(feature = "tokio", feature = "async-std", feature = "smol"),
    doc = include_str!("../README.md")
)]
#![cfg_attr(
    not(all(feature = "tokio", feature = "async-std", feature = "smol")),
    doc = "Node.js-style `AsyncLocalStorage` for async Rust: wrap a future with \
           [`.with_store(value)`](WithStore::with_store) and any code polled inside \
           it reads the value back by type with [`get`] or [`with`].\n\n\
           See README.md (the crate docs when all features are on) for the guide."
)]
//!
//! # The model
//!
//! A *store* is a value of some type `T` made visible to the code that runs
//! inside it. [`Scoped`] installs its store for the duration of every poll
//! of the future it wraps (and while that future is dropped), and removes it
//! before the poll returns. [`get`]/[`with`] find the innermost visible
//! store of the requested type.
//!
//! | Node.js `AsyncLocalStorage` | this crate |
//! |---|---|
//! | `als.run(store, async () => ...)` | `fut.with_store(store)` ([`WithStore::with_store`]) |
//! | `als.run(store, () => ...)` (sync callback) | [`scope(store, \|\| ...)`](scope) |
//! | `als.getStore()` | [`get::<T>()`](get), [`with(\|s: Option<&T>\| ...)`](with) |
//! | `als.exit(() => ...)` | [`exit::<T, _>(\|\| ...)`](exit), [`WithStore::without_store`] |
//! | `exit` for every store at once | [`isolate(\|\| ...)`](isolate), [`WithStore::isolated`] |
//! | one `AsyncLocalStorage` instance per kind of store | one store per *type*: use newtypes |
//! | `AsyncLocalStorage.bind`, `.snapshot()`, propagation into new promises | [`Snapshot::bind`], [`Snapshot`], the adapters' `spawn` |
//!
//! ## Where this differs from Node
//!
//! Node follows the *creation* of asynchronous work; this crate follows
//! *polling*. A future created inside a scope but awaited or polled outside
//! it does **not** see the store:
//!
//! ```
//! use async_local_storage::{get, scope};
//!
//! let fut = scope(1u32, || async { get::<u32>() }); // created inside...
//! assert_eq!(futures::executor::block_on(fut), None); // ...polled outside: not visible
//! ```
//!
//! Likewise, work spawned onto an executor starts without stores unless it
//! is spawned through an adapter (or wrapped with a [`Snapshot`]), and a
//! thread sees nothing between polls.
//!
//! # Features
//!
//! * `std` (default): the thread-local slot, [`thread`], and `alloc`.
//! * `alloc`: [`Snapshot`].
//! * `critical-section`: the ready-made no_std slot for single-core targets, which the
//!   final binary registers ([`slot::CriticalSectionSlot`]).
//! * `custom-slot`: the no_std slot supplied by your binary ([`Slot`], [`set_slot!`]).
//! * `tokio`, `async-std`, `smol`: the executor adapters.
//! * `tower`, `http`: a store per request for tower services, and for HTTP
//!   services with the response body included; `log`: stores as key-values
//!   on every `log` record ([`adapters`]).
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "std")]
extern crate std;

mod access;
#[cfg(feature = "alloc")]
mod bind;
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
