//! Must not build: `.with_store` on a synchronous value, then `.await`; the
//! error says to use `scope(value, || ..)`.
use async_local_storage::WithStore;

fn load() -> u32 {
    1
}

async fn handler() -> u32 {
    load().with_store(7u64).await
}

fn main() {
    drop(handler());
}
