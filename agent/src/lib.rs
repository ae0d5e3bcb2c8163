//! Arca's agent. It only ever calls out: to its cluster's API server, to the Arca API
//! (`protocol`, `worker`: connect, heartbeat, poll, one job at a time) and to the job's
//! destination. `runner` runs the jobs: resource backup and restore (`resources`), PV
//! snapshots and copies (`volumes`), EBS facts for the control plane (`ebs`).

pub mod credentials_ref;
pub mod customer_key;
pub mod ebs;
pub mod facts;
pub mod hooks;
pub mod maintenance;
pub mod metrics;
pub mod protocol;
pub mod renewal;
pub mod resources;
pub mod runner;
pub mod verification;
pub mod volumes;
pub mod worker;
