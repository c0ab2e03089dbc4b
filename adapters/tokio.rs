//! Adapter for `tokio` (being written).
