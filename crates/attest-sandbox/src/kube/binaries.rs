//! Where the testbed's binaries are: `ATTEST_KUBE_BIN`, else the cache folder that
//! `scripts/kube-build` fills; and building them with that script when Go is present.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Every binary the testbed runs; `scripts/kube-build` builds exactly these.
pub const BINARIES: [&str; 7] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "etcd",
    "kwok",
    "kwokctl",
];

/// Whether the binaries are there, and if not, why and what would build them.
#[derive(Debug, Clone)]
pub enum Binaries {
    /// A folder holding all of [`BINARIES`].
    Ready(PathBuf),
    /// Not built (or `ATTEST_KUBE_BIN` is incomplete). `go` says whether `scripts/kube-build`
    /// can build them here.
    Missing { reason: String, go: bool },
}

/// The workspace root (this crate is `crates/attest-sandbox`), where `scripts/` and
/// `fixtures/` live.
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The command that builds the binaries, as a user would type it.
pub fn build_command() -> String {
    workspace_root()
        .join("scripts/kube-build")
        .display()
        .to_string()
}

/// Looks in `ATTEST_KUBE_BIN` when set (and only there), else asks
/// `scripts/kube-build --print-dir` for the cache folder of the pinned versions.
pub fn locate() -> Binaries {
    locate_from(std::env::var_os("ATTEST_KUBE_BIN"))
}

/// [`locate`] with the value of `ATTEST_KUBE_BIN` given.
pub fn locate_from(env: Option<std::ffi::OsString>) -> Binaries {
    if let Some(dir) = env.filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return match missing_in(&dir) {
            None => Binaries::Ready(dir),
            Some(name) => Binaries::Missing {
                reason: format!(
                    "ATTEST_KUBE_BIN={} has no executable `{name}`",
                    dir.display()
                ),
                go: go_present(),
            },
        };
    }
    let script = workspace_root().join("scripts/kube-build");
    let output = Command::new("bash")
        .arg(&script)
        .arg("--print-dir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    match output {
        Ok(out) => {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            match (out.status.success(), missing_in(&dir)) {
                (true, None) => Binaries::Ready(dir),
                _ => Binaries::Missing {
                    reason: format!(
                        "the Kubernetes binaries are not built yet ({})",
                        dir.display()
                    ),
                    go: go_present(),
                },
            }
        }
        Err(e) => Binaries::Missing {
            reason: format!("cannot run {}: {e}", script.display()),
            go: go_present(),
        },
    }
}

/// The folder of binaries, or an error that says how to get them.
pub fn bin_dir() -> Result<PathBuf, String> {
    explain(locate())
}

/// The folder of binaries, or an error saying why there is none and how to build them.
pub fn explain(binaries: Binaries) -> Result<PathBuf, String> {
    match binaries {
        Binaries::Ready(dir) => Ok(dir),
        Binaries::Missing { reason, go } => {
            let how = match go {
                true => format!(
                    "build them with `{}` (about 9 minutes, once)",
                    build_command()
                ),
                false => format!(
                    "install Go >= 1.26 (https://go.dev/dl), then run `{}`",
                    build_command()
                ),
            };
            Err(format!(
                "{reason}; {how}, or set ATTEST_KUBE_BIN to a folder holding {}",
                BINARIES.join(", ")
            ))
        }
    }
}

/// How many of the build's last output lines a failure quotes.
const FAILURE_TAIL: usize = 4;

/// Runs `scripts/kube-build`, passing its progress to our stderr line by line; returns the bin
/// folder. A failure names the exit status and quotes the build's last lines (the real cause,
/// such as an unreachable module proxy, is there). When `stop` completes first, the build's
/// whole process group (bash, go and its compilers) is terminated.
pub async fn build(stop: impl std::future::Future<Output = ()>) -> Result<PathBuf, String> {
    use tokio::io::AsyncBufReadExt;
    let script = workspace_root().join("scripts/kube-build");
    let mut child = tokio::process::Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so stopping it reaches `go build` and the compilers it started.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let pgid = child.id();
    let mut stdout = child.stdout.take().expect("piped");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("piped")).lines();
    let mut tail = std::collections::VecDeque::with_capacity(FAILURE_TAIL);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    eprintln!("{line}");
                    if !line.trim().is_empty() && !line.starts_with("kube-build: [") {
                        if tail.len() == FAILURE_TAIL {
                            tail.pop_front();
                        }
                        tail.push_back(line);
                    }
                }
                Ok(None) | Err(_) => break,
            },
            _ = &mut stop => {
                if let Some(pgid) = pgid {
                    let _ = std::process::Command::new("kill")
                        .args(["-TERM", "--", &format!("-{pgid}")])
                        .status();
                }
                let _ = child.wait().await;
                return Err("the build was stopped".to_owned());
            }
        }
    }
    let mut out = String::new();
    let _ = tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut out).await;
    let status = child
        .wait()
        .await
        .map_err(|e| format!("cannot wait for {}: {e}", script.display()))?;
    if !status.success() {
        let last: Vec<String> = tail.into_iter().collect();
        return Err(format!(
            "{} failed ({status}); its last lines: {}",
            script.display(),
            last.join(" | ")
        ));
    }
    let dir = PathBuf::from(out.trim());
    match missing_in(&dir) {
        None => Ok(dir),
        Some(name) => Err(format!(
            "{} did not produce `{name}` in {}",
            script.display(),
            dir.display()
        )),
    }
}

/// Whether `go` runs here.
pub fn go_present() -> bool {
    Command::new("go")
        .arg("version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The first of [`BINARIES`] that `dir` lacks (or cannot execute).
pub fn missing_in(dir: &Path) -> Option<&'static str> {
    use std::os::unix::fs::PermissionsExt;
    BINARIES.into_iter().find(|name| {
        let meta = std::fs::metadata(dir.join(name));
        !meta.is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}
