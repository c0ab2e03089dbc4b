//! The clippy recipe's fixture: one spawn through the adapter (carries the
//! stores, allowed) and one raw `tokio::spawn` (drops them, flagged).
//! `scripts/lint_fixture.sh` expects exactly one `disallowed_methods`
//! warning, on the line marked `RAW`.

use async_local_storage::{get, WithStore};
// Load the other runtimes, so that clippy resolves (and checks) every path
// of the recipe; it ignores paths into crates the code never names.
use async_std as _;
use rayon as _;
use smol as _;

#[derive(Clone, Debug, PartialEq)]
struct RequestId(u64);

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(
        async {
            let carried = async_local_storage::adapters::tokio::spawn(async { get::<RequestId>() });
            let raw = tokio::spawn(async { get::<RequestId>() }); // RAW: the only call clippy must flag
            assert_eq!(carried.await.unwrap(), Some(RequestId(7)));
            assert_eq!(raw.await.unwrap(), None);
        }
        .with_store(RequestId(7)),
    );
}
