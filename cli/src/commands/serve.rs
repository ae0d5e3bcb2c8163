//! `arca server`: starts single-machine mode and runs until Ctrl-C or SIGTERM.

use std::time::Duration;

use crate::CliError;
use crate::args::ServerArgs;

pub(super) async fn server(args: ServerArgs) -> Result<(), CliError> {
    arca_runtime::init_tracing();
    let mut options = crate::server::ServerOptions::new(args.data_dir.clone(), args.listen);
    options.retention_interval = Duration::from_secs(args.retention_interval_secs.max(1));
    options.inventory_interval = Duration::from_secs(args.inventory_interval_secs.max(1));
    let running = crate::server::start(options).await?;
    // The first line on stdout, so scripts (and tests) can learn a `:0` port.
    say(format_args!(
        "arca server listening on http://{} (data: {})",
        running.addr,
        args.data_dir.display()
    ));
    let r = &running.recovered;
    say(format_args!(
        "recovered from the store: {} orgs, {} cluster queues, {} backup schedules synced, {} unfinished jobs re-queued, {} missed schedules catching up",
        r.orgs, r.queues, r.definitions, r.requeued_jobs, r.caught_up_schedules
    ));
    shutdown_signal().await;
    say(format_args!("arca server stopping"));
    running.stop().await?;
    Ok(())
}

/// A line on stdout, if anyone still reads it: a reader that went away (`arca server |
/// head -1`, a closed service log) must not turn a clean stop into a panic.
fn say(line: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Ctrl-C or SIGTERM (what `kill` and service managers send): both stop cleanly, so the
/// redb file is closed properly.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
