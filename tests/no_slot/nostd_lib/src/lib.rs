//! A no_std library that uses async-local-storage the way its README tells
//! no_std libraries to: `default-features = false, features = ["critical-section"]`.
#![no_std]

/// Reads the caller's request id, if any.
pub fn request_id() -> Option<u32> {
    async_local_storage::get::<u32>()
}

/// Runs `f` with `id` as the request id.
pub fn with_request_id<R>(id: u32, f: impl FnOnce() -> R) -> R {
    async_local_storage::scope(id, f)
}
