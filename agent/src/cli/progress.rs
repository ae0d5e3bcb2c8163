//! Progress on stderr, only when stderr is a terminal (never in logs or pipes).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

pub struct Bar {
    enabled: bool,
    label: &'static str,
    started: Instant,
    last: Arc<AtomicU64>,
}

impl Bar {
    pub fn new(label: &'static str) -> Bar {
        Bar {
            enabled: std::io::stderr().is_terminal(),
            label,
            started: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn callback(&self) -> Option<arca_repo::backup::Progress> {
        if !self.enabled {
            return None;
        }
        let (label, started, last) = (self.label, self.started, self.last.clone());
        Some(Arc::new(move |done: u64, total: u64| {
            // At most ten updates a second.
            let now = started.elapsed().as_millis() as u64;
            if now.saturating_sub(last.load(Ordering::Relaxed)) < 100 {
                return;
            }
            last.store(now, Ordering::Relaxed);
            let mb = done as f64 / 1e6;
            let rate = mb / started.elapsed().as_secs_f64().max(0.001);
            let mut err = std::io::stderr().lock();
            let _ = if total > 0 {
                write!(
                    err,
                    "\r{label}: {mb:.0} / {:.0} MB ({rate:.0} MB/s)   ",
                    total as f64 / 1e6
                )
            } else {
                write!(err, "\r{label}: {mb:.0} MB ({rate:.0} MB/s)   ")
            };
        }))
    }

    pub fn finish(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}
