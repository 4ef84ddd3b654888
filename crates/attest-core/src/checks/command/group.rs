//! A `command` check's process group: the command and everything it starts (background jobs,
//! a shell's children) stop together when the check ends, times out or is cancelled, so a
//! check leaves nothing running on the server.
//!
//! Stopping is SIGTERM to the whole group, then SIGKILL after [`GRACE`]. A group dropped
//! unfinished (the runner drops a check's future on timeout and on Ctrl-C) gets its SIGTERM at
//! once and its SIGKILL from a short-lived thread; if attest exits first, an exit hook sends
//! the SIGKILL instead, since nothing may outlive the run.

use std::io;
use std::process::ExitStatus;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// Between SIGTERM and SIGKILL: time for a well-behaved program to clean up.
pub const GRACE: Duration = Duration::from_secs(2);
/// How often a stopping group is looked at.
const POLL: Duration = Duration::from_millis(20);
/// How long SIGKILL may take to empty the group (a process in uninterruptible sleep).
const KILL_WAIT: Duration = Duration::from_secs(1);

pub struct ProcessGroup {
    pgid: libc::pid_t,
    child: Option<Child>,
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
    /// Starts `command` as the leader of a new process group.
    pub fn spawn(command: &mut Command) -> io::Result<ProcessGroup> {
        // The group is stopped as a whole below; tokio's kill would reach only the leader.
        command.process_group(0).kill_on_drop(false);
        let child = command.spawn()?;
        let pgid = child
            .id()
            .and_then(|id| libc::pid_t::try_from(id).ok())
            .ok_or_else(|| io::Error::other("the started command has no process id"))?;
        Ok(ProcessGroup {
            pgid,
            child: Some(child),
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

    /// Stops whatever is left of the group once the leader has exited.
    pub async fn stop(&mut self) -> Stop {
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

    /// A leader that exited but was not waited for still counts as a member of the group.
    fn reap(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.try_wait();
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        terminate(self.pgid);
        let (pgid, child) = (self.pgid, self.child.take());
        pending(pgid, true);
        let escalation = std::thread::Builder::new()
            .name(format!("attest-stop-{pgid}"))
            .spawn(move || {
                escalate(pgid, child);
                pending(pgid, false);
            });
        if escalation.is_err() {
            // No thread to wait the grace period: better killed early than left running.
            signal(pgid, libc::SIGKILL);
            pending(pgid, false);
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

/// Whether any process of the group is still running. EPERM means a member exists but
/// changed user (a setuid program): still alive.
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

/// Looks through /proc (Linux) for a member of the group that is not a zombie; None where
/// there is no /proc.
fn has_running_member(pgid: libc::pid_t) -> Option<bool> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let running = entries.flatten().any(|entry| {
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        is_pid
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
