//! Adapter for `smol` (being written).
