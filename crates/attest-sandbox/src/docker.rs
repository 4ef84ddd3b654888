//! A private Docker engine for building images (deploy/Dockerfile) in tests: Debian's
//! `dockerd` in a network namespace and a mount namespace of its own (`unshare --net --mount`),
//! with no bridge, no iptables or ip6tables rules and no masquerading, its data, exec root,
//! socket and client configuration in a folder of ours. Nothing touches the host's interfaces,
//! routes, firewall or mount table: the namespaces hold loopback and whatever the engine
//! mounts, and vanish with its processes. Builds run with `--network none`. Stopped (dockerd,
//! then the containerd it started, each by PID) and removed on every path, drop included.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What went wrong with the engine.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed: {output}")]
    Failed { command: String, output: String },
    #[error("dockerd did not answer within {} s; its log ends:\n{log}", .waited.as_secs())]
    NotReady { waited: Duration, log: String },
    #[error("cannot prepare {}: {source}", .path.display())]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A running dockerd of ours.
pub struct DockerEngine {
    dir: PathBuf,
    child: Option<Child>,
}

/// Why no engine can run here (the first missing piece), or None.
pub fn unavailable() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if !fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        return Some("dockerd needs root".to_owned());
    }
    for tool in ["dockerd", "docker", "unshare", "ip"] {
        if crate::kube::nodes::which(tool).is_none() {
            return Some(format!(
                "`{tool}` is not on PATH; install Debian's docker.io, util-linux and iproute2"
            ));
        }
    }
    None
}

impl DockerEngine {
    /// Starts dockerd with everything under `dir` (created; removed again on stop) and waits
    /// until it answers.
    pub fn start(dir: &Path) -> Result<DockerEngine, DockerError> {
        fs::create_dir_all(dir.join("config")).map_err(|source| DockerError::Folder {
            path: dir.to_path_buf(),
            source,
        })?;
        let log =
            fs::File::create(dir.join("dockerd.log")).map_err(|source| DockerError::Folder {
                path: dir.to_path_buf(),
                source,
            })?;
        let err = log.try_clone().map_err(|source| DockerError::Folder {
            path: dir.to_path_buf(),
            source,
        })?;
        // `exec`: the child's PID is dockerd's, so stopping it is one signal to one process.
        let child = Command::new("unshare")
            .args(["--net", "--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(r#"ip link set lo up && exec dockerd --data-root "$1/data" --exec-root "$1/exec" --pidfile "$1/dockerd.pid" -H "unix://$1/docker.sock" --bridge=none --iptables=false --ip6tables=false --ip-masq=false"#)
            .arg("sh")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|source| DockerError::Spawn {
                command: "unshare … dockerd".to_owned(),
                source,
            })?;
        let mut engine = DockerEngine {
            dir: dir.to_path_buf(),
            child: Some(child),
        };
        let waited = Duration::from_secs(60);
        let clock = Instant::now();
        loop {
            if engine
                .docker(&["version", "--format", "{{.Server.Version}}"])
                .is_ok()
            {
                return Ok(engine);
            }
            let exited = engine
                .child
                .as_mut()
                .is_none_or(|c| c.try_wait().ok().flatten().is_some());
            if exited || clock.elapsed() > waited {
                let log = fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                engine.stop();
                return Err(DockerError::NotReady {
                    waited,
                    log: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The docker client, talking to this engine only (its own socket and configuration; the
    /// classic builder, which needs no buildx plugin).
    pub fn command(&self) -> Command {
        let mut command = Command::new("docker");
        command
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.dir.join("docker.sock").display()),
            )
            .env("DOCKER_CONFIG", self.dir.join("config"))
            .env("DOCKER_BUILDKIT", "0")
            .stdin(Stdio::null());
        command
    }

    /// Runs `docker ARGS`; its stdout.
    pub fn docker(&self, args: &[&str]) -> Result<String, DockerError> {
        let command = format!("docker {}", args.join(" "));
        let out = self
            .command()
            .args(args)
            .output()
            .map_err(|source| DockerError::Spawn {
                command: command.clone(),
                source,
            })?;
        if !out.status.success() {
            let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
            output.push_str(&String::from_utf8_lossy(&out.stderr));
            let lines: Vec<&str> = output.trim().lines().rev().take(30).collect();
            return Err(DockerError::Failed {
                command,
                output: lines.into_iter().rev().collect::<Vec<_>>().join("\n"),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Stops dockerd (SIGTERM, then SIGKILL after 20 s), then the containerd it started if it
    /// outlived it, each by PID; removes the folder. Idempotent.
    pub fn stop(&mut self) {
        let containerd = self.dir.join("exec/containerd/containerd.pid");
        let containerd = fs::read_to_string(containerd)
            .ok()
            .and_then(|pid| pid.trim().parse::<i32>().ok());
        if let Some(mut child) = self.child.take() {
            let pid = child.id() as i32;
            signal(pid, SIGTERM);
            let clock = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if clock.elapsed() > Duration::from_secs(20) {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if let Some(pid) = containerd {
            // Only if that PID is still a containerd of ours (PIDs are reused).
            let ours = fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                c.contains("containerd") && c.contains(&*self.dir.to_string_lossy())
            });
            if ours {
                signal(pid, SIGKILL);
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

const SIGTERM: i32 = 15;
const SIGKILL: i32 = 9;

/// `kill -SIG PID`, through the `kill` utility (this crate links no libc bindings).
fn signal(pid: i32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Drop for DockerEngine {
    fn drop(&mut self) {
        self.stop();
    }
}
