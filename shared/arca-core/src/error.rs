//! The one error type of the core and of every port.

/// What went wrong, in terms the domain and its callers can act on.
///
/// Adapters map their SDK errors onto these variants by kind (a conditional-check
/// failure is a [`Error::Conflict`], throttling is [`Error::Transient`]), so callers never
/// match on SDK types. The typed store turns a failed *version* condition into
/// [`Error::PreconditionFailed`], so the HTTP layer can tell a stale ETag (412) from a
/// rule of the domain that refuses the change (409).
///
/// HTTP mapping: `Invalid` 400, `Unauthenticated` 401, `Forbidden` 403, `NotFound` 404,
/// `Conflict` 409, `PreconditionFailed` 412, `LimitExceeded` 422, `Transient` 503,
/// `Permanent` 500.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} not found")]
    NotFound { what: String },
    /// The request is well formed but a rule of the domain refuses it in the current
    /// state: a policy still in use, a cluster still referenced, an illegal job move.
    #[error("conflict: {message}")]
    Conflict { kind: ConflictKind, message: String },
    /// A field fails validation; `field` is its JSON path (`schedules[1].cron`).
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    /// The caller's expected version (ETag) is not the stored one: re-read and retry.
    #[error("precondition failed: {message}")]
    PreconditionFailed { message: String },
    /// Valid, but beyond what the org's plan allows; the message names the limit.
    #[error("plan limit: {message}")]
    LimitExceeded { field: String, message: String },
    /// No valid credential: deliberately says nothing about why.
    #[error("unauthenticated")]
    Unauthenticated,
    /// Authenticated, but the role (or the deployment's configuration) does not allow it.
    #[error("forbidden: {message}")]
    Forbidden { message: String },
    #[error("transient failure: {0}")]
    Transient(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("permanent failure: {0}")]
    Permanent(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which rule a [`Error::Conflict`] is about, so callers (the API's problem codes, the
/// CLI) branch on a kind instead of on message text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictKind {
    /// A storage condition failed (adapters), or a rule without a kind of its own.
    Condition,
    PolicyInUse,
    ClusterInUse,
    /// Deleting needs explicit confirmation (e.g. a cluster that still has recovery points).
    ConfirmationRequired,
    DestinationInUse,
    LastAdminKey,
    IllegalJobTransition,
    RestoreNotPossible,
    /// Lost a race with concurrent writers even after retrying: trying again may succeed.
    ConcurrentModification,
    /// The agent's session was replaced by a newer connect with the same token: the
    /// older agent must stop.
    Superseded,
    /// An agent acted on a job it does not hold (lease lapsed and redelivered, or the
    /// job ended).
    LeaseLost,
    /// An install link that is unknown or was already used (links work once).
    InstallLinkUsed,
    /// An install link past its expiry.
    InstallLinkExpired,
    /// A deleted cluster's data cannot be purged from a destination yet (a point there
    /// is locked, not due, or being deleted by a job; or the cluster exists).
    PurgeNotPossible,
    /// The deployment derives no archive keys: its agents hold their own.
    KeysHeldByAgents,
    /// The master key that derived a point's key was removed from the deployment's keyring.
    ArchiveKeyRetired,
    /// Arca-managed storage is used where the deployment has none configured (no STS
    /// vendor): nothing can reach such a destination here.
    ManagedStorageUnavailable,
    /// A recovery point's data is retained by S3 Object Lock: it cannot be deleted
    /// before the date the message names.
    RecoveryPointImmutable,
    /// A recovery point is in a state that does not allow the request (locked by hand,
    /// being written or deleted).
    RecoveryPointBusy,
}

impl ConflictKind {
    /// The stable machine code clients see.
    pub fn code(self) -> &'static str {
        match self {
            ConflictKind::Condition => "conflict",
            ConflictKind::PolicyInUse => "policy_in_use",
            ConflictKind::ClusterInUse => "cluster_in_use",
            ConflictKind::ConfirmationRequired => "confirmation_required",
            ConflictKind::DestinationInUse => "destination_in_use",
            ConflictKind::LastAdminKey => "last_admin_key",
            ConflictKind::IllegalJobTransition => "illegal_job_transition",
            ConflictKind::RestoreNotPossible => "restore_not_possible",
            ConflictKind::ConcurrentModification => "concurrent_modification",
            ConflictKind::Superseded => "superseded",
            ConflictKind::LeaseLost => "lease_lost",
            ConflictKind::InstallLinkUsed => "install_link_used",
            ConflictKind::InstallLinkExpired => "install_link_expired",
            ConflictKind::PurgeNotPossible => "purge_not_possible",
            ConflictKind::KeysHeldByAgents => "keys_held_by_agents",
            ConflictKind::ArchiveKeyRetired => "archive_key_retired",
            ConflictKind::ManagedStorageUnavailable => "managed_storage_unavailable",
            ConflictKind::RecoveryPointImmutable => "recovery_point_immutable",
            ConflictKind::RecoveryPointBusy => "recovery_point_busy",
        }
    }
}

impl Error {
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    /// A failed storage condition or a conflict without a more specific kind.
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::conflict_of(ConflictKind::Condition, message)
    }

    pub fn conflict_of(kind: ConflictKind, message: impl Into<String>) -> Self {
        Error::Conflict {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn precondition_failed(message: impl Into<String>) -> Self {
        Error::PreconditionFailed {
            message: message.into(),
        }
    }

    pub fn limit_exceeded(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::LimitExceeded {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Error::Forbidden {
            message: message.into(),
        }
    }

    pub fn transient(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Transient(source.into())
    }

    pub fn permanent(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Permanent(source.into())
    }

    /// Whether the same call may succeed if simply tried again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Transient(_))
    }

    /// A short stable label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::Conflict { .. } => "conflict",
            Error::Invalid { .. } => "invalid",
            Error::PreconditionFailed { .. } => "precondition_failed",
            Error::LimitExceeded { .. } => "limit_exceeded",
            Error::Unauthenticated => "unauthenticated",
            Error::Forbidden { .. } => "forbidden",
            Error::Transient(_) => "transient",
            Error::Permanent(_) => "permanent",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_errors_are_retryable() {
        assert!(Error::transient("throttled").is_retryable());
        assert!(!Error::permanent("access denied").is_retryable());
        assert!(!Error::conflict("version changed").is_retryable());
        assert!(!Error::not_found("policy p1").is_retryable());
    }

    #[test]
    fn messages_name_the_field() {
        let e = Error::invalid("schedule[0].cron", "expected 5 fields");
        assert_eq!(e.to_string(), "invalid schedule[0].cron: expected 5 fields");
        assert_eq!(e.metric_label(), "invalid");
    }
}
