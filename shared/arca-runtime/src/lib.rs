//! Start-up shared by every Arca binary (Lambda functions, the local server, the agent):
//! structured logs, and the Lambda functions' CloudWatch metrics ([`emf`]).

pub mod emf;

use tracing_subscriber::EnvFilter;

/// The log filter when `RUST_LOG` is unset: our crates at info, dependencies at warn. Every
/// crate of ours is named `arca*` and a directive's target matches by prefix.
const DEFAULT_FILTER: &str = "warn,arca=info";

/// Structured JSON logs on stdout (CloudWatch on Lambda, the pod log in a cluster),
/// filtered by `RUST_LOG`. Calling it twice is harmless.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_env_filter(filter)
        .try_init();
}

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn our_crates_log_at_info_and_dependencies_at_warn() {
        let filter: super::EnvFilter = super::DEFAULT_FILTER.parse().unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(filter), || {
            assert!(tracing::enabled!(target: "arca_core::control_plane", Level::INFO));
            assert!(tracing::enabled!(target: "arca_fn_dispatch", Level::INFO));
            assert!(tracing::enabled!(target: "arca_api::routes", Level::INFO));
            assert!(tracing::enabled!(target: "arca_agent", Level::INFO));
            assert!(!tracing::enabled!(target: "arca_agent", Level::DEBUG));
            assert!(!tracing::enabled!(target: "aws_sdk_s3::client", Level::INFO));
            assert!(tracing::enabled!(target: "aws_sdk_s3::client", Level::WARN));
        });
    }
}
