//! Must not build: an `Rc` cannot travel; the error names `with_local_store`.
use std::rc::Rc;

use async_local_storage::WithStore;

fn main() {
    let fut = async {}.with_store(Rc::new(5u32));
    drop(fut);
}
