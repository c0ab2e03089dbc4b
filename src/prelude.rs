//! The core names, for a glob import: `use async_local_storage::prelude::*;`.
//!
//! It holds the extension trait and the free functions, and no module: a
//! glob import of it cannot shadow a crate (`tokio`, `log`, ...) whatever
//! features are on. Adapters stay under [`adapters`](crate::adapters).
//!
//! # Examples
//!
//! ```
//! use async_local_storage::prelude::*;
//!
//! let seen = futures::executor::block_on(async { get::<u8>() }.with_store(3u8));
//! assert_eq!(seen, Some(3));
//! ```

#[cfg(feature = "alloc")]
pub use crate::Snapshot;
pub use crate::{
    exit, get, is_set, isolate, scope, scope_local, try_get, try_with, with, StoreNotFound,
    WithStore,
};
