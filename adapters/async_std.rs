//! Adapter for `async_std` (being written).
