//! Live progress for checks that run long: on a terminal, a line on stderr for each check
//! that has been running a while (attempt count, last observation, time left), so a check
//! polling for a minute is not silent. Whole lines only, and only on stderr, so neither
//! `--format json` on stdout nor a log file is ever corrupted.
//!
//! The console (libtest-mimic, on stdout) writes `test name ... ` and leaves that line open
//! until the check's result. A progress line never joins it: the open line is cleared, the
//! progress lines written, and the open line written again below them, where its `ok` lands:
//!
//! ```text
//!     … story-5.2::pvc-bound running for 7.0 s, 3.0 s left; last: status.phase is Pending
//! test [kube-object] story-5.2::pvc-bound ... ok
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, FormatSetting, Trial};
use tokio_util::sync::CancellationToken;

use crate::duration::format_duration;
use crate::runner::{CheckKey, Observer, RunEvent};

/// A check is mentioned once it has run this long, then again at this interval.
const QUIET_FOR: Duration = Duration::from_secs(2);
const EVERY: Duration = Duration::from_secs(5);
/// Clears the terminal's current line (carriage return, erase to its end).
const CLEAR_LINE: &str = "\r\x1b[K";
/// Between two checks the console's line is unknown for an instant; longer means the console
/// is gone (a closed stdout), and progress stops waiting for it.
const BETWEEN_CHECKS: Duration = Duration::from_secs(1);

/// A consumer of the run's events ([`Observer`]): checks start, make attempts and finish.
#[derive(Clone)]
pub struct Progress {
    enabled: bool,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    running: BTreeMap<CheckKey, Running>,
    console: Console,
}

/// What the console has on the terminal's current line, as far as progress knows.
#[derive(Default)]
enum Console {
    /// Nothing of the console's shares a line with progress (several test threads print
    /// whole lines; stdout is not the terminal): progress lines go out as they come.
    #[default]
    Apart,
    /// The console leaves a check's line open ([`Progress::follow_console`]) and is between
    /// two checks since then: the line may be open or not; progress waits a moment.
    Between { since: Instant, layout: Layout },
    /// The console shows `line` (`test [kind] name ... `) and waits for that check.
    Waiting { line: String, layout: Layout },
}

/// libtest-mimic's widths for `test [kind] name ... `, from all the trials it shows.
#[derive(Clone, Copy)]
struct Layout {
    kind: usize,
    name: usize,
}

impl Layout {
    /// As libtest-mimic measures the trials it shows: names and `[kind] ` in characters.
    fn of(args: &Arguments, trials: &[Trial]) -> Layout {
        let shown = trials.iter().filter(|t| !args.is_filtered_out(t));
        shown.fold(Layout { kind: 0, name: 0 }, |layout, trial| Layout {
            kind: match trial.kind().chars().count() {
                0 => layout.kind,
                n => layout.kind.max(n + "[] ".len()),
            },
            name: layout.name.max(trial.name().chars().count()),
        })
    }

    /// The open line of a check, as libtest-mimic's pretty format writes it.
    fn line(self, kind: &str, name: &str) -> String {
        let kind = if kind.is_empty() {
            String::new()
        } else {
            format!("[{kind}] ")
        };
        format!(
            "test {kind:<kw$}{name:<nw$} ... ",
            kw = self.kind,
            nw = self.name
        )
    }
}

struct Running {
    name: String,
    started: Instant,
    deadline: Instant,
    attempts: u32,
    last: Option<String>,
    told: Option<Instant>,
}

/// The console waits for one check, its line open; dropping it says the console is about to
/// write the result.
pub struct ConsoleWait {
    progress: Progress,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            state: Arc::default(),
        }
    }

    /// Before the console runs `trials` with `args`: whether it leaves each check's line open
    /// on this terminal (libtest-mimic's pretty format, one test thread, stdout a terminal),
    /// and how it lays that line out.
    pub fn follow_console(&self, args: &Arguments, trials: &[Trial]) {
        use std::io::IsTerminal;
        let pretty = !args.quiet && matches!(args.format, None | Some(FormatSetting::Pretty));
        let threads = args
            .test_threads
            .or_else(|| std::thread::available_parallelism().ok().map(Into::into))
            .unwrap_or(1);
        let open_lines =
            pretty && threads == 1 && args.logfile.is_none() && std::io::stdout().is_terminal();
        if !self.enabled || !open_lines {
            return;
        }
        self.lock().console = Console::Between {
            since: Instant::now(),
            layout: Layout::of(args, trials),
        };
    }

    /// Called by a check's trial as the console starts waiting for it, its line just written.
    pub fn console_waits_for(&self, kind: &str, name: &str) -> ConsoleWait {
        let mut state = self.lock();
        if let Console::Between { layout, .. } | Console::Waiting { layout, .. } = state.console {
            state.console = Console::Waiting {
                line: layout.line(kind, name),
                layout,
            };
        }
        ConsoleWait {
            progress: self.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the lines due now to `out`, in one write, marking their checks told; nothing
    /// while the console's line cannot be known. The lock is held while writing: the console
    /// writes a check's result only after its trial has said so ([`ConsoleWait`]'s drop),
    /// which takes the lock, so the result never lands inside progress or the other way round.
    fn write_due(&self, now: Instant, out: &mut impl std::io::Write) {
        let mut state = self.lock();
        let open = match &state.console {
            Console::Apart => None,
            Console::Between { since, .. } if now.duration_since(*since) < BETWEEN_CHECKS => {
                return;
            }
            Console::Between { .. } => None,
            Console::Waiting { line, .. } => Some(line.clone()),
        };
        let mut lines = Vec::new();
        for check in state.running.values_mut() {
            let quiet = now.duration_since(check.started) >= QUIET_FOR;
            let due = check.told.is_none_or(|t| now.duration_since(t) >= EVERY);
            if quiet && due {
                check.told = Some(now);
                lines.push(check.line(now));
            }
        }
        if !lines.is_empty() {
            let _ = out.write_all(render(&lines, open.as_deref()).as_bytes());
        }
    }

    /// Prints due lines on stderr every second until cancelled.
    pub async fn tick(self, stop: CancellationToken) {
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stop.cancelled() => return,
            }
            self.write_due(Instant::now(), &mut std::io::stderr());
        }
    }
}

/// Progress `lines` as written to the terminal. With the console's line `open`, that line is
/// cleared and written again after them, so that no line is shared and the check's result
/// still lands after its name.
fn render(lines: &[String], open: Option<&str>) -> String {
    let mut text = String::new();
    if open.is_some() {
        text.push_str(CLEAR_LINE);
    }
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(open.unwrap_or_default());
    text
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
        // To the nearest whole second: under half a second left, the check is about to time
        // out, not `0.00 ms` from it.
        let left = self.deadline.saturating_duration_since(now);
        match (left + Duration::from_millis(500)).as_secs() {
            0 => line.push_str(", timing out"),
            left => line.push_str(&format!(
                ", {} left",
                format_duration(Duration::from_secs(left))
            )),
        }
        if let Some(last) = &self.last {
            let short: String = last.chars().take(120).collect();
            line.push_str(&format!("; last: {short}"));
        }
        line
    }
}

impl Observer for Progress {
    fn on(&self, event: &RunEvent) {
        if !self.enabled {
            return;
        }
        match event {
            RunEvent::CheckStarted { key, name, timeout } => {
                let now = Instant::now();
                self.lock().running.insert(
                    *key,
                    Running {
                        name: (*name).to_owned(),
                        started: now,
                        deadline: now + *timeout,
                        attempts: 0,
                        last: None,
                        told: None,
                    },
                );
            }
            // The summary is already redacted.
            RunEvent::Attempt {
                key,
                attempts,
                summary,
            } => {
                if let Some(check) = self.lock().running.get_mut(key) {
                    check.attempts = *attempts;
                    check.last = Some((*summary).to_owned());
                }
            }
            RunEvent::CheckFinished { key, .. } => {
                self.lock().running.remove(key);
            }
            _ => {}
        }
    }
}

impl Drop for ConsoleWait {
    fn drop(&mut self) {
        let mut state = self.progress.lock();
        if let Console::Waiting { layout, .. } = state.console {
            state.console = Console::Between {
                since: Instant::now(),
                layout,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Progress {
        /// What [`Progress::tick`] would print at `now`.
        fn due(&self, now: Instant) -> Option<String> {
            let mut out = Vec::new();
            self.write_due(now, &mut out);
            (!out.is_empty()).then(|| String::from_utf8(out).unwrap())
        }
    }

    /// Makes every running check start at `now` exactly, for whole-second arithmetic.
    fn started_at(progress: &Progress, now: Instant) {
        for check in progress.lock().running.values_mut() {
            check.deadline = now + (check.deadline - check.started);
            check.started = now;
        }
    }

    /// Check `n` starts, as the runner tells it.
    fn start(progress: &Progress, n: usize, name: &str, timeout: Duration) -> CheckKey {
        let key = CheckKey { suite: 0, check: n };
        progress.on(&RunEvent::CheckStarted { key, name, timeout });
        key
    }

    /// Check `key` ends, as the runner tells it.
    fn finish(progress: &Progress, key: CheckKey) {
        let outcome = crate::outcome::Outcome::for_tests("t", "c", crate::outcome::Status::Passed);
        progress.on(&RunEvent::CheckFinished {
            key,
            outcome: &outcome,
        });
    }

    fn running_check(progress: &Progress) -> CheckKey {
        let key = start(progress, 0, "story-5.2::pvc-bound", Duration::from_secs(60));
        progress.on(&RunEvent::Attempt {
            key,
            attempts: 3,
            summary: "status.phase is Pending",
        });
        key
    }

    #[test]
    fn long_running_checks_get_a_line_with_attempts_last_observation_and_time_left() {
        let progress = Progress::new(true);
        let now = Instant::now();
        let key = running_check(&progress);
        started_at(&progress, now);
        assert_eq!(progress.due(now), None, "quiet for the first seconds");
        let text = progress.due(now + Duration::from_secs(3)).unwrap();
        assert_eq!(
            text,
            "    … story-5.2::pvc-bound running for 3.0 s, 3 attempt(s), 57.0 s left; \
             last: status.phase is Pending\n"
        );
        assert_eq!(
            progress.due(now + Duration::from_secs(4)),
            None,
            "not again at once"
        );
        finish(&progress, key);
        assert_eq!(progress.due(now + Duration::from_secs(30)), None);
    }

    #[test]
    fn a_check_about_to_time_out_is_said_to_be_timing_out_not_zero_ms_away() {
        let progress = Progress::new(true);
        let now = Instant::now();
        start(&progress, 0, "t::slow", Duration::from_secs(10));
        started_at(&progress, now);
        let after = |ms| {
            progress
                .lock()
                .running
                .values_mut()
                .for_each(|c| c.told = None);
            progress.due(now + Duration::from_millis(ms)).unwrap()
        };
        assert!(after(9_000).ends_with(", 1.0 s left\n"), "{}", after(9_000));
        for ms in [9_600, 10_000, 12_000] {
            let text = after(ms);
            assert!(text.ends_with(", timing out\n"), "{ms} ms: {text}");
            assert!(!text.contains("0.00 ms"), "{text}");
        }
    }

    #[test]
    fn progress_lines_clear_the_open_check_line_and_write_it_again_below_them() {
        let progress = Progress::new(true);
        let now = Instant::now();
        let layout = Layout { kind: 14, name: 22 };
        progress.lock().console = Console::Between { since: now, layout };
        running_check(&progress);
        let other = start(&progress, 1, "story-5.3::backup", Duration::from_secs(1));
        started_at(&progress, now);
        let waiting = progress.console_waits_for("kube-object", "story-5.2::pvc-bound");
        let text = progress.due(now + Duration::from_secs(3)).unwrap();
        let open = "test [kube-object] story-5.2::pvc-bound   ... ";
        assert_eq!(
            text,
            format!(
                "\r\x1b[K    … story-5.2::pvc-bound running for 3.0 s, 3 attempt(s), 57.0 s \
                 left; last: status.phase is Pending\n    … story-5.3::backup running for \
                 3.0 s, timing out\n{open}"
            )
        );
        drop(waiting);
        finish(&progress, other);
        // Between two checks the console's line is not known: the lines wait.
        let soon = Instant::now() + Duration::from_millis(100);
        started_at(&progress, now - Duration::from_secs(9));
        progress
            .lock()
            .running
            .values_mut()
            .for_each(|c| c.told = None);
        assert_eq!(progress.due(soon), None);
        let _next = progress.console_waits_for("", "story-5.4::restore");
        let text = progress.due(soon).unwrap();
        assert!(text.starts_with(CLEAR_LINE), "{text:?}");
        assert!(
            text.ends_with("\ntest               story-5.4::restore     ... "),
            "{text:?}"
        );
    }

    #[test]
    fn a_console_gone_between_checks_does_not_silence_progress() {
        let progress = Progress::new(true);
        let now = Instant::now();
        let layout = Layout { kind: 0, name: 10 };
        progress.lock().console = Console::Between { since: now, layout };
        running_check(&progress);
        started_at(&progress, now);
        let text = progress.due(now + BETWEEN_CHECKS + QUIET_FOR).unwrap();
        assert!(text.starts_with("    … "), "{text:?}");
    }

    #[test]
    fn the_open_line_is_the_one_libtest_mimic_writes() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let args = Arguments {
            test_threads: Some(1),
            logfile: Some(log.display().to_string()),
            skip: vec!["filtered-out-with-a-long-name".into()],
            ..Arguments::default()
        };
        let trials = || {
            vec![
                Trial::test("t::a", || Ok(())).with_kind("http"),
                Trial::test("t::longer-name", || Ok(())),
                Trial::test("t::c", || Ok(())).with_kind("pg-backup"),
                Trial::test("filtered-out-with-a-long-name", || Ok(())).with_kind("kube-object"),
            ]
        };
        let layout = Layout::of(&args, &trials());
        let _ = libtest_mimic::run(&args, trials());
        let written = std::fs::read_to_string(&log).unwrap();
        for (kind, name) in [
            ("http", "t::a"),
            ("", "t::longer-name"),
            ("pg-backup", "t::c"),
        ] {
            let line = format!("{}ok\n", layout.line(kind, name));
            assert!(written.contains(&line), "{line:?} not in\n{written}");
        }
    }
}
