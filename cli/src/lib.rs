//! `arca`, the command line of Arca: drives the HTTP API (`arca policies list`, ...) and
//! runs single-machine mode (`arca server`).
//!
//! Exit codes: 0 success, 1 a failed operation (API errors are one line,
//! `arca: error: <code>: <detail>`), 2 a usage error (clap's own, or ours for
//! malformed values such as `--schedule`).

pub mod args;
pub mod client;
pub mod commands;
pub mod config;
pub mod output;
pub mod server;

use std::process::ExitCode;

use clap::Parser;

/// Why a command failed, and so its exit code.
#[derive(Debug)]
pub enum CliError {
    /// The API (or the way to it) refused: a stable code and a human detail.
    Api { code: String, detail: String },
    /// The command line is wrong in a way clap cannot see (exit 2).
    Usage(String),
    /// Anything else that failed (exit 1).
    Other(String),
}

impl CliError {
    pub fn api(code: impl Into<String>, detail: impl Into<String>) -> Self {
        CliError::Api {
            code: code.into(),
            detail: detail.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        CliError::Usage(message.into())
    }

    pub fn other(message: impl Into<String>) -> Self {
        CliError::Other(message.into())
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Api { .. } | CliError::Other(_) => 1,
        }
    }
}

/// One line, always: a detail with line breaks would break `arca ... 2>&1 | tail -1`.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Api { code, detail } => write!(f, "{code}: {}", one_line(detail)),
            CliError::Usage(m) => write!(f, "usage: {}", one_line(m)),
            CliError::Other(m) => write!(f, "{}", one_line(m)),
        }
    }
}

impl std::error::Error for CliError {}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        // `{:#}`: the whole context chain on one line.
        CliError::Other(format!("{e:#}"))
    }
}

/// The process entry point of `arca`.
pub fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("arca: error: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arca: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_line_with_their_exit_code() {
        let e = CliError::api("policy_in_use", "policy \"h\" is used by\n  b1 (bkp_1)");
        assert_eq!(e.to_string(), "policy_in_use: policy \"h\" is used by b1 (bkp_1)");
        assert_eq!(e.exit_code(), 1);
        assert_eq!(CliError::usage("bad --schedule").exit_code(), 2);
    }
}
