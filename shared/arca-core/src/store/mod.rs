//! Storage: the port (`item`) and, above it, the typed tenant-scoped store.

pub mod item;
