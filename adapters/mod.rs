//! Integrations, one module per runtime or library, each behind the Cargo
//! feature of the same name.
//!
//! They live here, one level below the crate root, so that their names never
//! shadow the crates they integrate: `use async_local_storage::*;` (or the
//! [`prelude`](crate::prelude)) next to `#[tokio::main]` keeps `tokio`
//! meaning the tokio crate, whatever features are on. Name an adapter by its
//! path, or import it under another name:
//!
//! ```
//! # #[cfg(feature = "tokio")]
//! # fn main() {
//! use async_local_storage::adapters::tokio as als;
//! # let rt = tokio::runtime::Runtime::new().unwrap();
//! # let _guard = rt.enter();
//! let task = als::spawn(async { 1 });
//! # assert_eq!(rt.block_on(task).unwrap(), 1);
//! # }
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! ```
//!
//! | feature | module | what it carries the stores into |
//! |---|---|---|
//! | `tokio` | [`adapters::tokio`] | tasks, local tasks, blocking closures, `JoinSet`s, driven futures (`block_on_with_stores`, `run_until_with_stores`) |
//! | `async-std` | [`adapters::async_std`] | tasks, local tasks, blocking closures, driven futures (`block_on`) |
//! | `smol` | [`adapters::smol`] | tasks, `unblock` closures, executors, driven futures (`run_with_stores`, `block_on`) |
//! | `tower` | [`adapters::tower`] | a [`tower`](https://docs.rs/tower) service's requests: one store per request, built from it |
//! | `http` | [`adapters::http`] | HTTP requests and their response bodies (axum, hyper, tonic) |
//! | `log` | [`adapters::log`] | every `log` record: key-values read from the visible stores |
//! | `rayon` | [`adapters::rayon`] | pool jobs, `join`, scopes, `install`, parallel iterators (`.with_stores()`) |
//!
//! Every runtime module offers the runtime's own spawn functions under the
//! same names and signatures; each captures a [`Snapshot`]
//! where it is called and runs the new work inside it. Each also offers a
//! way to drive the runtime from inside a scope (`block_on` and the like)
//! that keeps the caller's stores to the driven future and shows none to
//! the other tasks polled meanwhile, which the runtime's own `block_on`
//! would lend them to. `rayon` carries them into pool jobs;
//! `tower` and `http` install a store per request; `log` reads the stores
//! into log records.
//!
// Links to `Snapshot` and the modules, to docs.rs for those whose feature is off in this
// build (rather than brackets around a name that resolves to nothing).
#![cfg_attr(feature = "alloc", doc = "[`Snapshot`]: crate::Snapshot")]
#![cfg_attr(
    not(feature = "alloc"),
    doc = "[`Snapshot`]: https://docs.rs/async-local-storage/latest/async_local_storage/struct.Snapshot.html"
)]
#![cfg_attr(feature = "tokio", doc = "[`adapters::tokio`]: self::tokio")]
#![cfg_attr(
    not(feature = "tokio"),
    doc = "[`adapters::tokio`]: https://docs.rs/async-local-storage/latest/async_local_storage/adapters/tokio/index.html"
)]
#![cfg_attr(
    feature = "async-std",
    doc = "[`adapters::async_std`]: self::async_std"
)]
#![cfg_attr(
    not(feature = "async-std"),
    doc = "[`adapters::async_std`]: https://docs.rs/async-local-storage/latest/async_local_storage/adapters/async_std/index.html"
)]
#![cfg_attr(feature = "smol", doc = "[`adapters::smol`]: self::smol")]
#![cfg_attr(
    not(feature = "smol"),
    doc = "[`adapters::smol`]: https://docs.rs/async-local-storage/latest/async_local_storage/adapters/smol/index.html"
)]
#![cfg_attr(feature = "tower", doc = "[`adapters::tower`]: self::tower")]
#![cfg_attr(
    not(feature = "tower"),
    doc = "[`adapters::tower`]: https://docs.rs/async-local-storage/latest/async_local_storage/adapters/tower/index.html"
)]
#![cfg_attr(feature = "http", doc = "[`adapters::http`]: self::http")]
#![cfg_attr(
    not(feature = "http"),
    doc = "[`adapters::http`]: https://docs.rs/async-local-storage/latest/async_local_storage/adapters/http/index.html"
)]
#![cfg_attr(feature = "log", doc = "[`adapters::log`]: self::log")]
#![cfg_attr(
    not(feature = "log"),
    doc = "[`adapters::log`]: https://docs.rs/async-local-storage/latest/async_local_storage/adapters/log/index.html"
)]
#![cfg_attr(feature = "rayon", doc = "[`adapters::rayon`]: self::rayon")]
#![cfg_attr(
    not(feature = "rayon"),
    doc = "[`adapters::rayon`]: https://docs.rs/async-local-storage/latest/async_local_storage/adapters/rayon/index.html"
)]

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;

#[cfg(feature = "async-std")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-std")))]
pub mod async_std;

#[cfg(feature = "smol")]
#[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
pub mod smol;

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;

#[cfg(feature = "log")]
#[cfg_attr(docsrs, doc(cfg(feature = "log")))]
pub mod log;

#[cfg(feature = "rayon")]
#[cfg_attr(docsrs, doc(cfg(feature = "rayon")))]
pub mod rayon;
