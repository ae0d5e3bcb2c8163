//! Whether a backup run happens: the pure decision, apart from the I/O around it
//! (`ControlPlane::dispatch` gathers the facts, decides here, then writes the job).
//!
//! "Another job of the definition is still going" is decided here from what was read,
//! but enforced by the store: the job is created together with the definition's
//! [`crate::model::agent::ActiveJob`] item under `NotExists`, so of two racing dispatches only
//! one commits; the other becomes SKIPPED with [`SkipReason::AlreadyRunning`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{BackupDefinitionId, JobId, OrgId};
use crate::model::cluster::ClusterState;
use crate::model::job::{JobState, JobTrigger};
use crate::model::policy::Retention;

/// Why a run was skipped; the text is the job's `reason`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    DefinitionPaused,
    PolicySuspended,
    /// The schedule names a policy row that no longer exists (the policy was edited and
    /// the schedules not yet re-synced).
    RuleGone {
        rule: u32,
    },
    NoPolicy,
    ClusterNotActive {
        state: ClusterState,
    },
    AlreadyRunning {
        job_id: JobId,
        state: JobState,
    },
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::DefinitionPaused => write!(f, "definition paused"),
            SkipReason::PolicySuspended => write!(f, "policy suspended"),
            SkipReason::RuleGone { rule } => write!(f, "schedule row {rule} no longer exists in the policy"),
            SkipReason::NoPolicy => write!(f, "the definition has no policy (on demand only)"),
            SkipReason::ClusterNotActive { state } => {
                let state = match state {
                    ClusterState::Registered => "REGISTERED (no agent has connected yet)",
                    ClusterState::Pending => "PENDING (its agent is not connected)",
                    ClusterState::Active => "ACTIVE",
                };
                write!(f, "cluster not active: it is {state}")
            }
            SkipReason::AlreadyRunning { job_id, state } => {
                write!(f, "another job of this definition is still {state:?}: {job_id}")
            }
        }
    }
}

/// What dispatch knows when it decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DispatchFacts {
    pub trigger: JobTrigger,
    pub definition_paused: bool,
    /// `None`: the definition has no policy.
    pub policy_suspended: Option<bool>,
    /// For scheduled runs: whether the fired row still exists.
    pub rule_exists: bool,
    pub rule: Option<u32>,
    pub cluster_state: ClusterState,
    /// The definition's unfinished job, if one was seen.
    pub active_job: Option<(JobId, JobState)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Run,
    Skip(SkipReason),
}

/// Runs or skips. Pause and suspension stop the schedule, not a user: a manual run of a
/// paused definition goes ahead. Every run needs an ACTIVE cluster (someone must take the
/// job) and no other unfinished job of the definition.
pub fn decide(f: &DispatchFacts) -> Decision {
    use Decision::Skip;
    if f.trigger == JobTrigger::Scheduled {
        if f.definition_paused {
            return Skip(SkipReason::DefinitionPaused);
        }
        match f.policy_suspended {
            None => return Skip(SkipReason::NoPolicy),
            Some(true) => return Skip(SkipReason::PolicySuspended),
            Some(false) => {}
        }
        if !f.rule_exists {
            return Skip(SkipReason::RuleGone {
                rule: f.rule.unwrap_or_default(),
            });
        }
    }
    if f.cluster_state != ClusterState::Active {
        return Skip(SkipReason::ClusterNotActive { state: f.cluster_state });
    }
    if let Some((job_id, state)) = f.active_job
        && !state.is_terminal()
    {
        return Skip(SkipReason::AlreadyRunning { job_id, state });
    }
    Decision::Run
}

/// When a run's recovery point expires: its retention, capped by the plan's maximum,
/// from `now`.
pub fn expiry(retention: &Retention, plan_max_days: Option<u32>, now: DateTime<Utc>) -> DateTime<Utc> {
    let days = match plan_max_days {
        Some(max) => retention.retain_days.min(max),
        None => retention.retain_days,
    };
    now + Duration::from_secs(u64::from(days) * 86_400)
}

/// A request to run a definition, from a schedule or a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DispatchRequest {
    pub org_id: OrgId,
    pub definition_id: BackupDefinitionId,
    pub trigger: JobTrigger,
    /// The schedule row that fired (scheduled runs).
    #[serde(default)]
    pub rule: Option<u32>,
    /// A user's retention for this run (run now).
    #[serde(default)]
    pub retention: Option<Retention>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> DispatchFacts {
        DispatchFacts {
            trigger: JobTrigger::Scheduled,
            definition_paused: false,
            policy_suspended: Some(false),
            rule_exists: true,
            rule: Some(0),
            cluster_state: ClusterState::Active,
            active_job: None,
        }
    }

    #[test]
    fn a_healthy_scheduled_run_runs() {
        assert_eq!(decide(&facts()), Decision::Run);
        let finished = DispatchFacts {
            active_job: Some((JobId::new(), JobState::Completed)),
            ..facts()
        };
        assert_eq!(
            decide(&finished),
            Decision::Run,
            "a stale, finished active job does not block"
        );
    }

    #[test]
    fn each_reason_to_skip_is_named() {
        let cases = [
            (
                DispatchFacts {
                    definition_paused: true,
                    ..facts()
                },
                "definition paused",
            ),
            (
                DispatchFacts {
                    policy_suspended: Some(true),
                    ..facts()
                },
                "policy suspended",
            ),
            (
                DispatchFacts {
                    rule_exists: false,
                    rule: Some(3),
                    ..facts()
                },
                "schedule row 3 no longer exists in the policy",
            ),
            (
                DispatchFacts {
                    cluster_state: ClusterState::Pending,
                    ..facts()
                },
                "cluster not active: it is PENDING (its agent is not connected)",
            ),
            (
                DispatchFacts {
                    cluster_state: ClusterState::Registered,
                    ..facts()
                },
                "cluster not active: it is REGISTERED (no agent has connected yet)",
            ),
        ];
        for (f, want) in cases {
            match decide(&f) {
                Decision::Skip(reason) => assert_eq!(reason.to_string(), want),
                Decision::Run => panic!("{f:?} must skip"),
            }
        }
        let job = JobId::new();
        let running = DispatchFacts {
            active_job: Some((job, JobState::Running)),
            ..facts()
        };
        assert_eq!(
            decide(&running),
            Decision::Skip(SkipReason::AlreadyRunning {
                job_id: job,
                state: JobState::Running
            })
        );
    }

    #[test]
    fn a_user_may_run_a_paused_definition_but_not_on_an_absent_agent() {
        let manual = DispatchFacts {
            trigger: JobTrigger::Manual,
            definition_paused: true,
            policy_suspended: None,
            rule_exists: false,
            rule: None,
            ..facts()
        };
        assert_eq!(decide(&manual), Decision::Run);
        let away = DispatchFacts {
            cluster_state: ClusterState::Pending,
            ..manual
        };
        assert!(matches!(
            decide(&away),
            Decision::Skip(SkipReason::ClusterNotActive { .. })
        ));
    }

    #[test]
    fn expiry_is_capped_by_the_plan() {
        let now: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
        let r = Retention {
            retain_days: 90,
            keep_last: None,
        };
        assert_eq!(
            expiry(&r, Some(30), now),
            "2030-01-31T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            expiry(&r, None, now),
            "2030-04-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }
}
