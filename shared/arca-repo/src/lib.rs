//! Arca's repository: how backups are laid out in an object store, and the data path that
//! writes and reads them. The format is `docs/repository-format.md` (version 2).
//!
//! Layering: object keys are `arca_core::model::layout::RepositoryLayout`'s (the one owner of
//! a destination's keys); [`format`] and [`keys::decode_key_file`] are the
//! pure encoders/decoders (the fuzz targets' entry points); [`crypto`] the keys and
//! primitives; [`repo`] an open repository over any [`arca_core::ports::ObjectStore`];
//! [`backup`], [`restore`], [`gc`] and [`verify`] the operations; [`immutability`] the
//! S3 Object Lock of what a snapshot reads.

pub mod backup;
pub mod crypto;
pub mod error;
pub mod format;
pub mod gc;
pub mod id;
pub mod immutability;
pub mod keys;
pub mod lock;
pub mod pack;
pub mod repo;
pub mod restore;
pub mod verify;

pub use backup::{VolumeBackup, backup_stream, backup_volume};
pub use error::{FormatError, RepoError, Result};
pub use format::{BackupStats, Config, Snapshot, SnapshotKind};
pub use gc::{GcOptions, GcReport, gc};
pub use id::Id;
pub use keys::{KdfParams, KeyWrapper, PassphraseWrapper};
pub use repo::Repository;
pub use restore::{CompareReport, RestoreOptions, RestoreStats, compare, restore};
pub use verify::{VerifyReport, verify};
