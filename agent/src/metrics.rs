//! The agent's Prometheus metrics: every family is defined here, once, and served as
//! OpenMetrics text at `/metrics` beside the probes (`arca-agent run --health-addr`).
//!
//! One process-wide set ([`global`]): the worker records jobs, polls, heartbeats and
//! errors where it already handles them, and the data path records bytes at the two places
//! that already see them (the resource archive's writer, a finished mover's snapshot
//! statistics), so no registry is threaded through the code. Names and labels are
//! documented in docs/metrics.md; `cli/tests/metrics.rs` checks that the dashboard and the
//! alert rules name only metrics defined here or in `arca server`'s set.

use std::sync::LazyLock;
use std::time::Duration;

use arca_core::model::job::{JobState, JobType};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A label whose values are a closed set of words (lower case, as Prometheus labels are).
macro_rules! label_values {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $value:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $value),+ }
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                EncodeLabelValue::encode(&self.as_str(), encoder)
            }
        }
    };
}

label_values!(
    /// What one long poll of the cluster's job queue brought.
    PollResult { Message => "message", Empty => "empty", Error => "error" }
);

label_values!(
    /// Which data the bytes belong to: the resource archive, or PV data copied by movers.
    Data { Resources => "resources", Volumes => "volumes" }
);

label_values!(
    /// Where something went wrong: a call of the agent protocol, or a job that FAILED.
    ErrorKind {
        Connect => "connect",
        Heartbeat => "heartbeat",
        Poll => "poll",
        Lease => "lease",
        Progress => "progress",
        Completion => "completion",
        Job => "job",
    }
);

label_values!(
    /// How a heartbeat went.
    CallResult { Ok => "ok", Error => "error" }
);

/// A job type as the API names it (`K8S_BACKUP`, `K8S_RESTORE`, ...).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Type(pub JobType);

impl EncodeLabelValue for Type {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&wire_name(&self.0).as_str(), encoder)
    }
}

/// The state a job ended in, as the API names it (`COMPLETED`, `PARTIAL`, `FAILED`, ...).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct State(pub JobState);

impl EncodeLabelValue for State {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&wire_name(&self.0).as_str(), encoder)
    }
}

/// The serde name of a unit enum variant (what the API and the CLI show).
fn wire_name(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "UNKNOWN".to_owned(),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub job_type: Type,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobOutcomeLabels {
    pub job_type: Type,
    pub outcome: State,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DataLabels {
    pub data: Data,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PollLabels {
    pub result: PollResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: CallResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: ErrorKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of the agent.
pub struct Metrics {
    registry: Registry,
    jobs_started: Family<JobLabels, Counter>,
    jobs_finished: Family<JobOutcomeLabels, Counter>,
    jobs_running: Gauge,
    job_duration: HistogramFamily<JobLabels>,
    read: Family<DataLabels, Counter>,
    written: Family<DataLabels, Counter>,
    deduplicated: Family<DataLabels, Counter>,
    polls: Family<PollLabels, Counter>,
    heartbeats: Family<ResultLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
}

/// Job durations: 1 s to about 9 hours.
fn job_duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

impl Metrics {
    /// A fresh set (tests; the agent uses [`global`]).
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let jobs_started = Family::<JobLabels, Counter>::default();
        registry.register(
            "arca_agent_jobs_started",
            "Jobs this agent leased from its cluster's queue and started, by job type",
            jobs_started.clone(),
        );
        let jobs_finished = Family::<JobOutcomeLabels, Counter>::default();
        registry.register(
            "arca_agent_jobs_finished",
            "Jobs this agent ran to an end, by job type and the state it reported (COMPLETED, PARTIAL, FAILED, \
             CANCELED)",
            jobs_finished.clone(),
        );
        let jobs_running = Gauge::default();
        registry.register(
            "arca_agent_jobs_running",
            "Jobs running now (0 or 1: the agent runs one job at a time)",
            jobs_running.clone(),
        );
        let job_duration = HistogramFamily::<JobLabels>::new_with_constructor(job_duration_histogram);
        registry.register_with_unit(
            "arca_agent_job_duration",
            "How long jobs ran, from lease to the end of the work, by job type",
            Unit::Seconds,
            job_duration.clone(),
        );
        let read = Family::<DataLabels, Counter>::default();
        registry.register_with_unit(
            "arca_agent_read",
            "Bytes of source data backups read: resource objects' JSON, and PV data the movers read",
            Unit::Bytes,
            read.clone(),
        );
        let written = Family::<DataLabels, Counter>::default();
        registry.register_with_unit(
            "arca_agent_written",
            "Bytes backups stored in destinations after compression and encryption (packs, indexes, manifests)",
            Unit::Bytes,
            written.clone(),
        );
        let deduplicated = Family::<DataLabels, Counter>::default();
        registry.register_with_unit(
            "arca_agent_deduplicated",
            "Bytes of source data backups read but did not store, because the repository already held the same \
             content (all-zero PV blocks included)",
            Unit::Bytes,
            deduplicated.clone(),
        );
        let polls = Family::<PollLabels, Counter>::default();
        registry.register(
            "arca_agent_queue_polls",
            "Long polls of the cluster's job queue, by result: a job (message), none within the wait (empty), or a \
             failed call (error)",
            polls.clone(),
        );
        let heartbeats = Family::<ResultLabels, Counter>::default();
        registry.register(
            "arca_agent_heartbeats",
            "Heartbeats sent to the Arca API, by result",
            heartbeats.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "arca_agent_errors",
            "Errors by kind: a failed call of the agent protocol (connect, heartbeat, poll, lease, progress, \
             completion) or a job that ended FAILED (job)",
            errors.clone(),
        );
        registry.register(
            "arca_agent_build",
            "The agent's version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        Metrics {
            registry,
            jobs_started,
            jobs_finished,
            jobs_running,
            job_duration,
            read,
            written,
            deduplicated,
            polls,
            heartbeats,
            errors,
        }
    }

    /// The OpenMetrics text of every metric (what `/metrics` answers).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail; an encoder error would be a bug in a label.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "encoding the metrics failed");
        }
        text
    }

    pub fn job_started(&self, job_type: JobType) {
        self.jobs_started
            .get_or_create(&JobLabels {
                job_type: Type(job_type),
            })
            .inc();
        self.jobs_running.inc();
    }

    /// A job ended in `state` after `took`; a FAILED one also counts as an error of kind `job`.
    pub fn job_finished(&self, job_type: JobType, state: JobState, took: Duration) {
        let job_type = Type(job_type);
        self.jobs_running.dec();
        self.jobs_finished
            .get_or_create(&JobOutcomeLabels {
                job_type,
                outcome: State(state),
            })
            .inc();
        self.job_duration
            .get_or_create(&JobLabels { job_type })
            .observe(took.as_secs_f64());
        if state == JobState::Failed {
            self.error(ErrorKind::Job);
        }
    }

    /// A backup read `read` bytes of `data`, of which `deduplicated` were already stored.
    pub fn data_read(&self, data: Data, read: u64, deduplicated: u64) {
        let labels = DataLabels { data };
        self.read.get_or_create(&labels).inc_by(read);
        self.deduplicated.get_or_create(&labels).inc_by(deduplicated);
    }

    pub fn data_written(&self, data: Data, bytes: u64) {
        self.written.get_or_create(&DataLabels { data }).inc_by(bytes);
    }

    /// One poll's result; an error also counts as an error of kind `poll`.
    pub fn poll(&self, result: PollResult) {
        self.polls.get_or_create(&PollLabels { result }).inc();
        if result == PollResult::Error {
            self.error(ErrorKind::Poll);
        }
    }

    /// One heartbeat's result; an error also counts as an error of kind `heartbeat`.
    pub fn heartbeat(&self, ok: bool) {
        let result = if ok { CallResult::Ok } else { CallResult::Error };
        self.heartbeats.get_or_create(&ResultLabels { result }).inc();
        if !ok {
            self.error(ErrorKind::Heartbeat);
        }
    }

    pub fn error(&self, kind: ErrorKind) {
        self.errors.get_or_create(&ErrorLabels { kind }).inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The agent's metrics (one set per process).
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// The metric names a scrape of `metrics` shows (its `# TYPE` lines), e.g.
/// `arca_agent_jobs_finished`; a sample's name adds `_total`, `_bucket`, `_info`, ...
pub fn families(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_family_is_named_with_its_unit_and_described() {
        let m = Metrics::new();
        m.job_started(JobType::K8sBackup);
        m.job_finished(JobType::K8sBackup, JobState::Completed, Duration::from_secs(3));
        m.job_started(JobType::K8sRestore);
        m.job_finished(JobType::K8sRestore, JobState::Failed, Duration::from_millis(1500));
        m.data_read(Data::Resources, 1000, 400);
        m.data_written(Data::Resources, 300);
        m.poll(PollResult::Message);
        m.poll(PollResult::Error);
        m.heartbeat(true);
        let text = m.encode();
        for line in [
            "arca_agent_jobs_started_total{job_type=\"K8S_BACKUP\"} 1",
            "arca_agent_jobs_finished_total{job_type=\"K8S_BACKUP\",outcome=\"COMPLETED\"} 1",
            "arca_agent_jobs_finished_total{job_type=\"K8S_RESTORE\",outcome=\"FAILED\"} 1",
            "arca_agent_jobs_running 0",
            "arca_agent_job_duration_seconds_count{job_type=\"K8S_BACKUP\"} 1",
            "arca_agent_job_duration_seconds_bucket{le=\"4.0\",job_type=\"K8S_BACKUP\"} 1",
            "arca_agent_job_duration_seconds_bucket{le=\"2.0\",job_type=\"K8S_BACKUP\"} 0",
            "arca_agent_read_bytes_total{data=\"resources\"} 1000",
            "arca_agent_deduplicated_bytes_total{data=\"resources\"} 400",
            "arca_agent_written_bytes_total{data=\"resources\"} 300",
            "arca_agent_queue_polls_total{result=\"message\"} 1",
            "arca_agent_queue_polls_total{result=\"error\"} 1",
            "arca_agent_errors_total{kind=\"poll\"} 1",
            "arca_agent_errors_total{kind=\"job\"} 1",
            "arca_agent_heartbeats_total{result=\"ok\"} 1",
            &format!("arca_agent_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION")),
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        let families = families(&text);
        assert_eq!(families.len(), 11, "{families:?}");
        for (name, _) in &families {
            assert!(name.starts_with("arca_agent_"), "{name}");
            assert!(text.contains(&format!("# HELP {name} ")), "{name} has no HELP");
        }
        assert!(families.contains(&("arca_agent_read_bytes".into(), "counter".into())));
        assert!(
            text.contains("# UNIT arca_agent_job_duration_seconds seconds"),
            "{text}"
        );
    }
}
