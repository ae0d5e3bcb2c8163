//! The API's input documents. They mirror the core's spec types field for field, but
//! deny unknown fields (a typo is a 400 naming it, not a silently ignored setting) and
//! describe themselves for the OpenAPI document. Each converts into its core type with a
//! struct literal naming every field (`mirror!`), so a field added to the core fails to
//! compile here until mirrored;
//! `tests::documents_read_like_the_core` checks the defaults agree.
//!
//! Outputs are the core's own types, serialized as they are.

use std::collections::BTreeMap;

use arca_core::control_plane::{RunNowRequest, SignupRequest};
use arca_core::ids::{CloudAccountId, ClusterId, DestinationId, PolicyId, RecoveryPointId};
use arca_core::model::auth::{ApiKeySpec, Role};
use arca_core::model::backup::{BackupDefinitionSpec, PvMode, Selection};
use arca_core::model::cloud::account::CloudAccountSpec;
use arca_core::model::cloud::ebs::ClusterAwsLink;
use arca_core::model::cluster::ClusterSpec;
use arca_core::model::destination::{CustomerKey, DestinationSpec, DestinationTarget, LockMode, ObjectLock};
use arca_core::model::hooks::{BackupHook, HookTemplate, OnError, RestoreHook};
use arca_core::model::org::OrgSpec;
use arca_core::model::policy::Retention;
use arca_core::model::policy::{PolicySpec, ScheduleSpec};
use arca_core::model::restore::{ExistingResourcePolicy, RestoreSpec};
use arca_core::model::verification::{VerificationProbe, VerificationSpec, VerifyWhen};
use serde::Deserialize;
use utoipa::ToSchema;

/// `From<$body> for $core`, each field (or variant) named once: a field the core adds
/// fails to compile here until it is mirrored. A field of a body type of its own says
/// how it converts: `into`, `map_into` (an `Option`), `collect_into` (a `Vec`). `enum`
/// mirrors an enum variant by variant.
macro_rules! mirror {
    ($body:ident => $core:ident { $($field:ident $(: $how:ident)?),* $(,)? }) => {
        impl From<$body> for $core {
            fn from(b: $body) -> Self {
                $core { $($field: mirror!(@$($how)? b.$field)),* }
            }
        }
    };
    (enum $body:ident => $core:ident { $($variant:ident $({ $($field:ident),* $(,)? })?),* $(,)? }) => {
        impl From<$body> for $core {
            fn from(b: $body) -> Self {
                match b {
                    $($body::$variant $({ $($field),* })? => $core::$variant $({ $($field),* })?,)*
                }
            }
        }
    };
    (@into $value:expr) => { $value.into() };
    (@map_into $value:expr) => { $value.map(Into::into) };
    (@collect_into $value:expr) => { $value.into_iter().map(Into::into).collect() };
    (@ $value:expr) => { $value };
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignupBody {
    pub org_name: String,
    /// Name of the first admin key ("bootstrap admin" when absent).
    #[serde(default)]
    pub admin_key_name: Option<String>,
}

mirror!(SignupBody => SignupRequest { org_name, admin_key_name });

/// `PUT /v1/operator/orgs/{id}/plan`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanBody {
    /// `free` (retention capped at 30 days, no PV data copies) or `paid`.
    #[schema(value_type = String, example = "paid")]
    pub plan: arca_core::model::plan::Plan,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrgBody {
    pub name: String,
    /// The last fallback of destination precedence (definition > cluster > org).
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "dst_01J0000000000000000000000")]
    pub default_destination_id: Option<DestinationId>,
    /// Days the org's audit records are kept, 1 to 3650 (default 365); absent: unchanged.
    #[serde(default)]
    pub audit_retention_days: Option<u32>,
}

mirror!(OrgBody => OrgSpec { name, default_destination_id, audit_retention_days });

#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleBody {
    Viewer,
    Operator,
    Admin,
}

mirror!(enum RoleBody => Role { Viewer, Operator, Admin });

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyBody {
    pub name: String,
    pub role: RoleBody,
}

mirror!(ApiKeyBody => ApiKeySpec { name, role: into });

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterBody {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Arca's own metadata, not Kubernetes labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub default_destination_id: Option<DestinationId>,
    /// Where the cluster lives on AWS: its EBS volumes are then snapshotted through the
    /// linked account, and its EKS metadata kept with every backup.
    #[serde(default)]
    pub aws: Option<ClusterAwsBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterAwsBody {
    #[schema(value_type = String, example = "ca_01J0000000000000000000000")]
    pub cloud_account_id: CloudAccountId,
    #[schema(example = "us-east-1")]
    pub region: String,
    #[serde(default)]
    pub eks_cluster_name: Option<String>,
}

mirror!(ClusterBody => ClusterSpec { name, description, tags, default_destination_id, aws: map_into });
mirror!(ClusterAwsBody => ClusterAwsLink { cloud_account_id, region, eks_cluster_name });

/// Where backup data goes, by `kind`. (Fields are camelCase per variant rather than by
/// serde's `rename_all_fields`, which the OpenAPI derive does not read.)
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum TargetBody {
    /// A bucket Arca operates.
    ArcaManaged {
        #[serde(default)]
        region: Option<String>,
    },
    /// A bucket of yours, on S3 or an S3-compatible service.
    #[serde(rename_all = "camelCase")]
    S3 {
        #[serde(default)]
        endpoint: Option<String>,
        bucket: String,
        region: String,
        #[serde(default)]
        prefix: String,
        /// Where the credentials are kept (a secret's name or ARN), never the credentials.
        #[serde(default)]
        credentials_ref: Option<String>,
        #[serde(default)]
        skip_tls_verify: bool,
        /// Path-style addressing; absent: path style exactly when `endpoint` is set.
        #[serde(default)]
        path_style: Option<bool>,
        /// PEM certificates to trust for the endpoint (a private CA).
        #[serde(default)]
        ca_bundle: Option<String>,
    },
    /// A directory on the machine (single-machine mode only).
    LocalFilesystem { path: String },
}

mirror!(enum TargetBody => DestinationTarget {
    ArcaManaged { region },
    S3 { endpoint, bucket, region, prefix, credentials_ref, skip_tls_verify, path_style, ca_bundle },
    LocalFilesystem { path },
});

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationBody {
    pub name: String,
    pub target: TargetBody,
    /// Immutable backups (S3 Object Lock): every object a backup writes or reuses is
    /// retained until its recovery point's expiry plus the gc grace period. The bucket
    /// must have Object Lock enabled; Arca-managed storage has it when the stack was
    /// deployed with `ManagedStorageObjectLock` (then every managed destination is
    /// immutable in that mode, unless this says another).
    #[serde(default)]
    pub object_lock: Option<ObjectLockBody>,
    /// A KMS key of yours that wraps the keys sealing this destination's data: the agent
    /// keeps each cluster's key in the destination wrapped by it and unwraps it through
    /// KMS (its own identity, or the bucket's credentialsRef) for every job; Arca's control
    /// plane never holds those keys. Setting another KMS key re-wraps them at each
    /// cluster's next backup (the data is not rewritten); it cannot be removed while
    /// recovery points sealed with it live here.
    #[serde(default)]
    pub customer_key: Option<CustomerKeyBody>,
}

mirror!(DestinationBody => DestinationSpec { name, target: into, object_lock: map_into, customer_key: map_into });

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomerKeyBody {
    /// `arn:aws:kms:<region>:<account>:key/<id>` (or `alias/<name>`).
    pub kms_key_arn: String,
    /// A KMS endpoint to call instead of the region's (a VPC endpoint without private DNS).
    #[serde(default)]
    pub endpoint: Option<String>,
}

mirror!(CustomerKeyBody => CustomerKey { kms_key_arn, endpoint });

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectLockBody {
    pub mode: LockModeBody,
}

mirror!(ObjectLockBody => ObjectLock { mode: into });

/// GOVERNANCE: no one without `s3:BypassGovernanceRetention` deletes early (Arca never
/// has it); COMPLIANCE: no one at all, the AWS account's root included.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LockModeBody {
    Governance,
    Compliance,
}

mirror!(enum LockModeBody => LockMode { Governance, Compliance });

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleBody {
    /// Five fields (minute hour day-of-month month day-of-week), in the policy's timezone.
    #[schema(example = "0 * * * *")]
    pub cron: String,
    /// Days a recovery point is kept (capped by the plan).
    pub retain_days: u32,
    /// Keep at least this many most recent points, whatever their age.
    #[serde(default)]
    pub keep_last: Option<u32>,
}

fn utc() -> String {
    "UTC".to_owned()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyBody {
    pub name: String,
    /// An IANA timezone name; the cron expressions are read in it.
    #[serde(default = "utc")]
    pub timezone: String,
    pub schedules: Vec<ScheduleBody>,
    #[serde(default)]
    pub suspended: bool,
}

mirror!(PolicyBody => PolicySpec { name, timezone, schedules: collect_into, suspended });
mirror!(ScheduleBody => ScheduleSpec { cron, retain_days, keep_last });

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SelectionBody {
    /// Every namespace, and cluster-scoped resources. Excludes `namespaces`.
    #[serde(default)]
    pub full_cluster: bool,
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Label selector terms, ANDed.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub include_kinds: Vec<String>,
    #[serde(default)]
    pub exclude_kinds: Vec<String>,
}

mirror!(SelectionBody => Selection { full_cluster, namespaces, labels, include_kinds, exclude_kinds });

#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum PvModeBody {
    None,
    #[default]
    Snapshot,
    SnapshotAndCopy,
}

mirror!(enum PvModeBody => PvMode { None, Snapshot, SnapshotAndCopy });

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupBody {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Fixed at creation.
    #[schema(value_type = String)]
    pub cluster_id: ClusterId,
    pub selection: SelectionBody,
    #[serde(default)]
    pub pv_mode: PvModeBody,
    #[serde(default)]
    pub delete_snapshot_after_copy: bool,
    /// Absent: runs on demand only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub policy_id: Option<PolicyId>,
    /// Overrides the cluster's and the org's default destination.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub destination_id: Option<DestinationId>,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Commands run in selected Pods around the volume snapshots (Pods may also ask
    /// for hooks with Velero's annotations, `pre.hook.backup.velero.io/command`, ...).
    #[serde(default)]
    pub hooks: Vec<HookBody>,
    /// Restore verification of its points (into scratch namespaces, checked, removed).
    #[serde(default)]
    pub verification: Option<VerificationBody>,
}

mirror!(BackupBody => BackupDefinitionSpec {
    name, description, cluster_id, selection: into, pv_mode: into, delete_snapshot_after_copy, policy_id,
    destination_id, paused, tags, hooks: collect_into, verification: map_into,
});

/// When and where a definition's points are verified.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerificationBody {
    pub when: VerifyWhenBody,
    /// Where the scratch restore runs; absent: the definition's own cluster.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub target_cluster_id: Option<ClusterId>,
    #[serde(default)]
    pub probe: Option<ProbeBody>,
}

mirror!(VerificationBody => VerificationSpec { when: into, target_cluster_id, probe: map_into });

/// `afterBackup`: each point as soon as its backup ends; `weekly`: the newest point,
/// when none was verified for a week.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum VerifyWhenBody {
    AfterBackup,
    Weekly,
}

mirror!(enum VerifyWhenBody => VerifyWhen { AfterBackup, Weekly });

/// A Job of this image, run in the first scratch namespace once everything is restored;
/// it must succeed. It finds the namespaces in `ARCA_VERIFY_NAMESPACES`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProbeBody {
    pub image: String,
    /// argv; empty: the image's entrypoint.
    #[serde(default)]
    pub command: Vec<String>,
    /// 1 to 3600; 600 when absent.
    #[serde(default = "default_probe_timeout")]
    pub timeout_seconds: u32,
}

fn default_probe_timeout() -> u32 {
    arca_core::model::verification::DEFAULT_PROBE_TIMEOUT_SECONDS
}

mirror!(ProbeBody => VerificationProbe { image, command, timeout_seconds });

/// Options of a verification; the body may be empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyBody {
    /// Where to restore; absent: the definition's verification cluster, else the
    /// point's own.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub target_cluster_id: Option<ClusterId>,
}

/// Commands run in selected Pods around the volume snapshots: `pre` before, `post`
/// right after (whatever the snapshots did), in each running Pod the hook selects.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookBody {
    /// Names the hook in outcomes; unique in the definition (DNS label).
    pub name: String,
    /// Namespaces whose Pods it runs in; empty: every namespace the backup selects.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Pod label selector terms, ANDed.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Absent: the Pod's first container.
    #[serde(default)]
    pub container: Option<String>,
    #[serde(default)]
    pub template: Option<HookTemplateBody>,
    /// Freeze this mount (fsfreeze) inside the template's commands.
    #[serde(default)]
    pub freeze_path: Option<String>,
    /// argv before the snapshots; replaces the template's.
    #[serde(default)]
    pub pre: Vec<String>,
    /// argv after the snapshots; replaces the template's.
    #[serde(default)]
    pub post: Vec<String>,
    /// Each command's time limit (1 to 3600; 30 when absent).
    #[serde(default = "default_hook_timeout")]
    pub timeout_seconds: u32,
    #[serde(default)]
    pub on_error: OnErrorBody,
}

fn default_hook_timeout() -> u32 {
    arca_core::model::hooks::DEFAULT_TIMEOUT_SECONDS
}

mirror!(HookBody => BackupHook {
    name, namespaces, labels, container, template: map_into, freeze_path, pre, post, timeout_seconds,
    on_error: into,
});

#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum HookTemplateBody {
    Postgresql,
    Mysql,
    Mongodb,
    Fsfreeze,
}

mirror!(enum HookTemplateBody => HookTemplate { Postgresql, Mysql, Mongodb, Fsfreeze });

/// What a failed hook command does: fail the backup, or go on (the backup ends PARTIAL).
#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnErrorBody {
    #[default]
    Fail,
    Continue,
}

mirror!(enum OnErrorBody => OnError { Fail, Continue });

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetentionBody {
    pub retain_days: u32,
    #[serde(default)]
    pub keep_last: Option<u32>,
}

/// Options of a run-now; the body may be empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunNowBody {
    /// Without it, the first schedule row of the definition's policy decides.
    #[serde(default)]
    pub retention: Option<RetentionBody>,
}

mirror!(RunNowBody => RunNowRequest { retention: map_into });
mirror!(RetentionBody => Retention { retain_days, keep_last });

#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExistingResourcePolicyBody {
    #[default]
    Skip,
    Update,
    Fail,
}

mirror!(enum ExistingResourcePolicyBody => ExistingResourcePolicy { Skip, Update, Fail });

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreBody {
    #[schema(value_type = String)]
    pub recovery_point_id: RecoveryPointId,
    /// Must be ACTIVE; may differ from the source cluster (migration).
    #[schema(value_type = String)]
    pub target_cluster_id: ClusterId,
    /// Empty: everything the recovery point holds.
    #[serde(default)]
    pub selection: SelectionBody,
    #[serde(default)]
    pub namespace_prefix: String,
    #[serde(default)]
    pub namespace_suffix: String,
    #[serde(default)]
    pub namespace_map: BTreeMap<String, String>,
    #[serde(default)]
    pub storage_class_map: BTreeMap<String, String>,
    #[serde(default)]
    pub existing_resource_policy: ExistingResourcePolicyBody,
    #[serde(default = "yes")]
    pub restore_pvs: bool,
    /// Commands run in the restored workloads' Pods once they are Ready (Pod templates
    /// may also ask with Velero's `post.hook.restore.velero.io/command`, ...).
    #[serde(default)]
    pub hooks: Vec<RestoreHookBody>,
}

mirror!(RestoreBody => RestoreSpec {
    recovery_point_id, target_cluster_id, selection: into, namespace_prefix, namespace_suffix, namespace_map,
    storage_class_map, existing_resource_policy: into, restore_pvs, hooks: collect_into,
});

/// A command run in the Pods of restored workloads once they are Ready.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreHookBody {
    /// Names the hook in outcomes; unique in the restore (DNS label).
    pub name: String,
    /// The recovery point's namespaces (before renaming) it runs in; empty: all.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Pod label selector terms, ANDed, against the workload's Pod template.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Absent: the Pod's first container.
    #[serde(default)]
    pub container: Option<String>,
    /// argv of the command.
    pub command: Vec<String>,
    /// The command's time limit (1 to 3600; 30 when absent).
    #[serde(default = "default_hook_timeout")]
    pub timeout_seconds: u32,
    /// How long to wait for the Pods to be Ready (1 to 3600; 300 when absent).
    #[serde(default = "default_hook_wait")]
    pub wait_seconds: u32,
    #[serde(default)]
    pub on_error: OnErrorBody,
}

fn default_hook_wait() -> u32 {
    arca_core::model::hooks::DEFAULT_WAIT_SECONDS
}

mirror!(RestoreHookBody => RestoreHook {
    name, namespaces, labels, container, command, timeout_seconds, wait_seconds, on_error: into,
});

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;

    /// The document read through the API's type and converted equals the core's own
    /// reading of it: same fields, same defaults.
    fn same<B: DeserializeOwned + Into<C>, C: DeserializeOwned + PartialEq + std::fmt::Debug>(doc: serde_json::Value) {
        let via_api: C = serde_json::from_value::<B>(doc.clone()).unwrap().into();
        let via_core: C = serde_json::from_value(doc.clone()).unwrap();
        assert_eq!(via_api, via_core, "{doc}");
    }

    #[test]
    fn documents_read_like_the_core() {
        let cl = ClusterId::new().to_string();
        let rp = RecoveryPointId::new().to_string();
        let dst = DestinationId::new().to_string();
        let pol = PolicyId::new().to_string();
        same::<SignupBody, SignupRequest>(json!({ "orgName": "acme" }));
        same::<OrgBody, OrgSpec>(json!({ "name": "acme", "defaultDestinationId": dst }));
        same::<ApiKeyBody, ApiKeySpec>(json!({ "name": "ci", "role": "operator" }));
        same::<ClusterBody, ClusterSpec>(json!({ "name": "prod" }));
        same::<ClusterBody, ClusterSpec>(
            json!({ "name": "prod", "description": "d", "tags": { "a": "b" }, "defaultDestinationId": dst }),
        );
        same::<DestinationBody, DestinationSpec>(json!({ "name": "d", "target": { "kind": "ARCA_MANAGED" } }));
        same::<DestinationBody, DestinationSpec>(
            json!({ "name": "d", "target": { "kind": "S3", "bucket": "b", "region": "r" } }),
        );
        same::<DestinationBody, DestinationSpec>(json!({ "name": "d", "target": {
            "kind": "S3", "endpoint": "https://s3", "bucket": "b", "region": "r", "prefix": "p",
            "credentialsRef": "arn", "skipTlsVerify": true } }));
        same::<DestinationBody, DestinationSpec>(
            json!({ "name": "d", "target": { "kind": "LOCAL_FILESYSTEM", "path": "/x" } }),
        );
        same::<DestinationBody, DestinationSpec>(json!({ "name": "d", "target": { "kind": "ARCA_MANAGED" },
            "customerKey": { "kmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/k1", "endpoint": "https://kms.example" } }));
        same::<DestinationBody, DestinationSpec>(json!({ "name": "d", "target": { "kind": "ARCA_MANAGED" },
            "objectLock": { "mode": "COMPLIANCE" } }));
        same::<PolicyBody, PolicySpec>(json!({ "name": "p", "schedules": [{ "cron": "0 * * * *", "retainDays": 3 }] }));
        same::<PolicyBody, PolicySpec>(json!({ "name": "p", "timezone": "Europe/Paris", "suspended": true,
            "schedules": [{ "cron": "0 * * * *", "retainDays": 3, "keepLast": 2 }] }));
        same::<BackupBody, BackupDefinitionSpec>(
            json!({ "name": "b", "clusterId": cl, "selection": { "fullCluster": true } }),
        );
        same::<BackupBody, BackupDefinitionSpec>(json!({ "name": "b", "description": "d", "clusterId": cl,
            "selection": { "namespaces": ["a"], "labels": { "app": "web" }, "includeKinds": ["pods"], "excludeKinds": ["secrets"] },
            "pvMode": "snapshotAndCopy", "deleteSnapshotAfterCopy": true, "policyId": pol, "destinationId": dst,
            "paused": true, "tags": { "t": "v" } }));
        same::<BackupBody, BackupDefinitionSpec>(json!({ "name": "b", "clusterId": cl,
            "selection": { "namespaces": ["a"] }, "hooks": [
                { "name": "h", "pre": ["sync"] },
                { "name": "pg", "namespaces": ["a"], "labels": { "app": "pg" }, "container": "db",
                  "template": "postgresql", "freezePath": "/data", "post": ["true"], "timeoutSeconds": 5,
                  "onError": "continue" }] }));
        same::<BackupBody, BackupDefinitionSpec>(json!({ "name": "b", "clusterId": cl,
            "selection": { "namespaces": ["a"] }, "verification": { "when": "weekly" } }));
        same::<BackupBody, BackupDefinitionSpec>(json!({ "name": "b", "clusterId": cl,
            "selection": { "namespaces": ["a"] }, "verification": { "when": "afterBackup", "targetClusterId": cl,
            "probe": { "image": "busybox:1.36", "command": ["sh", "-c", "true"], "timeoutSeconds": 30 } } }));
        same::<BackupBody, BackupDefinitionSpec>(json!({ "name": "b", "clusterId": cl,
            "selection": { "namespaces": ["a"] }, "verification": { "when": "afterBackup",
            "probe": { "image": "busybox:1.36" } } }));
        same::<RunNowBody, RunNowRequest>(json!({}));
        same::<RunNowBody, RunNowRequest>(json!({ "retention": { "retainDays": 3, "keepLast": 1 } }));
        same::<RestoreBody, RestoreSpec>(json!({ "recoveryPointId": rp, "targetClusterId": cl }));
        same::<RestoreBody, RestoreSpec>(json!({ "recoveryPointId": rp, "targetClusterId": cl,
            "selection": { "namespaces": ["a"] }, "namespacePrefix": "x-", "namespaceSuffix": "-y",
            "namespaceMap": { "a": "b" }, "storageClassMap": { "gp2": "gp3" }, "existingResourcePolicy": "update",
            "restorePvs": false }));
        same::<RestoreBody, RestoreSpec>(json!({ "recoveryPointId": rp, "targetClusterId": cl, "hooks": [
            { "name": "r", "command": ["true"] },
            { "name": "s", "namespaces": ["a"], "labels": { "app": "db" }, "container": "db", "command": ["x"],
              "timeoutSeconds": 5, "waitSeconds": 60, "onError": "continue" }] }));
    }

    #[test]
    fn unknown_fields_are_refused_at_every_depth() {
        assert!(serde_json::from_value::<PolicyBody>(json!({ "name": "p", "schedules": [], "nmae": 1 })).is_err());
        let nested = json!({ "name": "p", "schedules": [{ "cron": "x", "retainDays": 1, "retain": 2 }] });
        assert!(serde_json::from_value::<PolicyBody>(nested).is_err());
        let tagged = json!({ "name": "d", "target": { "kind": "S3", "bucket": "b", "region": "r", "bucketz": "x" } });
        assert!(serde_json::from_value::<DestinationBody>(tagged).is_err());
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudAccountBody {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Regions Arca inventories and works in.
    #[schema(example = json!(["us-east-1", "eu-west-1"]))]
    pub regions: Vec<String>,
}

mirror!(CloudAccountBody => CloudAccountSpec { name, description, regions });

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleArnBody {
    /// The role the stack created (its `RoleArn` output).
    #[schema(example = "arn:aws:iam::111122223333:role/arca-01j0000000000000000000000")]
    pub role_arn: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecreateEksBody {
    /// The new EKS cluster's name (same account and region as the backed-up one).
    #[schema(example = "prod-restored")]
    pub name: String,
}
