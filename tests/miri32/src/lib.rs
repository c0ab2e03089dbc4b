//! Empty: the tests are the crate's own (see Cargo.toml).

use async_local_storage as _;
