//! Nothing outlives a testbed: deleting clusters (one, or all of this process's from a signal
//! handler) and killing whatever process survived, found by its command line.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::kwok::{kwokctl, Live, LIVE};
use super::nodes;
use super::util::tail;

/// Deletes every testbed this process started (for a SIGINT/SIGTERM handler that is about to
/// exit without running destructors).
pub fn stop_all() {
    let live: Vec<Live> = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|p| p.into_inner()));
    for testbed in live {
        if let Err(e) = nodes::stop(&testbed.dir).and(delete(&testbed)) {
            eprintln!("attest: {e}");
        }
        let _ = fs::remove_dir_all(&testbed.dir);
    }
}

/// Processes whose command line mentions `dir` (the components run from symlinks in the
/// testbed's folder): none may survive a stop.
pub fn processes_in(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) && pid != std::process::id() {
            found.push(format!("{pid} {}", cmdline.trim()));
        }
    }
    found
}

/// `kwokctl delete cluster`, then a kill of anything that survived it, waiting until gone.
pub(super) fn delete(live: &Live) -> Result<(), String> {
    let output = kwokctl(live).args(["delete", "cluster"]).output();
    let mut problem = match output {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "`kwokctl delete cluster` failed: {}",
            tail(&String::from_utf8_lossy(&out.stderr), 3)
        )),
        Err(e) => Some(format!("cannot run kwokctl: {e}")),
    };
    let clock = Instant::now();
    loop {
        let left = processes_in(&live.dir);
        if left.is_empty() {
            break;
        }
        if clock.elapsed() > Duration::from_secs(10) {
            problem = Some(format!(
                "processes survived the testbed: {}",
                left.join("; ")
            ));
            break;
        }
        for process in &left {
            let pid = process.split(' ').next().unwrap_or_default();
            let _ = Command::new("kill")
                .args(["-KILL", pid])
                .stderr(Stdio::null())
                .status();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    match problem {
        None => Ok(()),
        Some(p) => Err(p),
    }
}
