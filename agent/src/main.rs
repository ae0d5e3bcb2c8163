//! The agent binary: the data-path commands (`repo …`, `volume …`) used by the mover Jobs
//! and by hand, and `facts`, which connects to the cluster and prints what it found. The
//! job loop comes with the agent-protocol issue.

mod cli;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Args::parse();
    match cli::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: the cause chain joined by ": ", with any newline flattened.
            let line = format!("{err:#}").replace('\n', " ");
            eprintln!("arca-agent: error: {line}");
            ExitCode::FAILURE
        }
    }
}
