//! Must not build: `scope` with an `Rc`; the error names `scope_local`.
use std::rc::Rc;

fn main() {
    async_local_storage::scope(Rc::new(5u32), || ());
}
