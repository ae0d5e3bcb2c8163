//! The command line, as clap types. Resources are named by id or by name wherever the
//! API has names (`arca policies delete hourly`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// The org: its name and default destination.
    #[command(subcommand)]
    Org(OrgCmd),
    /// The org's API keys (admin only).
    #[command(subcommand, name = "apikeys", visible_alias = "api-keys")]
    ApiKeys(ApiKeysCmd),
    /// Prints a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Runs the whole control plane on this machine (single-machine mode).
    Server(ServerArgs),
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
    },
    /// A new install line for an existing cluster (the previous one stops working).
    Install {
        cluster: String,
        #[arg(long)]
        output_file: Option<PathBuf>,
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
        /// Retention of this run (default: the policy's first row).
        #[arg(long)]
        retain_days: Option<u32>,
        #[arg(long, requires = "retain_days")]
        keep_last: Option<u32>,
        /// Wait for the job to end (as `jobs watch`).
        #[arg(long)]
        wait: bool,
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
    /// Renames a destination or moves a local one (what is not given is kept).
    Update {
        destination: String,
        #[arg(long)]
        name: Option<String>,
        /// The new directory of a local-filesystem destination.
        #[arg(long)]
        local_path: Option<String>,
    },
    Delete {
        destination: String,
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
    #[arg(long)]
    pub skip_tls_verify: bool,
    /// Storage Arca operates (AWS deployments).
    #[arg(long)]
    pub arca_managed: bool,
    #[arg(long)]
    pub region: Option<String>,
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
