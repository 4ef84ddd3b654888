//! A `command` check's process group: the command and everything it starts (background jobs,
//! a shell's children) stop together when the check ends, times out or is cancelled, so a
//! check leaves nothing running on the server.
//!
//! Stopping is SIGTERM to the whole group, then SIGKILL after [`GRACE`]. A group dropped
//! unfinished (the runner drops a check's future on timeout and on Ctrl-C) gets its SIGTERM at
//! once and its SIGKILL from a short-lived thread; if attest exits first, an exit hook sends
//! the SIGKILL instead, since nothing may outlive the run.
//!
//! If attest dies without any of that (SIGKILL, a crash), the group's [`Watchdog`] stops it.
//! The watchdog is the group's leader, started before the command joins: the group id is its
//! pid, which cannot name another group while the watchdog lives or waits unreaped, so it never
//! signals a stranger, and there is no moment when the command runs unwatched. (`PR_SET_PDEATHSIG`
//! would not do: it fires when the spawning thread exits, and reaches only the direct child.)

use std::io;
use std::process::ExitStatus;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::watchdog::Watchdog;

/// Between SIGTERM and SIGKILL: time for a well-behaved program to clean up.
pub const GRACE: Duration = Duration::from_secs(2);
/// How often a stopping group is looked at.
const POLL: Duration = Duration::from_millis(20);
/// How long SIGKILL may take to empty the group (a process in uninterruptible sleep).
const KILL_WAIT: Duration = Duration::from_secs(1);

/// The watchdog of a group, and its leader (`$$` is the group id). It ignores the signals
/// the group gets while being stopped, so that it outlives the grace; set off, it stops the
/// group as [`ProcessGroup::stop`] does, itself last.
const GROUP_WATCHDOG: &str = r#"trap '' HUP INT TERM
read -r line
kill -s TERM -- "-$$"
kill -s CONT -- "-$$"
sleep "$0"
kill -s KILL -- "-$$""#;

pub struct ProcessGroup {
    pgid: libc::pid_t,
    child: Option<Child>,
    /// Leads the group; stood down only once nothing else of the group runs.
    watchdog: Option<Watchdog>,
    /// Set once nothing of the group is left; until then, dropping it stops the group.
    finished: bool,
}

/// What stopping found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Everything had already exited.
    NothingLeft,
    /// Leftover processes ended on SIGTERM.
    Terminated,
    /// Leftover processes ignored SIGTERM and were killed.
    Killed,
}

impl ProcessGroup {
    /// Starts `command` in a new process group that its watchdog leads.
    pub fn spawn(command: &mut Command) -> io::Result<ProcessGroup> {
        let watchdog = Watchdog::start(GROUP_WATCHDOG, |shell| {
            shell.arg(GRACE.as_secs().to_string());
        })
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start its watchdog: {e}")))?;
        let pgid = libc::pid_t::try_from(watchdog.id())
            .map_err(|_| io::Error::other("the watchdog has no process id"))?;
        // The group is stopped as a whole below; tokio's kill would reach only the command.
        command.process_group(pgid).kill_on_drop(false);
        // On failure the watchdog is dropped, which stands it down.
        let child = command.spawn()?;
        Ok(ProcessGroup {
            pgid,
            child: Some(child),
            watchdog: Some(watchdog),
            finished: false,
        })
    }

    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("the child is kept until drop")
    }

    /// Waits for the leader (the command itself) to exit.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child().wait().await
    }

    /// Stops whatever is left of the group once the command has exited.
    pub async fn stop(&mut self) -> Stop {
        let stop = self.stop_leftovers().await;
        if self.finished {
            self.stand_down();
        }
        stop
    }

    async fn stop_leftovers(&mut self) -> Stop {
        self.reap();
        if !alive(self.pgid) {
            self.finished = true;
            return Stop::NothingLeft;
        }
        terminate(self.pgid);
        let deadline = Instant::now() + GRACE;
        while Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
            self.reap();
            if !alive(self.pgid) {
                self.finished = true;
                return Stop::Terminated;
            }
        }
        signal(self.pgid, libc::SIGKILL);
        let deadline = Instant::now() + KILL_WAIT;
        while alive(self.pgid) && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
            self.reap();
        }
        self.finished = !alive(self.pgid);
        Stop::Killed
    }

    /// A command that exited but was not waited for still counts as a member of the group.
    fn reap(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.try_wait();
        }
    }

    /// Nothing of the group runs any more: its watchdog is not needed. Blocks for as long as
    /// reaping a killed shell takes.
    fn stand_down(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            watchdog.stand_down();
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        terminate(self.pgid);
        let (pgid, child, watchdog) = (self.pgid, self.child.take(), self.watchdog.take());
        pending(pgid, true);
        // Handed over only once the thread exists, so that without one the group is killed
        // before its watchdog is stood down (which frees the group id).
        let (hand_over, handed) = std::sync::mpsc::channel::<(Option<Child>, Option<Watchdog>)>();
        let escalation = std::thread::Builder::new()
            .name(format!("attest-stop-{pgid}"))
            .spawn(move || {
                if let Ok((child, watchdog)) = handed.recv() {
                    escalate(pgid, child);
                    drop(watchdog);
                }
                pending(pgid, false);
            });
        match escalation {
            Ok(_) => {
                let _ = hand_over.send((child, watchdog));
            }
            Err(_) => {
                // No thread to wait the grace period: better killed early than left running.
                signal(pgid, libc::SIGKILL);
                drop(watchdog);
                pending(pgid, false);
            }
        }
    }
}

/// The blocking half of [`Drop`]: SIGKILL if the group outlives the grace period.
fn escalate(pgid: libc::pid_t, mut child: Option<Child>) {
    let mut reap = || {
        if let Some(child) = &mut child {
            let _ = child.try_wait();
        }
    };
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        std::thread::sleep(POLL);
        reap();
        if !alive(pgid) {
            return;
        }
    }
    signal(pgid, libc::SIGKILL);
    std::thread::sleep(POLL);
    reap();
}

/// SIGTERM, and SIGCONT so that stopped members act on it.
fn terminate(pgid: libc::pid_t) {
    signal(pgid, libc::SIGTERM);
    signal(pgid, libc::SIGCONT);
}

fn signal(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) takes plain integers; a negative pid addresses the process group we
    // created. The group id stays reserved while any member (even a zombie) exists.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Whether any process of the group other than its leader, the watchdog, is still running.
/// EPERM means a member exists but changed user (a setuid program): still alive. Without
/// /proc (not Linux) the watchdog cannot be told apart, and the group counts as running.
pub fn alive(pgid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let result = unsafe { libc::kill(-pgid, 0) };
    if result != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
        return false;
    }
    // kill(2) counts zombies too. An orphaned member's zombie waits for init to reap it, which
    // can take seconds in a container; it is dead all the same.
    has_running_member(pgid).unwrap_or(true)
}

/// Looks through /proc (Linux) for a member of the group that is not a zombie, nor the
/// leader; None where there is no /proc.
fn has_running_member(pgid: libc::pid_t) -> Option<bool> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let leader = pgid.to_string();
    let running = entries.flatten().any(|entry| {
        let is_member_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n != leader && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        is_member_pid
            && std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|stat| stat_group_and_state(&stat))
                .is_some_and(|(group, state)| group == pgid && state != 'Z' && state != 'X')
    });
    Some(running)
}

/// The process group and state from `/proc/PID/stat`: `pid (comm) state ppid pgrp ...`,
/// where `comm` may itself hold spaces and parentheses.
fn stat_group_and_state(stat: &str) -> Option<(libc::pid_t, char)> {
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let group = fields.next()?.parse().ok()?;
    Some((group, state))
}

/// Groups that got SIGTERM from a drop and may still need SIGKILL.
static PENDING: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

fn pending(pgid: libc::pid_t, add: bool) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: registers a plain `extern "C"` function that only sends signals.
        unsafe {
            libc::atexit(kill_pending_at_exit);
        }
    });
    let mut groups = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    if add {
        groups.push(pgid);
    } else {
        groups.retain(|&g| g != pgid);
    }
}

/// At exit the escalation threads die with the process; their groups must not survive it.
extern "C" fn kill_pending_at_exit() {
    let groups = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    for &pgid in groups.iter() {
        signal(pgid, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_group_and_state_past_an_odd_command_name() {
        let stat = "4242 (sh) x (y)) S 4200 4242 4200 0 -1 4194560 ...";
        assert_eq!(stat_group_and_state(stat), Some((4242, 'S')));
        assert_eq!(stat_group_and_state("garbage"), None);
    }
}
