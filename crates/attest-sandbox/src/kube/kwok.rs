//! kwokctl, run with a clean environment: creating the cluster, the list of this process's
//! clusters, and the watchdog that deletes them if the process dies.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

use attest_core::watchdog::Watchdog;

use super::util::{remaining, tail};
use super::KubeTestbed;

/// Cluster names of this process, so a signal handler can delete them all ([`stop_all`]).
pub(super) static LIVE: Mutex<Vec<Live>> = Mutex::new(Vec::new());

#[derive(Clone)]
pub(super) struct Live {
    pub(super) name: String,
    pub(super) dir: PathBuf,
    pub(super) bin_dir: PathBuf,
}

impl KubeTestbed {
    /// kwokctl with a clean environment: HOME and KWOK_WORKDIR inside the testbed, so no
    /// ~/.kwok/kwok.yaml is read and no ~/.kube/config written; our binaries first on PATH
    /// (kwokctl looks kubectl up there).
    pub(super) fn create_cluster(&self, deadline: Instant) -> Result<(), String> {
        let live = self.live();
        let bin = |name: &str| self.bin_dir.join(name).display().to_string();
        let wait = format!("{}s", remaining(deadline).as_secs().max(10));
        let mut command = kwokctl(&live);
        command
            .args(["create", "cluster", "--runtime", "binary", "--config"])
            .arg(self.path.join("kwok.yaml"))
            .args(["--kube-apiserver-binary", &bin("kube-apiserver")])
            .args([
                "--kube-controller-manager-binary",
                &bin("kube-controller-manager"),
            ])
            .args(["--kube-scheduler-binary", &bin("kube-scheduler")])
            .args(["--kwok-controller-binary", &bin("kwok")])
            .args(["--etcd-binary", &bin("etcd")])
            .args(["--wait", &wait]);
        let output = command
            .output()
            .map_err(|e| format!("cannot run kwokctl: {e}"))?;
        if output.status.success() && self.kubeconfig.is_file() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!(
            "`kwokctl create cluster` failed ({}):\n{}{}",
            output.status,
            tail(&stderr, 10),
            self.component_logs()
        ))
    }
}

/// A shell ([`Watchdog`]) that deletes the real nodes, the cluster and its folder if this
/// process dies before [`KubeTestbed::stop`] (SIGKILL, a test harness's timeout, a panic that
/// aborts), so no container, etcd or apiserver outlives us.
pub(super) fn watchdog(live: &Live) -> Result<Watchdog, String> {
    let script = r#"read -r line
[ -f "$2/nodes/cleanup" ] && sh "$2/nodes/cleanup" >/dev/null 2>&1
"$0" --name "$1" delete cluster >/dev/null 2>&1; rm -rf "$2""#;
    Watchdog::start(script, |shell| {
        kwokctl_env(live, shell)
            .arg(live.bin_dir.join("kwokctl"))
            .arg(&live.name)
            .arg(&live.dir);
    })
    .map_err(|e| format!("cannot start the testbed's watchdog shell: {e}"))
}

pub(super) fn kwokctl(live: &Live) -> Command {
    let mut command = Command::new(live.bin_dir.join("kwokctl"));
    kwokctl_env(live, &mut command)
        .arg("--name")
        .arg(&live.name)
        .stdin(Stdio::null());
    command
}

/// A clean environment: HOME and KWOK_WORKDIR inside the testbed, our binaries first on PATH.
pub(super) fn kwokctl_env<'c>(live: &Live, command: &'c mut Command) -> &'c mut Command {
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", live.bin_dir.display());
    command
        .env_clear()
        .env("PATH", path)
        .env("HOME", live.dir.join("home"))
        .env("KWOK_WORKDIR", live.dir.join("work"))
}
