//! Typed identifiers. Every entity id is a ULID behind a prefix that names its kind,
//! so an id pasted into the wrong place fails to parse instead of silently matching.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::Error;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Ulid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn new() -> Self {
                Self(Ulid::new())
            }

            /// An id minted at `time`: ids are ULIDs, so ids minted later sort later,
            /// which is what makes `JOB#<ulid>` keys time-ordered.
            pub fn at(time: std::time::SystemTime) -> Self {
                Self(Ulid::from_datetime(time))
            }

            pub fn from_ulid(ulid: Ulid) -> Self {
                Self(ulid)
            }

            pub fn ulid(&self) -> Ulid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Error> {
                s.strip_prefix(concat!($prefix, "_"))
                    .and_then(|rest| Ulid::from_string(rest).ok())
                    .map(Self)
                    .ok_or_else(|| {
                        Error::invalid(
                            stringify!($name),
                            format!("expected an id of the form {}_<ULID>, got {s:?}", $prefix),
                        )
                    })
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;

            fn try_from(s: String) -> Result<Self, Error> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.to_string()
            }
        }
    };
}

id_type!(
    /// A tenant.
    OrgId, "org"
);
id_type!(
    /// A Kubernetes cluster registered with Arca.
    ClusterId, "cl"
);
id_type!(
    /// A unit of work (backup, restore, copy, ...).
    JobId, "job"
);
id_type!(
    /// An API key (the id, never the secret).
    ApiKeyId, "key"
);
id_type!(
    /// An object-storage destination for backup data.
    DestinationId, "dst"
);
id_type!(
    /// A schedule-and-retention policy.
    PolicyId, "pol"
);
id_type!(
    /// A Kubernetes backup definition.
    BackupDefinitionId, "bkp"
);
id_type!(
    /// A recovery point (a backup instance that can be restored).
    RecoveryPointId, "rp"
);
id_type!(
    /// A restore request.
    RestoreId, "rst"
);
id_type!(
    /// A linked AWS account (Arca's record of it; the 12-digit account id is a field).
    CloudAccountId, "ca"
);
id_type!(
    /// The re-creation of an EKS cluster from a recovery point's saved metadata.
    EksRecreationId, "eksr"
);
id_type!(
    /// An RDS backup definition (databases of one linked account and region).
    RdsBackupDefinitionId, "rdsbkp"
);
id_type!(
    /// An audit record (minted at the time of the call, so `AUDIT#<ulid>` keys are
    /// time-ordered).
    AuditRecordId, "aud"
);
id_type!(
    /// An alert channel (a webhook or an email list an org's events are sent to).
    AlertChannelId, "ach"
);
id_type!(
    /// One delivery of one alert event to one channel (minted when the event is raised,
    /// so `ALERTDLV#<ulid>` keys are time-ordered).
    AlertDeliveryId, "adl"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_strings_and_json() {
        let id = ClusterId::new();
        let text = id.to_string();
        assert!(text.starts_with("cl_"));
        assert_eq!(text.parse::<ClusterId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<ClusterId>(&json).unwrap(), id);
    }

    #[test]
    fn an_id_of_another_kind_is_rejected() {
        let job = JobId::new().to_string();
        let err = job.parse::<ClusterId>().unwrap_err();
        assert!(err.to_string().contains("cl_<ULID>"), "{err}");
        assert!("cl_not-a-ulid".parse::<ClusterId>().is_err());
    }

    #[test]
    fn ids_minted_later_sort_later() {
        let t0 = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let a = JobId::at(t0);
        let b = JobId::at(t0 + std::time::Duration::from_millis(1));
        assert!(a.ulid().to_string() < b.ulid().to_string());
        assert_eq!(PolicyId::new().to_string().split('_').next(), Some("pol"));
    }
}
