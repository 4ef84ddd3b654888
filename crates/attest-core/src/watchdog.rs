//! Undoing what attest started when attest dies without doing it itself, even by SIGKILL.
//!
//! A watchdog is a `/bin/sh` script that first reads its stdin, a pipe whose write end only
//! attest holds: std creates it close-on-exec, so no other child inherits it. However attest
//! ends, the kernel closes that end, `read` returns at end-of-file, and the script goes on to
//! clean up. Standing down kills the shell while it still waits: it is attest's child and not
//! yet reaped, so its pid cannot name another process, and a stopped shell (SIGSTOP) is
//! stood down all the same.

use std::io;
use std::process::{Child, Command, Stdio};

pub struct Watchdog {
    /// `None` once stood down.
    shell: Option<Child>,
}

impl Watchdog {
    /// Starts `/bin/sh -c script`, leader of a process group of its own (a terminal's Ctrl-C,
    /// meant for attest, does not reach it). `configure` adds the script's `$0`, `$1`, …, and
    /// anything else the cleanup needs (user, environment). The script must start with a
    /// `read`: what follows it runs only when attest is gone.
    pub fn start(script: &str, configure: impl FnOnce(&mut Command)) -> io::Result<Watchdog> {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        configure(&mut command);
        Ok(Watchdog {
            shell: Some(command.spawn()?),
        })
    }

    /// The shell's process id, which is also its process group's id.
    pub fn id(&self) -> u32 {
        self.shell.as_ref().map_or(0, Child::id)
    }

    /// Stops the shell before it does anything and reaps it; from then on its pid (and group
    /// id) may name another process. Idempotent.
    pub fn stand_down(&mut self) {
        if let Some(mut shell) = self.shell.take() {
            // Killed before its stdin closes, which would set it off.
            let _ = shell.kill();
            let _ = shell.wait();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stand_down();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait_for(path: &std::path::Path, limit: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            if path.exists() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn acts_when_its_stdin_closes_and_not_when_stood_down() {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"read -r line; touch "$0""#;
        let fired = dir.path().join("fired");
        let mut watchdog = Watchdog::start(script, |c| {
            c.arg(&fired);
        })
        .unwrap();
        // What attest's death does: the write end closes.
        drop(watchdog.shell.as_mut().unwrap().stdin.take());
        assert!(wait_for(&fired, Duration::from_secs(5)), "it never acted");
        watchdog.stand_down();

        let quiet = dir.path().join("quiet");
        let watchdog = Watchdog::start(script, |c| {
            c.arg(&quiet);
        })
        .unwrap();
        drop(watchdog);
        assert!(!wait_for(&quiet, Duration::from_millis(300)), "it acted");
    }
}
