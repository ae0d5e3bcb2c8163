//! The command line, as clap types. Resources are named by id or by name wherever the
//! API has names (`arca policies delete hourly`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "arca",
    version,
    about = "Backups of Kubernetes clusters and AWS RDS",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The Arca API (default: the one `arca login` saved, else http://127.0.0.1:8080).
    #[arg(long, env = "ARCA_API_URL", global = true)]
    pub api_url: Option<String>,
    /// An API key (default: the one `arca login` saved). Its value is never shown.
    #[arg(long, env = "ARCA_API_KEY", global = true, hide_env_values = true)]
    pub api_key: Option<String>,
    /// The config file (default: ~/.config/arca/config.json).
    #[arg(long, env = "ARCA_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Output format of reads.
    #[arg(short, long, value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Creates an org and its first admin key, and saves the key in the config file.
    Signup(SignupArgs),
    /// Saves the API URL and key in the config file (after checking them).
    Login(LoginArgs),
    /// Kubernetes clusters and their agents.
    #[command(subcommand)]
    Clusters(ClustersCmd),
    /// Schedules and retention.
    #[command(subcommand)]
    Policies(PoliciesCmd),
    /// Kubernetes backup definitions.
    #[command(subcommand)]
    Backups(BackupsCmd),
    #[command(subcommand)]
    Jobs(JobsCmd),
    #[command(subcommand)]
    RecoveryPoints(RecoveryPointsCmd),
    #[command(subcommand)]
    Restores(RestoresCmd),
    /// Where backup data goes.
    #[command(subcommand)]
    Destinations(DestinationsCmd),
    /// Linked AWS accounts: the role Arca assumes there, and what it finds.
    #[command(subcommand, visible_alias = "accounts")]
    CloudAccounts(CloudAccountsCmd),
    /// RDS and Aurora: backup definitions, their snapshots and copies, restores.
    #[command(subcommand)]
    Rds(RdsCmd),
    /// EKS: re-creating a backed-up EKS cluster (then the restore runs there).
    #[command(subcommand)]
    Eks(EksCmd),
    /// The org: its name and default destination.
    #[command(subcommand)]
    Org(OrgCmd),
    /// The org's API keys (admin only).
    #[command(subcommand, name = "apikeys", visible_alias = "api-keys")]
    ApiKeys(ApiKeysCmd),
    /// The org's audit trail: every mutating call, by which key (admin only).
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Alerts: channels (signed webhooks, email) that hear failed, partial and skipped
    /// jobs, missed runs, silent agents...; and the delivery log.
    #[command(subcommand)]
    Alerts(AlertsCmd),
    /// The deployment operator's commands (the operator token, not an org's API key).
    #[command(subcommand)]
    Operator(OperatorCmd),
    /// Prints a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Runs the whole control plane on this machine (single-machine mode).
    Server(ServerArgs),
}

#[derive(Debug, Subcommand)]
pub enum AlertsCmd {
    /// The org's alert channels (admin only).
    #[command(subcommand)]
    Channels(AlertChannelsCmd),
    /// The delivery log, newest first: each event sent to each channel and how it went.
    Deliveries {
        /// Only this channel's deliveries (id or name).
        #[arg(long)]
        channel: Option<String>,
        /// Only deliveries in this state.
        #[arg(long, value_parser = ["pending", "delivered", "failed", "PENDING", "DELIVERED", "FAILED"])]
        status: Option<String>,
        /// At most this many deliveries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum AlertChannelsCmd {
    List,
    Get {
        channel: String,
    },
    /// Creates a webhook (its signing secret is printed once) or an email channel.
    Create {
        name: String,
        /// POST signed events to this URL.
        #[arg(long, conflicts_with = "email")]
        webhook: Option<String>,
        /// Email these addresses (repeatable; needs SES: the deployment's ARCA_ALERTS_FROM).
        #[arg(long)]
        email: Vec<String>,
        /// Only these event types (repeatable or comma-separated: job.failed,
        /// job.partial, job.skipped, schedule.missed, agent.disconnected,
        /// cloudAccount.roleBroken, cloudAccount.stackUpdateAvailable, cloudAccount.findings,
        /// storage.reclaimFailed); default: all.
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        /// Minutes without a heartbeat before `agent.disconnected` (default 30).
        #[arg(long)]
        disconnected_after: Option<u32>,
        /// Write the webhook's signing secret to this file (mode 0600) instead of
        /// printing it.
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
    Delete {
        channel: String,
    },
    /// Sends a test event to the channel now and shows its delivery.
    Test {
        channel: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Audit records, newest first.
    List {
        /// Only this key's calls (id or name).
        #[arg(long)]
        key: Option<String>,
        /// Only this operation (its stable name: createApiKey, updateCluster, ...).
        #[arg(long)]
        operation: Option<String>,
        /// Only calls at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only calls before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// At most this many records.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum OperatorCmd {
    /// Sets an org's plan: `free` (retention capped at 30 days, no PV data copies) or
    /// `paid`. Needs the operator token in ARCA_OPERATOR_TOKEN (its SHA-256 is the
    /// deployment's ARCA_OPERATOR_TOKEN_SHA256).
    SetPlan {
        /// The org's id (`arca org get` shows it).
        org: String,
        #[arg(value_parser = ["free", "paid"])]
        plan: String,
        #[arg(long, env = "ARCA_OPERATOR_TOKEN", hide_env_values = true, hide = true)]
        operator_token: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct SignupArgs {
    /// The org's name.
    #[arg(long)]
    pub org_name: String,
    /// Name of the first admin key.
    #[arg(long)]
    pub key_name: Option<String>,
    /// Print the admin key instead of saving it (it is shown only once).
    #[arg(long)]
    pub no_save: bool,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Read the API key from standard input (one line) rather than --api-key / ARCA_API_KEY.
    #[arg(long)]
    pub key_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClustersCmd {
    List,
    Get {
        cluster: String,
    },
    /// Registers a cluster and prints the `kubectl apply` line that installs its agent.
    Register {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Write the agent manifest (it holds the agent token) to this file instead.
        #[arg(long, conflicts_with = "agent_token_file")]
        output_file: Option<PathBuf>,
        /// Write only the agent token to this file (mode 0600), for an agent run outside
        /// the cluster: `ARCA_AGENT_TOKEN=$(cat FILE) arca-agent run --api-url … --kubeconfig …`.
        /// No install line is made (fetching one would replace this token).
        #[arg(long)]
        agent_token_file: Option<PathBuf>,
        /// The linked AWS account the cluster runs in (EKS; id or name): its EBS-backed
        /// PVs are then snapshotted through that account and its EKS metadata is kept.
        #[arg(long, requires = "aws_region")]
        aws_account: Option<String>,
        /// The cluster's AWS region, e.g. us-east-1.
        #[arg(long, requires = "aws_account")]
        aws_region: Option<String>,
        /// The EKS cluster's name in that account and region.
        #[arg(long, requires = "aws_account")]
        eks_cluster: Option<String>,
    },
    /// Changes name, description or default destination (what is not given is kept).
    Update {
        cluster: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Where this cluster's backups go unless a backup says otherwise (id or name).
        #[arg(long, conflicts_with = "no_default_destination")]
        default_destination: Option<String>,
        /// Fall back to the org's default destination.
        #[arg(long)]
        no_default_destination: bool,
        /// The linked AWS account the cluster runs in (id or name).
        #[arg(long)]
        aws_account: Option<String>,
        /// The cluster's AWS region.
        #[arg(long)]
        aws_region: Option<String>,
        /// The EKS cluster's name in that account and region.
        #[arg(long, conflicts_with = "no_eks_cluster")]
        eks_cluster: Option<String>,
        /// Forget the EKS cluster's name (keep the account and region).
        #[arg(long)]
        no_eks_cluster: bool,
        /// Unlink the cluster from AWS.
        #[arg(long, conflicts_with_all = ["aws_account", "aws_region", "eks_cluster", "no_eks_cluster"])]
        no_aws: bool,
    },
    /// A new install line for an existing cluster (the previous one stops working).
    Install {
        cluster: String,
        #[arg(long)]
        output_file: Option<PathBuf>,
    },
    /// Rotates the cluster's archive key: its next backups start new repositories under
    /// the new key (a full copy); existing points keep theirs and stay restorable.
    RotateKey {
        cluster: String,
    },
    Delete {
        cluster: String,
        /// Delete although the cluster has recovery points.
        #[arg(long)]
        confirm: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PoliciesCmd {
    List,
    Get {
        policy: String,
    },
    Create {
        name: String,
        /// A schedule row: "CRON=RETAIN_DAYS[:KEEP_LAST]", e.g. "0 * * * *=7" (repeatable).
        #[arg(long = "schedule", required = true)]
        schedules: Vec<String>,
        /// IANA timezone the cron expressions are read in.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        #[arg(long)]
        suspended: bool,
    },
    /// Changes a policy (what is not given is kept; --schedule replaces every row).
    Update {
        policy: String,
        #[arg(long)]
        name: Option<String>,
        /// A schedule row: "CRON=RETAIN_DAYS[:KEEP_LAST]" (repeatable; replaces the rows).
        #[arg(long = "schedule")]
        schedules: Vec<String>,
        #[arg(long)]
        timezone: Option<String>,
        /// Suspend (true) or resume (false) its schedules.
        #[arg(long)]
        suspended: Option<bool>,
    },
    /// Deletes a policy; refused while backups use it (they are named).
    Delete {
        policy: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PvModeArg {
    None,
    Snapshot,
    SnapshotAndCopy,
}

impl PvModeArg {
    pub fn api(self) -> &'static str {
        match self {
            PvModeArg::None => "none",
            PvModeArg::Snapshot => "snapshot",
            PvModeArg::SnapshotAndCopy => "snapshotAndCopy",
        }
    }
}

/// When a backup's points are verified.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum VerifyArg {
    AfterBackup,
    Weekly,
}

/// A backup's restore verification (docs/volumes.md, "Restore verification").
#[derive(Debug, Args)]
pub struct VerificationArgs {
    /// Restore its points into scratch namespaces and check them: after each backup, or
    /// the newest weekly.
    #[arg(long, value_enum)]
    pub verify: Option<VerifyArg>,
    /// The cluster (id or name) verifications restore into; default: the backup's own.
    #[arg(long, requires = "verify")]
    pub verify_cluster: Option<String>,
    /// An image run as a Job in the restored namespaces once restored; it must succeed
    /// (it finds them in ARCA_VERIFY_NAMESPACES).
    #[arg(long, requires = "verify")]
    pub probe_image: Option<String>,
    /// The probe's argv, one argument per flag (`--probe-arg sh --probe-arg -c ...`);
    /// default: the image's entrypoint.
    #[arg(long, requires = "probe_image", allow_hyphen_values = true)]
    pub probe_arg: Vec<String>,
    /// How long the probe may run (1 to 3600 s; default 600).
    #[arg(long, requires = "probe_image")]
    pub probe_timeout: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum BackupsCmd {
    List,
    Get {
        backup: String,
    },
    Create(BackupCreate),
    Update(BackupUpdate),
    /// Runs a backup now.
    Run {
        backup: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Stops scheduled runs (it can still be run by hand).
    Pause {
        backup: String,
    },
    Resume {
        backup: String,
    },
    Delete {
        backup: String,
    },
}

/// A run by hand (of a backup or an RDS backup): its retention, and whether to wait.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Retention of this run (default: the policy's first row).
    #[arg(long)]
    pub retain_days: Option<u32>,
    #[arg(long, requires = "retain_days")]
    pub keep_last: Option<u32>,
    /// Wait for the job to end (as `jobs watch`).
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct BackupCreate {
    pub name: String,
    /// The cluster (id or name).
    #[arg(long)]
    pub cluster: String,
    /// Namespaces to back up (comma-separated); without it, the whole cluster.
    #[arg(long, value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Label selector terms k=v, ANDed (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    #[arg(long, value_enum, default_value = "snapshot")]
    pub pv_mode: PvModeArg,
    /// The policy (id or name); without it, the backup runs on demand only.
    #[arg(long)]
    pub policy: Option<String>,
    /// The destination (id or name); default: the cluster's, else the org's.
    #[arg(long)]
    pub destination: Option<String>,
    #[arg(long, default_value = "")]
    pub description: String,
    #[arg(long)]
    pub paused: bool,
    /// Backup hooks: a JSON file holding an array of hooks (docs/volumes.md, "Hooks").
    #[arg(long, value_name = "FILE")]
    pub hooks: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub verification: VerificationArgs,
}

/// Changes a backup definition; what is not given is kept (its cluster is fixed).
#[derive(Debug, Args)]
pub struct BackupUpdate {
    pub backup: String,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// Back up only these namespaces (comma-separated).
    #[arg(long, value_delimiter = ',', conflicts_with = "full_cluster")]
    pub namespaces: Option<Vec<String>>,
    /// Back up the whole cluster.
    #[arg(long)]
    pub full_cluster: bool,
    /// Label selector terms k=v (replace the current ones; an empty value clears them).
    #[arg(long, value_delimiter = ',')]
    pub labels: Option<Vec<String>>,
    #[arg(long, value_enum)]
    pub pv_mode: Option<PvModeArg>,
    /// The policy (id or name).
    #[arg(long, conflicts_with = "no_policy")]
    pub policy: Option<String>,
    /// Run on demand only.
    #[arg(long)]
    pub no_policy: bool,
    /// The destination (id or name).
    #[arg(long, conflicts_with = "no_destination")]
    pub destination: Option<String>,
    /// Use the cluster's, else the org's, destination.
    #[arg(long)]
    pub no_destination: bool,
    /// Replace the backup hooks with the JSON array in FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "no_hooks")]
    pub hooks: Option<std::path::PathBuf>,
    /// Remove every backup hook.
    #[arg(long)]
    pub no_hooks: bool,
    /// Replaces the verification (all its flags together).
    #[command(flatten)]
    pub verification: VerificationArgs,
    /// Stop verifying its points.
    #[arg(long, conflicts_with = "verify")]
    pub no_verify: bool,
}

#[derive(Debug, Subcommand)]
pub enum JobsCmd {
    List {
        /// Only this cluster's (id or name).
        #[arg(long)]
        cluster: Option<String>,
        /// Only this backup's (id or name).
        #[arg(long)]
        backup: Option<String>,
        /// PENDING, RUNNING, COMPLETED, PARTIAL, FAILED, SKIPPED, CANCELLING, CANCELED.
        #[arg(long)]
        state: Option<String>,
        /// K8S_BACKUP, K8S_RESTORE, ...
        #[arg(long = "type")]
        job_type: Option<String>,
    },
    Get {
        job: String,
    },
    Cancel {
        job: String,
    },
    /// Polls the job until it ends; exits 1 unless it COMPLETED.
    Watch {
        job: String,
        /// Seconds between polls.
        #[arg(long, default_value_t = 2.0)]
        interval: f64,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecoveryPointsCmd {
    List {
        #[arg(long)]
        cluster: Option<String>,
        #[arg(long)]
        backup: Option<String>,
    },
    Get {
        recovery_point: String,
    },
    /// The EBS snapshots and EKS metadata kept with a point (clusters linked to AWS).
    Aws {
        recovery_point: String,
    },
    /// Deletes a point before its expiry (refused while S3 Object Lock retains it).
    Delete {
        recovery_point: String,
    },
    /// Restores a point into scratch namespaces, checks every object, every volume's
    /// data against the backup and the backup's probe, then removes them; the point's
    /// VERIFIED column says how it went. Exits non-zero with --wait when it failed.
    Verify {
        recovery_point: String,
        /// The cluster (id or name) to restore into; default: the backup's verification
        /// cluster, else the point's own.
        #[arg(long)]
        cluster: Option<String>,
        /// Wait for the verification's job to end.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExistingArg {
    Skip,
    Update,
    Fail,
}

#[derive(Debug, Subcommand)]
pub enum RestoresCmd {
    List,
    Get { restore: String },
    Create(RestoreCreate),
}

#[derive(Debug, Args)]
pub struct RestoreCreate {
    #[arg(long)]
    pub recovery_point: String,
    /// The target cluster (id or name); may differ from the source (migration).
    #[arg(long)]
    pub cluster: String,
    /// Only these namespaces of the recovery point (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub namespaces: Vec<String>,
    #[arg(long, default_value = "")]
    pub namespace_prefix: String,
    #[arg(long, default_value = "")]
    pub namespace_suffix: String,
    /// Rename a namespace: old=new (repeatable).
    #[arg(long)]
    pub namespace_map: Vec<String>,
    /// Replace a storage class: old=new (repeatable).
    #[arg(long)]
    pub storage_class_map: Vec<String>,
    /// What to do with resources that already exist.
    #[arg(long, value_enum, default_value = "skip")]
    pub existing: ExistingArg,
    /// Restore resources only, not persistent volume data.
    #[arg(long)]
    pub no_pvs: bool,
    /// Restore hooks: a JSON file holding an array of hooks run in the restored
    /// workloads' Pods once Ready (docs/volumes.md, "Hooks").
    #[arg(long, value_name = "FILE")]
    pub hooks: Option<std::path::PathBuf>,
    /// Wait for the restore job to end.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Subcommand)]
pub enum DestinationsCmd {
    List,
    Get {
        destination: String,
    },
    Create(DestinationCreate),
    /// Renames a destination, moves a local one or changes its customer-held key (what is
    /// not given is kept).
    Update {
        destination: String,
        #[arg(long)]
        name: Option<String>,
        /// The new directory of a local-filesystem destination.
        #[arg(long)]
        local_path: Option<String>,
        /// Another KMS key to wrap the destination's keys with (each cluster's next backup
        /// re-wraps its keys; the data is not rewritten), or the first one.
        #[arg(long)]
        kms_key_arn: Option<String>,
        /// The KMS endpoint to call instead of the key region's.
        #[arg(long, requires = "kms_key_arn")]
        kms_endpoint: Option<String>,
    },
    /// What repository maintenance reclaimed there: bytes freed, and per cluster
    /// repository when the next run is due and what the last one did.
    Maintenance {
        destination: String,
    },
    /// Deletes a deleted cluster's data from a destination when no agent of the org is
    /// left to: every object under the cluster's prefix, with your own credentials for
    /// your bucket (the default AWS chain) or vended ones for Arca-managed storage, then
    /// its recovery points there.
    Purge {
        destination: String,
        /// The deleted cluster (cl_<ULID>, as `arca destinations maintenance` shows it).
        #[arg(long)]
        cluster: String,
        /// Also the points not due for deletion yet (kept by keepLast, or expiring later).
        #[arg(long)]
        include_unexpired: bool,
    },
    /// Deletes a destination. One holding recovery points needs --confirm: they are
    /// expired now (retention deletes them and their data) and the destination goes after
    /// the last.
    Delete {
        destination: String,
        #[arg(long)]
        confirm: bool,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["local_path", "s3_bucket", "arca_managed"])))]
pub struct DestinationCreate {
    pub name: String,
    /// A directory on the server's machine (single-machine mode).
    #[arg(long)]
    pub local_path: Option<String>,
    /// A bucket of yours on S3 or an S3-compatible service.
    #[arg(long, requires = "s3_region")]
    pub s3_bucket: Option<String>,
    #[arg(long)]
    pub s3_region: Option<String>,
    #[arg(long)]
    pub s3_endpoint: Option<String>,
    #[arg(long, default_value = "")]
    pub s3_prefix: String,
    /// Where the bucket's credentials are kept (a secret's name or ARN).
    #[arg(long)]
    pub credentials_ref: Option<String>,
    /// Accept any TLS certificate from the endpoint (test stores only).
    #[arg(long)]
    pub skip_tls_verify: bool,
    /// Address buckets path-style (true/false; default: path style with --s3-endpoint).
    #[arg(long)]
    pub s3_path_style: Option<bool>,
    /// A PEM file of CA certificates to trust for the endpoint (a private CA).
    #[arg(long)]
    pub s3_ca_bundle: Option<std::path::PathBuf>,
    /// Storage Arca operates (AWS deployments).
    #[arg(long)]
    pub arca_managed: bool,
    #[arg(long)]
    pub region: Option<String>,
    /// Immutable backups: S3 Object Lock in this mode (the bucket must have Object Lock).
    #[arg(long, value_enum)]
    pub object_lock: Option<LockModeArg>,
    /// A customer-held key: the KMS key (its ARN) that wraps the keys sealing this
    /// destination's data; agents unwrap them through KMS, Arca never holds them.
    #[arg(long)]
    pub kms_key_arn: Option<String>,
    /// The KMS endpoint to call instead of the key region's (a VPC endpoint).
    #[arg(long, requires = "kms_key_arn")]
    pub kms_endpoint: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LockModeArg {
    Governance,
    Compliance,
}

#[derive(Debug, Subcommand)]
pub enum CloudAccountsCmd {
    List,
    Get {
        account: String,
    },
    /// Starts linking an AWS account: prints its ExternalId and the quick-create link that
    /// creates the role stack there (`-o json`: the whole account).
    Link {
        #[arg(long)]
        name: String,
        /// A region Arca works in, e.g. us-east-1 (repeatable or comma-separated).
        #[arg(long = "region", value_delimiter = ',', required = true)]
        regions: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Sets the role by hand (instead of the stack's notification) and verifies it.
    SetRole {
        account: String,
        /// arn:aws:iam::<12 digits>:role/<name>
        #[arg(long)]
        role_arn: String,
    },
    /// Assumes the role again now; exits 1 unless the account is ACTIVE.
    Verify {
        account: String,
    },
    /// Inventories every region now and prints what changed per region; with --show,
    /// prints what the last inventory found instead.
    Inventory {
        account: String,
        #[arg(long)]
        show: bool,
        /// Only this region (with --show).
        #[arg(long, requires = "show")]
        region: Option<String>,
    },
    /// Security findings of the account (scanned with every inventory), worst first, and
    /// what the last scan could not evaluate.
    Findings {
        account: String,
        /// This severity and worse: LOW, MEDIUM, HIGH, CRITICAL.
        #[arg(long, value_parser = ["LOW", "MEDIUM", "HIGH", "CRITICAL", "low", "medium", "high", "critical"])]
        severity: Option<String>,
        /// OPEN (default) or RESOLVED; `all` for both.
        #[arg(long, default_value = "OPEN", value_parser = ["OPEN", "RESOLVED", "all", "open", "resolved"])]
        state: String,
    },
    /// Changes name, description or regions (what is not given is kept).
    Update {
        account: String,
        #[arg(long)]
        name: Option<String>,
        /// The regions (repeatable or comma-separated; replaces the current ones).
        #[arg(long = "region", value_delimiter = ',')]
        regions: Option<Vec<String>>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Forgets the account and its inventory (the role stack stays in the AWS account).
    Delete {
        account: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RdsCmd {
    /// Backup definitions: databases of a linked account and region (by list or by AWS
    /// tag), a policy, optional cross-region copies.
    #[command(subcommand)]
    Backups(RdsBackupsCmd),
    /// Arca's RDS snapshots and copies.
    #[command(subcommand)]
    RecoveryPoints(RdsRecoveryPointsCmd),
    /// Restores into a new instance or cluster (RDS_RESTORE jobs).
    #[command(subcommand)]
    Restores(RdsRestoresCmd),
}

#[derive(Debug, Subcommand)]
pub enum RdsBackupsCmd {
    List,
    Get {
        backup: String,
    },
    Create(Box<RdsBackupCreate>),
    Update(Box<RdsBackupUpdate>),
    /// Runs now: a snapshot of each database (then its copy, when copies follow runs).
    Run {
        backup: String,
        /// Copy each database's latest existing snapshot instead (automated ones too).
        #[arg(long)]
        copy_only: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Stops scheduled runs (it can still be run by hand).
    Pause {
        backup: String,
    },
    Resume {
        backup: String,
    },
    /// Deletes the definition (its recovery points stay until they expire).
    Delete {
        backup: String,
    },
}

/// Which databases: by list (instances, clusters) or by AWS tag.
#[derive(Debug, Args)]
pub struct RdsSelectionArgs {
    /// DB instances, by identifier (repeatable or comma-separated).
    #[arg(long = "db-instance", value_delimiter = ',')]
    pub db_instances: Vec<String>,
    /// Aurora or Multi-AZ DB clusters, snapshotted as a whole (repeatable or comma-separated).
    #[arg(long = "db-cluster", value_delimiter = ',')]
    pub db_clusters: Vec<String>,
    /// Or every database carrying this AWS tag when a run starts: KEY=VALUE.
    #[arg(long, conflicts_with_all = ["db_instances", "db_clusters"])]
    pub tag: Option<String>,
}

/// Copies to another region (the other flags need --copy-to, or a definition that copies).
#[derive(Debug, Args)]
pub struct RdsCopyArgs {
    /// Copy the snapshots to this region.
    #[arg(long)]
    pub copy_to: Option<String>,
    /// KMS key (id, alias or ARN) in that region: needed to copy encrypted snapshots.
    #[arg(long)]
    pub copy_kms_key: Option<String>,
    /// Delete Arca's source snapshot once its copy is available (`--copy-delete-source false` keeps it).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub copy_delete_source: Option<bool>,
    /// Copy each database's latest snapshot on this policy's schedule (at most daily; id
    /// or name) instead of after every run.
    #[arg(long)]
    pub copy_policy: Option<String>,
    /// Days copies are kept (default: their source's retention).
    #[arg(long)]
    pub copy_retain_days: Option<u32>,
}

/// An RDS backup's restore verification (docs/rds.md, "Restore verification").
#[derive(Debug, Args)]
pub struct RdsVerificationArgs {
    /// Restore each backup's snapshots to a temporary database, wait for it to be
    /// available, then delete it (after-backup; weekly is not available for RDS yet).
    #[arg(long, value_enum)]
    pub verify: Option<VerifyArg>,
    /// The temporary database's instance class (default db.t3.micro).
    #[arg(long, requires = "verify")]
    pub verify_class: Option<String>,
    /// Its DB subnet group (default: the region's default VPC).
    #[arg(long, requires = "verify")]
    pub verify_subnet_group: Option<String>,
    /// Its security groups (sg-…; repeatable or comma-separated).
    #[arg(long = "verify-security-group", requires = "verify", value_delimiter = ',')]
    pub verify_security_groups: Vec<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("selection").required(true).multiple(true).args(["db_instances", "db_clusters", "tag"])))]
pub struct RdsBackupCreate {
    pub name: String,
    /// The linked AWS account (id or name).
    #[arg(long)]
    pub account: String,
    /// The databases' region, e.g. us-east-1.
    #[arg(long)]
    pub region: String,
    #[command(flatten)]
    pub selection: RdsSelectionArgs,
    /// The policy: its schedule rows and retention (id or name); without it, on demand only.
    #[arg(long)]
    pub policy: Option<String>,
    #[arg(long)]
    pub paused: bool,
    #[command(flatten)]
    pub copy: RdsCopyArgs,
    #[command(flatten)]
    pub verification: RdsVerificationArgs,
}

/// Changes an RDS backup definition; what is not given is kept (a selection given
/// replaces the whole selection).
#[derive(Debug, Args)]
pub struct RdsBackupUpdate {
    pub backup: String,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub region: Option<String>,
    #[command(flatten)]
    pub selection: RdsSelectionArgs,
    /// The policy (id or name).
    #[arg(long, conflicts_with = "no_policy")]
    pub policy: Option<String>,
    /// Run on demand only.
    #[arg(long)]
    pub no_policy: bool,
    #[command(flatten)]
    pub copy: RdsCopyArgs,
    /// Copy after every run rather than on a policy's schedule.
    #[arg(long, conflicts_with = "copy_policy")]
    pub no_copy_policy: bool,
    /// Stop making copies.
    #[arg(long, conflicts_with_all = ["copy_to", "copy_kms_key", "copy_delete_source", "copy_policy", "copy_retain_days", "no_copy_policy"])]
    pub no_copy: bool,
    #[command(flatten)]
    pub verification: RdsVerificationArgs,
    /// Stop verifying its snapshots.
    #[arg(long, conflicts_with = "verify")]
    pub no_verify: bool,
}

#[derive(Debug, Subcommand)]
pub enum RdsRecoveryPointsCmd {
    List {
        /// Only this definition's (id or name).
        #[arg(long)]
        backup: Option<String>,
    },
    Get {
        recovery_point: String,
    },
    /// Restores the point's snapshot to a temporary database, waits for it to be
    /// available and deletes it; the point's VERIFIED column says how it went. Exits
    /// non-zero with --wait when it failed.
    Verify {
        recovery_point: String,
        /// Wait for the verification's job to end.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RdsRestoresCmd {
    /// The RDS_RESTORE jobs.
    List,
    /// One restore (its job).
    Get {
        restore: String,
    },
    Create(Box<RdsRestoreCreate>),
}

/// Restores into a new instance or cluster, from one source: a recovery point, a
/// snapshot, or a database at a point in time.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["recovery_point", "snapshot", "db_instance", "db_cluster"])))]
#[command(group(ArgGroup::new("when").args(["restore_time", "latest"])))]
pub struct RdsRestoreCreate {
    /// The linked AWS account (id or name).
    #[arg(long)]
    pub account: String,
    /// From one of Arca's recovery points (a copy restores in its own region).
    #[arg(long)]
    pub recovery_point: Option<String>,
    /// From any snapshot of the account (automated ones too), by identifier.
    #[arg(long, requires = "region")]
    pub snapshot: Option<String>,
    /// The --snapshot is a DB cluster snapshot.
    #[arg(long, requires = "snapshot")]
    pub cluster_snapshot: bool,
    /// To a point in time of this DB instance.
    #[arg(long, requires_all = ["region", "when"])]
    pub db_instance: Option<String>,
    /// To a point in time of this DB cluster.
    #[arg(long, requires_all = ["region", "when"])]
    pub db_cluster: Option<String>,
    /// The region of the snapshot or database.
    #[arg(long, conflicts_with = "recovery_point")]
    pub region: Option<String>,
    /// The time to restore to (RFC 3339, e.g. 2025-01-31T12:00:00Z).
    #[arg(long, conflicts_with_all = ["recovery_point", "snapshot"])]
    pub restore_time: Option<String>,
    /// The latest restorable time.
    #[arg(long, conflicts_with_all = ["recovery_point", "snapshot"])]
    pub latest: bool,
    /// The new instance's or cluster's identifier.
    #[arg(long)]
    pub target: String,
    /// Instance class (for a cluster: of its writer instance).
    #[arg(long)]
    pub instance_class: Option<String>,
    /// DB subnet group (required to restore a copy in another region).
    #[arg(long)]
    pub subnet_group: Option<String>,
    /// Security group ids (repeatable or comma-separated).
    #[arg(long = "security-group", value_delimiter = ',')]
    pub security_groups: Vec<String>,
    /// Parameter group (cluster parameter group for clusters).
    #[arg(long)]
    pub parameter_group: Option<String>,
    #[arg(long)]
    pub option_group: Option<String>,
    /// Multi-AZ (`--multi-az false` to refuse it).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub multi_az: Option<bool>,
    /// The cluster engine (clusters; default: the point's or snapshot's).
    #[arg(long)]
    pub engine: Option<String>,
    /// Wait for the restore job to end.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Subcommand)]
pub enum EksCmd {
    /// Re-creates the EKS cluster a recovery point was taken of, under a new name, from
    /// the metadata saved with it (same account and region). Once EKS has made it, its
    /// node groups are created, an Arca cluster is registered and the restore is queued.
    Recreate {
        recovery_point: String,
        /// The new EKS cluster's name.
        #[arg(long)]
        name: String,
        /// Wait until EKS has made it (10-15 minutes on AWS). With --install-agent:
        /// also follow the restore to its end.
        #[arg(long)]
        wait: bool,
        /// Seconds between checks (with --wait or --install-agent; default 15).
        #[arg(long)]
        interval: Option<f64>,
        /// Then install the agent into the new cluster (as `arca eks install-agent`).
        #[arg(long)]
        install_agent: bool,
        #[command(flatten)]
        install: InstallAgentArgs,
    },
    /// The org's re-creations, newest first.
    List,
    /// A re-creation (Arca checks EKS about once a minute and moves it on).
    Get { recreation: String },
    /// Installs the agent into a re-created cluster once EKS has made it: a kubeconfig
    /// from the endpoint and CA EKS gives (credentials from `aws eks get-token` at each
    /// use; no token is stored), the cluster's agent manifest from the API applied to it
    /// (server-side apply), then waits for the agent to connect; the queued restore runs.
    InstallAgent {
        recreation: String,
        /// Follow the restore job to its end (exit 1 unless it COMPLETED).
        #[arg(long)]
        wait: bool,
        /// Seconds between checks of the re-creation.
        #[arg(long, default_value_t = 15.0)]
        interval: f64,
        #[command(flatten)]
        install: InstallAgentArgs,
    },
}

/// How `arca eks install-agent` reaches the new cluster, and how long it waits.
#[derive(Debug, Args, Clone)]
pub struct InstallAgentArgs {
    /// A kubeconfig of the new cluster to use instead of the one built from EKS's answer.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Where the built kubeconfig is written (default: eks-<name>.kubeconfig beside the
    /// config file).
    #[arg(long, conflicts_with = "kubeconfig")]
    pub kubeconfig_out: Option<PathBuf>,
    /// Seconds to wait for EKS to make the cluster (the re-creation itself fails after an hour).
    #[arg(long, default_value_t = 4200.0)]
    pub timeout: f64,
    /// Seconds to wait for the agent to connect once its manifest is applied.
    #[arg(long, default_value_t = 300.0)]
    pub agent_timeout: f64,
}

#[derive(Debug, Subcommand)]
pub enum OrgCmd {
    Get,
    /// Renames the org or sets its default destination (the last fallback of backups).
    Update {
        #[arg(long)]
        name: Option<String>,
        /// Id or name.
        #[arg(long, conflicts_with = "no_default_destination")]
        default_destination: Option<String>,
        #[arg(long)]
        no_default_destination: bool,
        /// Days the org's audit records are kept (1 to 3650).
        #[arg(long)]
        audit_retention_days: Option<u32>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    Viewer,
    Operator,
    Admin,
}

impl RoleArg {
    pub fn api(self) -> &'static str {
        match self {
            RoleArg::Viewer => "viewer",
            RoleArg::Operator => "operator",
            RoleArg::Admin => "admin",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ApiKeysCmd {
    List,
    Get {
        key: String,
    },
    /// Creates a key and prints its secret: the only time it is shown.
    Create {
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Write the secret to this file (mode 0600) instead of printing it.
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
    /// Revokes a key (the org's last admin key cannot go).
    Delete {
        key: String,
    },
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Where the state lives (the redb file `arca.redb`).
    #[arg(long, env = "ARCA_DATA_DIR", default_value = "./arca-data")]
    pub data_dir: PathBuf,
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, env = "ARCA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Seconds between retention sweeps.
    #[arg(long, default_value_t = 3600)]
    pub retention_interval_secs: u64,
    /// Seconds between inventories of every linked AWS account (the first one after as long).
    #[arg(long, default_value_t = 12 * 60 * 60)]
    pub inventory_interval_secs: u64,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_tree_is_consistent() {
        // clap's own checks of every subcommand (conflicts, requires, groups name real args).
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
