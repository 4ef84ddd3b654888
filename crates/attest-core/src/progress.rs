//! Live progress for checks that run long: on a terminal, a line on stderr for each check
//! that has been running a while (attempt count, last observation, time left), so a check
//! polling for a minute is not silent. Whole lines only, and only on stderr, so neither
//! `--format json` on stdout nor a log file is ever corrupted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::suite::format_duration;

/// A check is mentioned once it has run this long, then again at this interval.
const QUIET_FOR: Duration = Duration::from_secs(2);
const EVERY: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Progress {
    enabled: bool,
    running: Arc<Mutex<BTreeMap<u64, Running>>>,
    next_id: Arc<AtomicU64>,
}

struct Running {
    name: String,
    started: Instant,
    deadline: Instant,
    attempts: u32,
    last: Option<String>,
    told: Option<Instant>,
}

/// One running check; dropping it takes the check off the list.
pub struct Watch {
    id: u64,
    progress: Progress,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            running: Arc::default(),
            next_id: Arc::default(),
        }
    }

    pub fn start(&self, name: String, timeout: Duration) -> Watch {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if self.enabled {
            let now = Instant::now();
            self.lock().insert(
                id,
                Running {
                    name,
                    started: now,
                    deadline: now + timeout,
                    attempts: 0,
                    last: None,
                    told: None,
                },
            );
        }
        Watch {
            id,
            progress: self.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lines due now, marking them told.
    fn due(&self, now: Instant) -> Vec<String> {
        let mut lines = Vec::new();
        for check in self.lock().values_mut() {
            let quiet = now.duration_since(check.started) >= QUIET_FOR;
            let due = check.told.is_none_or(|t| now.duration_since(t) >= EVERY);
            if quiet && due {
                check.told = Some(now);
                lines.push(check.line(now));
            }
        }
        lines
    }

    /// Prints due lines every second until cancelled.
    pub async fn tick(self, stop: CancellationToken) {
        use std::io::Write;
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stop.cancelled() => return,
            }
            for line in self.due(Instant::now()) {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
    }
}

impl Running {
    fn line(&self, now: Instant) -> String {
        let mut line = format!(
            "    … {} running for {}",
            self.name,
            format_duration(Duration::from_secs(
                now.duration_since(self.started).as_secs()
            ))
        );
        if self.attempts > 0 {
            line.push_str(&format!(", {} attempt(s)", self.attempts));
        }
        line.push_str(&format!(
            ", {} left",
            format_duration(Duration::from_secs(
                self.deadline.saturating_duration_since(now).as_secs()
            ))
        ));
        if let Some(last) = &self.last {
            let short: String = last.chars().take(120).collect();
            line.push_str(&format!("; last: {short}"));
        }
        line
    }
}

impl Watch {
    /// Records a completed attempt (its summary already redacted).
    pub fn observed(&self, attempts: u32, summary: &str) {
        if let Some(check) = self.progress.lock().get_mut(&self.id) {
            check.attempts = attempts;
            check.last = Some(summary.to_owned());
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.progress.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_running_checks_get_a_line_with_attempts_last_observation_and_time_left() {
        let progress = Progress::new(true);
        let watch = progress.start("story-5.2::pvc-bound".into(), Duration::from_secs(60));
        let now = Instant::now();
        assert!(progress.due(now).is_empty(), "quiet for the first seconds");
        watch.observed(3, "status.phase is Pending");
        let lines = progress.due(now + Duration::from_secs(3));
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].contains("story-5.2::pvc-bound running for 3.0 s"),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].contains("3 attempt(s)") && lines[0].contains("last: status.phase is Pending")
        );
        assert!(
            progress.due(now + Duration::from_secs(4)).is_empty(),
            "not again at once"
        );
        drop(watch);
        assert!(progress.due(now + Duration::from_secs(30)).is_empty());
    }
}
