//! Retention: expires recovery points whose time is up. Deleting the data behind them
//! arrives with the control-plane and data-path issues; the selection rule is here now.

use std::time::SystemTime;

/// What retention needs to know of a recovery point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PointSummary {
    pub id: String,
    pub expires_at: Option<SystemTime>,
    /// A locked point is kept whatever its expiry (legal hold, "keep forever").
    pub locked: bool,
}

/// The points to expire at `now`: unlocked, with an expiry at or before `now`.
pub fn due(points: &[PointSummary], now: SystemTime) -> Vec<&PointSummary> {
    points.iter().filter(|p| !p.locked && p.expires_at.is_some_and(|t| t <= now)).collect()
}

pub async fn handle(_event: serde_json::Value) -> Result<serde_json::Value, lambda_runtime::Error> {
    tracing::info!("retention run requested");
    Err("retention is not wired to the store yet (control-plane issue)".into())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn point(id: &str, expires: Option<u64>, locked: bool) -> PointSummary {
        PointSummary { id: id.into(), expires_at: expires.map(|s| UNIX_EPOCH + Duration::from_secs(s)), locked }
    }

    #[test]
    fn only_unlocked_expired_points_are_due() {
        let points = [
            point("past", Some(100), false),
            point("now", Some(200), false),
            point("future", Some(300), false),
            point("locked", Some(100), true),
            point("forever", None, false),
        ];
        let ids: Vec<_> = due(&points, UNIX_EPOCH + Duration::from_secs(200)).iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["past", "now"]);
    }
}
