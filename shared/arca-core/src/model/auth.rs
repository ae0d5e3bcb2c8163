//! API keys, roles and the authenticated caller.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ApiKeyId, OrgId};
use crate::model::secret::{Secret, SecretHash};
use crate::{Error, Result, validate};

/// What an API key may do. Each role includes the ones below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything in the org.
    Viewer,
    /// Also operates protection (run now, pause, resume, cancel, restore); configuring it
    /// (clusters, destinations, policies, backup definitions) takes an admin.
    Operator,
    /// Also configures protection and manages API keys and the org itself.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// What an API key can ask of the control plane: one variant per operation of the
/// service, named after its method. [`Operation::role`] is the one table of who may do
/// what: the service enforces it ([`Principal::require`]), the API's handlers check it
/// before they parse ids, and the API's OpenAPI document states it ("Role: admin.").
/// Its JSON name (`createApiKey`) is stable: audit records store it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    GetOrg,
    UpdateOrg,
    ListApiKeys,
    GetApiKey,
    CreateApiKey,
    DeleteApiKey,
    ListClusters,
    GetCluster,
    RegisterCluster,
    UpdateCluster,
    DeleteCluster,
    RotateAgentToken,
    RotateArchiveKey,
    CreateInstallLink,
    InstallAgentToken,
    ListDestinations,
    GetDestination,
    DestinationMaintenance,
    CreateDestination,
    UpdateDestination,
    DeleteDestination,
    BeginPurge,
    CompletePurge,
    ListPolicies,
    GetPolicy,
    CreatePolicy,
    UpdatePolicy,
    DeletePolicy,
    ListBackupDefinitions,
    GetBackupDefinition,
    CreateBackupDefinition,
    UpdateBackupDefinition,
    DeleteBackupDefinition,
    /// Pause and resume.
    SetBackupPaused,
    RunBackupNow,
    ListJobs,
    GetJob,
    CancelJob,
    ListRecoveryPoints,
    GetRecoveryPoint,
    /// Before its expiry: an admin's.
    DeleteRecoveryPoint,
    ListRestores,
    GetRestore,
    ListRestoreObjects,
    CreateRestore,
    /// Restore a point into scratch namespaces and check it.
    VerifyRecoveryPoint,
    ListCloudAccounts,
    GetCloudAccount,
    LinkCloudAccount,
    UpdateCloudAccount,
    DeleteCloudAccount,
    SetCloudAccountRole,
    VerifyCloudAccount,
    GetCloudInventory,
    InventoryCloudAccount,
    /// Security findings of a linked account and its last scan.
    ListCloudFindings,
    GetRecoveryPointAws,
    ListEksRecreations,
    GetEksRecreation,
    RecreateEks,
    ListRdsBackupDefinitions,
    GetRdsBackupDefinition,
    CreateRdsBackupDefinition,
    UpdateRdsBackupDefinition,
    DeleteRdsBackupDefinition,
    /// Pause and resume.
    SetRdsBackupPaused,
    RunRdsBackupNow,
    ListRdsRecoveryPoints,
    GetRdsRecoveryPoint,
    CreateRdsRestore,
    /// The org's audit trail (`GET /v1/audit`).
    ListAuditRecords,
    /// Alert channels: admin only, reads too (a webhook URL can itself be a credential).
    ListAlertChannels,
    GetAlertChannel,
    CreateAlertChannel,
    UpdateAlertChannel,
    DeleteAlertChannel,
    TestAlertChannel,
    /// The alert delivery log (no secret, no URL in it).
    ListAlertDeliveries,
}

impl Operation {
    /// The stable name, as audit records and `GET /v1/audit?operation=` spell it.
    pub fn name(self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(name)) => name,
            _ => format!("{self:?}"),
        }
    }

    /// The least role the operation takes.
    pub const fn role(self) -> Role {
        use Operation::*;
        match self {
            GetOrg
            | ListClusters
            | GetCluster
            | ListDestinations
            | GetDestination
            | DestinationMaintenance
            | ListPolicies
            | GetPolicy
            | ListBackupDefinitions
            | GetBackupDefinition
            | ListJobs
            | GetJob
            | ListRecoveryPoints
            | GetRecoveryPoint
            | ListRestores
            | GetRestore
            | ListRestoreObjects
            | ListCloudAccounts
            | GetCloudAccount
            | GetCloudInventory
            | ListCloudFindings
            | GetRecoveryPointAws
            | ListEksRecreations
            | GetEksRecreation
            | ListRdsBackupDefinitions
            | GetRdsBackupDefinition
            | ListRdsRecoveryPoints
            | GetRdsRecoveryPoint
            | ListAlertDeliveries => Role::Viewer,
            // Operating protection: run now, pause, resume, cancel, restore, inventory.
            SetBackupPaused
            | RunBackupNow
            | CancelJob
            | CreateRestore
            | VerifyRecoveryPoint
            | InventoryCloudAccount
            | SetRdsBackupPaused
            | RunRdsBackupNow
            | CreateRdsRestore => Role::Operator,
            // Configuring it, and the org and its keys.
            UpdateOrg
            | ListApiKeys
            | GetApiKey
            | CreateApiKey
            | DeleteApiKey
            | RegisterCluster
            | UpdateCluster
            | DeleteCluster
            | RotateAgentToken
            | RotateArchiveKey
            | CreateInstallLink
            | InstallAgentToken
            | CreateDestination
            | UpdateDestination
            | DeleteDestination
            | DeleteRecoveryPoint
            | BeginPurge
            | CompletePurge
            | CreatePolicy
            | UpdatePolicy
            | DeletePolicy
            | CreateBackupDefinition
            | UpdateBackupDefinition
            | DeleteBackupDefinition
            | LinkCloudAccount
            | UpdateCloudAccount
            | DeleteCloudAccount
            | SetCloudAccountRole
            | VerifyCloudAccount
            | RecreateEks
            | CreateRdsBackupDefinition
            | UpdateRdsBackupDefinition
            | DeleteRdsBackupDefinition
            | ListAuditRecords
            | ListAlertChannels
            | GetAlertChannel
            | CreateAlertChannel
            | UpdateAlertChannel
            | DeleteAlertChannel
            | TestAlertChannel => Role::Admin,
        }
    }
}

/// An API key as stored and listed: never the secret, and not even its hash (the hash
/// lives only in the index entry that finds the key; see `store::records`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub org_id: OrgId,
    pub name: String,
    pub role: Role,
    /// The first characters of the key, for telling keys apart in a list.
    pub snippet: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
    #[serde(skip)]
    pub secret_hash: Option<SecretHash>,
}

/// The request to create a key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeySpec {
    pub name: String,
    pub role: Role,
}

impl ApiKeySpec {
    pub fn validated(mut self) -> Result<Self> {
        self.name = validate::name("name", &self.name)?;
        Ok(self)
    }
}

/// The answer to creating a key: the only time the plaintext `secret` is returned.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub api_key: ApiKey,
    pub secret: Secret,
}

/// Who is calling: the result of authentication, and the scope of every service call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    pub org_id: OrgId,
    pub role: Role,
    /// The key that authenticated; `None` for internal callers (schedulers, tooling).
    pub api_key_id: Option<ApiKeyId>,
}

impl Principal {
    /// An internal caller acting inside one org with full rights (dispatch, retention,
    /// operator tooling). Never built from a request.
    pub fn system(org_id: OrgId) -> Self {
        Principal {
            org_id,
            role: Role::Admin,
            api_key_id: None,
        }
    }

    /// Fails with `Forbidden` unless the caller's role includes the one `operation` takes.
    pub fn require(&self, operation: Operation) -> Result<()> {
        let needed = operation.role();
        if self.role >= needed {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "this needs the {} role; the key has {}",
                needed.as_str(),
                self.role.as_str()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_include_the_ones_below() {
        let p = |role| Principal {
            org_id: OrgId::new(),
            role,
            api_key_id: None,
        };
        assert!(p(Role::Admin).require(Operation::CancelJob).is_ok());
        assert!(p(Role::Operator).require(Operation::GetJob).is_ok());
        assert!(p(Role::Operator).require(Operation::DeletePolicy).is_err());
        let err = p(Role::Viewer).require(Operation::RunBackupNow).unwrap_err();
        assert_eq!(
            err.to_string(),
            "forbidden: this needs the operator role; the key has viewer"
        );
        assert_eq!(serde_json::to_string(&Role::Operator).unwrap(), "\"operator\"");
    }

    #[test]
    fn the_created_key_shows_its_secret_once_but_never_in_debug() {
        let secret = Secret::from_presented("arca_topsecretvalue");
        let created = CreatedApiKey {
            api_key: ApiKey {
                id: ApiKeyId::new(),
                org_id: OrgId::new(),
                name: "ci".into(),
                role: Role::Viewer,
                snippet: "arca_tops".into(),
                created_at: DateTime::UNIX_EPOCH,
                updated_at: DateTime::UNIX_EPOCH,
                version: 1,
                secret_hash: Some(secret.hash()),
            },
            secret,
        };
        let json = serde_json::to_value(&created).unwrap();
        assert_eq!(json["secret"], "arca_topsecretvalue");
        assert_eq!(json["role"], "viewer");
        assert!(json.get("secretHash").is_none());
        assert!(!format!("{created:?}").contains("topsecretvalue"));
    }
}
