//! Arca's repository: how backups are laid out in an object store. The full format
//! (packs, index, snapshot manifests, keys, garbage collection) is the data-path issue's;
//! this crate already owns the one thing every other part must not invent for itself:
//! the object keys.

pub mod layout;
