//! Jobs and their state machine. Every state change in Arca goes through
//! [`JobState::transition`], so an illegal move (a finished job starting again, a
//! cancel that resurrects a failed job) is rejected in one place.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobType {
    K8sBackup,
    K8sCopy,
    K8sRestore,
    DeleteBackup,
    Inventory,
    RdsBackup,
    RdsCopy,
    RdsRestore,
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    Pending,
    Running,
    Completed,
    Partial,
    Failed,
    Skipped,
    Cancelling,
    Canceled,
}

impl JobState {
    /// A terminal state is final: nothing moves a job out of it.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Partial | JobState::Failed | JobState::Skipped | JobState::Canceled
        )
    }

    /// Whether `self -> to` is a legal move.
    pub fn can_become(self, to: JobState) -> bool {
        use JobState::*;
        match self {
            // Not started yet: it may start, be skipped (e.g. the previous run is still
            // going), fail to be handed out, or be canceled outright (nothing to stop).
            Pending => matches!(to, Running | Skipped | Failed | Canceled),
            Running => matches!(to, Completed | Partial | Failed | Cancelling),
            // The agent may finish before it sees the cancel request; its outcome stands.
            Cancelling => matches!(to, Canceled | Completed | Partial | Failed),
            Completed | Partial | Failed | Skipped | Canceled => false,
        }
    }

    /// Moves to `to`, or explains why that move is illegal.
    pub fn transition(self, to: JobState) -> Result<JobState> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(Error::conflict(format!("a job cannot go from {self:?} to {to:?}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::JobState::*;
    use super::*;

    const ALL: [JobState; 8] = [Pending, Running, Completed, Partial, Failed, Skipped, Cancelling, Canceled];

    #[test]
    fn the_happy_paths_are_legal() {
        assert_eq!(Pending.transition(Running).unwrap(), Running);
        assert_eq!(Running.transition(Completed).unwrap(), Completed);
        assert_eq!(Running.transition(Partial).unwrap(), Partial);
        assert_eq!(Pending.transition(Skipped).unwrap(), Skipped);
        assert_eq!(Running.transition(Cancelling).unwrap(), Cancelling);
        assert_eq!(Cancelling.transition(Canceled).unwrap(), Canceled);
    }

    #[test]
    fn terminal_states_never_move() {
        for from in ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in ALL {
                assert!(from.transition(to).is_err(), "{from:?} -> {to:?} must be rejected");
            }
        }
    }

    #[test]
    fn a_pending_job_cannot_complete_without_running() {
        let err = Pending.transition(Completed).unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }));
        assert!(err.to_string().contains("Pending to Completed"), "{err}");
    }

    #[test]
    fn states_serialise_as_the_api_spells_them() {
        assert_eq!(serde_json::to_string(&Cancelling).unwrap(), "\"CANCELLING\"");
        assert_eq!(serde_json::to_string(&JobType::K8sBackup).unwrap(), "\"K8S_BACKUP\"");
        assert_eq!(serde_json::to_string(&JobType::RdsRestore).unwrap(), "\"RDS_RESTORE\"");
    }
}
