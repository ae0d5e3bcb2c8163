//! The repository's error type. Every variant renders as one line that names the cause, so
//! the CLI can print it as is.

use crate::id::Id;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("no repository at {0} (run `repo init` first)")]
    NotARepository(String),
    #[error("a repository already exists at {0}")]
    AlreadyExists(String),
    #[error("wrong passphrase: no key file of this repository opens with it")]
    WrongPassword,
    #[error(
        "unsupported repository format version {0} (this build reads versions {oldest} to {newest}; a repository of another version is not opened)",
        oldest = crate::format::SUPPORTED_VERSIONS.start(),
        newest = crate::format::SUPPORTED_VERSIONS.end()
    )]
    UnsupportedVersion(u32),
    /// An object larger than its kind may be: refused before it is read.
    #[error("object {object} is larger than the {max} bytes its kind may be: hostile or damaged, not read")]
    TooLarge { object: String, max: u64 },
    /// An object failed authentication or does not decode: tampering or bit rot.
    #[error("corrupt object {object}: {detail}")]
    Corrupt { object: String, detail: String },
    /// A blob a snapshot needs is damaged or missing; names the snapshot.
    #[error("snapshot {snapshot}: {detail}")]
    SnapshotDamaged { snapshot: String, detail: String },
    #[error("snapshot {0} not found")]
    SnapshotNotFound(String),
    #[error("snapshot prefix {0} is ambiguous")]
    AmbiguousSnapshot(String),
    #[error("blob {0} is not in the index")]
    MissingBlob(Id),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("object store: {context}: {source}")]
    Store {
        context: String,
        #[source]
        source: arca_core::Error,
    },
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The key service (KMS) refused to wrap or unwrap a key; names the key and why.
    #[error("{0}")]
    KeyService(String),
    /// A concurrent garbage collection removed a pack this backup relied on; rerun it.
    #[error("{0}")]
    Concurrent(String),
    #[error("internal: {0}")]
    Internal(String),
}

pub type Result<T, E = RepoError> = std::result::Result<T, E>;

impl RepoError {
    pub fn corrupt(object: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        RepoError::Corrupt {
            object: object.into(),
            detail: detail.to_string(),
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        RepoError::Io {
            context: context.into(),
            source,
        }
    }

    pub fn store(context: impl Into<String>, source: arca_core::Error) -> Self {
        RepoError::Store {
            context: context.into(),
            source,
        }
    }
}

/// A decoder's complaint about bytes that are not a valid object of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

impl FormatError {
    pub fn new(message: impl Into<String>) -> Self {
        FormatError(message.into())
    }
}
