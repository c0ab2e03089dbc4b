//! A glob import of the crate root and of the prelude, next to
//! `#[tokio::main]`, with every adapter feature on: `tokio` must still name
//! the tokio crate (the adapters live under `async_local_storage::adapters`).
#![allow(unused_imports)]

use async_local_storage::prelude::*;
use async_local_storage::*;

#[derive(Clone, Debug, PartialEq)]
struct RequestId(u64);

#[tokio::main]
async fn main() {
    let seen = async {
        let task = adapters::tokio::spawn(async { get::<RequestId>() });
        let plain = tokio::spawn(async { get::<RequestId>() });
        (task.await.unwrap(), plain.await.unwrap())
    }
    .with_store(RequestId(7))
    .await;
    assert_eq!(seen, (Some(RequestId(7)), None));
    println!("glob imports next to #[tokio::main]: ok");
}
