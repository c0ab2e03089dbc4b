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
//! | `tokio` | [`adapters::tokio`](self::tokio) | tasks, local tasks, blocking closures, `JoinSet`s, driven futures |
//! | `async-std` | [`adapters::async_std`](self::async_std) | tasks, local tasks, blocking closures, driven futures |
//! | `smol` | [`adapters::smol`](self::smol) | tasks, `unblock` closures, executors, driven futures |
//! | `rayon` | [`adapters::rayon`](self::rayon) | pool jobs, `join`, scopes, `install`, parallel iterators (`.with_stores()`) |
//!
//! Every module offers the runtime's (or pool's) own spawn functions under the same
//! names and signatures; each captures a [`Snapshot`](crate::Snapshot)
//! where it is called and runs the new work inside it.

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;

#[cfg(feature = "async-std")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-std")))]
pub mod async_std;

#[cfg(feature = "smol")]
#[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
pub mod smol;

#[cfg(feature = "rayon")]
#[cfg_attr(docsrs, doc(cfg(feature = "rayon")))]
pub mod rayon;
