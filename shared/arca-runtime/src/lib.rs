//! Start-up shared by every Arca binary (Lambda functions, the local server, the agent).

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
    #[test]
    fn the_default_filter_parses() {
        let filter: super::EnvFilter = super::DEFAULT_FILTER.parse().unwrap();
        assert_eq!(filter.to_string(), "warn,arca=info");
    }
}
