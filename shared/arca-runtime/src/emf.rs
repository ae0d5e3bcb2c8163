//! CloudWatch metrics from the Lambda functions in the Embedded Metric Format: one JSON
//! object per line on stdout, which CloudWatch Logs turns into metrics as it ingests the
//! function's log (no PutMetricData call, no extra latency, no permission).
//!
//! The document (CloudWatch's "Specification: Embedded metric format"):
//!
//! ```json
//! {"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"Arca",
//!   "Dimensions":[["Function","Stage"]],"Metrics":[{"Name":"JobsDispatched","Unit":"Count"}]}]},
//!  "Function":"dispatch","Stage":"prod","JobsDispatched":1}
//! ```
//!
//! Every dimension and metric a directive names is a member of the root. The line is
//! written by itself, never inside a tracing record (a log line with the document nested in
//! a field would not be extracted). Names are listed in docs/metrics.md.

use std::io::Write;

use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every Arca metric.
pub const NAMESPACE: &str = "Arca";

/// The environment variable naming the deployment's stage (template.yaml sets it).
pub const STAGE_VAR: &str = "ARCA_STAGE";

/// A metric's unit, as CloudWatch names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF document: the function's dimensions, any further ones, and the metrics.
#[derive(Clone, Debug)]
pub struct Emf {
    function: String,
    stage: String,
    /// Further dimensions (e.g. the API's `Route` and `StatusClass`): the metrics are also
    /// aggregated by them, besides by function and stage alone.
    extra: Vec<(&'static str, String)>,
    metrics: Vec<(&'static str, Unit, f64)>,
}

impl Emf {
    /// Metrics of `function` (`api`, `dispatch`, ...), in the stage `ARCA_STAGE` names
    /// (`default` when unset).
    pub fn new(function: &str) -> Self {
        let stage = std::env::var(STAGE_VAR)
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".to_owned());
        Self::with_stage(function, &stage)
    }

    pub fn with_stage(function: &str, stage: &str) -> Self {
        Emf {
            function: function.to_owned(),
            stage: stage.to_owned(),
            extra: Vec::new(),
            metrics: Vec::new(),
        }
    }

    pub fn dimension(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((name, value.into()));
        self
    }

    pub fn count(mut self, name: &'static str, value: u64) -> Self {
        self.metrics.push((name, Unit::Count, value as f64));
        self
    }

    pub fn milliseconds(mut self, name: &'static str, value: f64) -> Self {
        self.metrics.push((name, Unit::Milliseconds, value));
        self
    }

    /// The document, stamped `timestamp_ms` (milliseconds since the epoch).
    pub fn document(&self, timestamp_ms: u64) -> Value {
        let base = ["Function", "Stage"];
        let mut sets = vec![json!(base)];
        if !self.extra.is_empty() {
            let all: Vec<&str> = base.iter().copied().chain(self.extra.iter().map(|(n, _)| *n)).collect();
            sets.push(json!(all));
        }
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit.as_str() }))
            .collect();
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": sets,
                    "Metrics": definitions,
                }],
            }),
        );
        root.insert("Function".into(), json!(self.function));
        root.insert("Stage".into(), json!(self.stage));
        for (name, value) in &self.extra {
            root.insert((*name).into(), json!(value));
        }
        for (name, _, value) in &self.metrics {
            root.insert((*name).into(), json!(value));
        }
        Value::Object(root)
    }

    /// Writes the document, stamped now, as one line on stdout (one `write` of the whole
    /// line, so it never interleaves with a log record).
    pub fn emit(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut line = self.document(now).to_string();
        line.push('\n');
        // A closed stdout loses the metrics, not the invocation.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_document_is_the_specifications_shape() {
        let doc = Emf::with_stage("dispatch", "prod")
            .count("JobsDispatched", 1)
            .count("JobsSkipped", 0)
            .document(1_700_000_000_123);
        assert_eq!(
            doc,
            json!({
                "_aws": {
                    "Timestamp": 1_700_000_000_123u64,
                    "CloudWatchMetrics": [{
                        "Namespace": "Arca",
                        "Dimensions": [["Function", "Stage"]],
                        "Metrics": [
                            { "Name": "JobsDispatched", "Unit": "Count" },
                            { "Name": "JobsSkipped", "Unit": "Count" },
                        ],
                    }],
                },
                "Function": "dispatch",
                "Stage": "prod",
                "JobsDispatched": 1.0,
                "JobsSkipped": 0.0,
            })
        );
    }

    #[test]
    fn further_dimensions_add_a_dimension_set_and_every_target_is_a_root_member() {
        let doc = Emf::with_stage("api", "dev")
            .dimension("Route", "/v1/jobs/{id}")
            .dimension("StatusClass", "2xx")
            .count("Requests", 1)
            .milliseconds("Latency", 12.5)
            .document(1);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(
            directive["Dimensions"],
            json!([["Function", "Stage"], ["Function", "Stage", "Route", "StatusClass"]])
        );
        assert_eq!(
            directive["Metrics"][1],
            json!({ "Name": "Latency", "Unit": "Milliseconds" })
        );
        // The specification: every dimension a set names and every metric defined is a
        // member of the root, dimensions as strings and metrics as numbers.
        for set in directive["Dimensions"].as_array().unwrap() {
            for name in set.as_array().unwrap() {
                assert!(doc[name.as_str().unwrap()].is_string(), "{name}");
            }
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            assert!(doc[metric["Name"].as_str().unwrap()].is_number(), "{metric}");
        }
        assert_eq!(doc["Latency"], 12.5);
        assert_eq!(doc["Route"], "/v1/jobs/{id}");
        // One line: the JSON has no newline of its own.
        assert!(!doc.to_string().contains('\n'));
    }
}
