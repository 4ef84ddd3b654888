//! Black-box test harness: runs the real `attest` binary in a temporary folder.
#![allow(dead_code)]

pub mod testbed;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

pub struct Attest {
    pub dir: TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// A command attest runs under (`unshare …`), given attest's path and arguments last.
    wrapper: Vec<String>,
    /// Environment variables removed (e.g. `KUBECONFIG`).
    removed: Vec<String>,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub dir: PathBuf,
    _keep: Option<TempDir>,
}

impl Attest {
    pub fn new() -> Attest {
        Attest {
            dir: tempfile::tempdir().expect("temp dir"),
            args: Vec::new(),
            env: Vec::new(),
            wrapper: Vec::new(),
            removed: Vec::new(),
        }
    }

    /// Runs attest as the last arguments of `command` (which must exec them).
    pub fn wrapped(mut self, command: &[&str]) -> Attest {
        self.wrapper = command.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Runs without the environment variable `name`.
    pub fn env_remove(mut self, name: &str) -> Attest {
        self.removed.push(name.into());
        self
    }

    /// Writes a file into the test folder (relative path).
    pub fn file(self, name: &str, content: &str) -> Attest {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        self
    }

    /// Writes `suites/<name>.yaml`.
    pub fn suite(self, name: &str, yaml: &str) -> Attest {
        self.file(&format!("suites/{name}.yaml"), yaml)
    }

    pub fn args(mut self, args: &[&str]) -> Attest {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Attest {
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self) -> Command {
        let attest = env!("CARGO_BIN_EXE_attest");
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(attest);
                command
            }
            None => Command::new(attest),
        };
        for name in &self.removed {
            command.env_remove(name);
        }
        command
            .args(&self.args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
    }

    /// Starts attest without waiting, e.g. to interrupt it.
    pub fn spawn(self) -> Running {
        let child = self
            .command()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start attest");
        Running {
            child,
            dir: self.dir,
        }
    }

    pub fn run(self) -> Output {
        let output = self.command().output().expect("run attest");
        Output::new(output, self.dir)
    }

    /// Runs with a stdout whose reader is already gone (`attest run … | head -0`): every write
    /// to it fails with EPIPE.
    pub fn run_with_closed_stdout(self) -> Output {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let output = self.command().stdout(writer).output().expect("run attest");
        Output::new(output, self.dir)
    }

    /// Runs on a blocking thread, so in-process servers of an async test keep serving.
    pub async fn run_async(self) -> Output {
        tokio::task::spawn_blocking(move || self.run())
            .await
            .unwrap()
    }
}

pub struct Running {
    child: std::process::Child,
    dir: TempDir,
}

impl Running {
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The folder attest runs in.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn wait(self) -> Output {
        let output = self.child.wait_with_output().expect("wait for attest");
        Output::new(output, self.dir)
    }
}

impl Output {
    /// The output of a command run outside the builder (a second attest in the same folder).
    pub fn of(output: std::process::Output, dir: &Path) -> Output {
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            dir: dir.to_owned(),
            _keep: None,
        }
    }

    fn new(output: std::process::Output, dir: TempDir) -> Output {
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            dir: dir.path().to_owned(),
            _keep: Some(dir),
        }
    }

    pub fn assert_code(&self, code: i32) -> &Output {
        assert_eq!(
            self.code, code,
            "exit code {} (expected {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    pub fn report(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("reports").join(name))
            .unwrap_or_else(|e| panic!("report {name} missing: {e}\nstderr: {}", self.stderr))
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.report("report.json")).expect("report.json is JSON")
    }

    /// The report.json entry of one check.
    pub fn result(&self, check: &str) -> Value {
        let json = self.json();
        json["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["check"] == check)
            .cloned()
            .unwrap_or_else(|| panic!("no result for `{check}` in {json:#}"))
    }

    /// Asserts a check's status and that its message contains `needle`.
    /// Asserts that each of `checks` passed, showing its result when one did not.
    pub fn assert_passed(&self, checks: &[&str]) {
        for check in checks {
            let result = self.result(check);
            assert_eq!(result["status"], "passed", "{result:#}");
        }
    }

    pub fn expect(&self, check: &str, status: &str, needle: &str) -> Value {
        self.expect_in(check, status, "message", needle)
    }

    /// Asserts a check's status and that one field of its result (`message`, `expected`,
    /// `found`, `hint`, `target`) contains `needle`: per field, so a needle cannot match in the
    /// wrong place.
    pub fn expect_in(&self, check: &str, status: &str, field: &str, needle: &str) -> Value {
        let result = self.result(check);
        assert_eq!(result["status"], status, "status of `{check}`: {result:#}");
        let text = result[field].as_str().unwrap_or_default();
        assert!(
            text.contains(needle),
            "`{check}`: `{needle}` not in its {field} `{text}`: {result:#}"
        );
        result
    }

    pub fn all_output(&self) -> String {
        let mut text = format!("{}\n{}", self.stdout, self.stderr);
        for name in ["junit.xml", "report.md", "report.json"] {
            if let Ok(report) = std::fs::read_to_string(self.dir.join("reports").join(name)) {
                text.push_str(&report);
            }
        }
        text
    }
}

/// Sends signal `name` (`INT`, `TERM`, `STOP`, …) to `pid`; whether `kill` succeeded.
pub fn signal(pid: u32, name: &str) -> bool {
    std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// A one-check suite around a kind body (indented YAML under the kind key).
pub fn one_check(kind: &str, body: &str) -> String {
    let body: String = body.lines().map(|l| format!("      {l}\n")).collect();
    format!(
        "id: t\ntitle: test suite\nchecks:\n  - id: c\n    title: the check\n    timeout: 10s\n    {kind}:\n{body}"
    )
}

/// A throwaway PostgreSQL 15 on a free loopback port (scram-sha-256; TLS when asked).
pub async fn postgres(
    password: &str,
    tls: bool,
    max_connections: Option<u32>,
) -> attest_sandbox::postgres::TempPostgres {
    attest_sandbox::postgres::TempPostgres::start(attest_sandbox::postgres::PostgresOptions {
        superuser_password: password.into(),
        tls,
        max_connections,
    })
    .await
    .expect("start PostgreSQL (Debian package `postgresql`)")
}

/// Fails unless `junit` validates against the repository's copy of the Jenkins JUnit schema
/// (tests/data/jenkins-junit-10.xsd), with xmllint (Debian's libxml2-utils).
pub fn assert_valid_junit(junit: &Path) {
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/jenkins-junit-10.xsd");
    assert!(xsd.exists(), "schema missing at {}", xsd.display());
    let lint = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(junit)
        .output()
        .expect("xmllint not found: install Debian's libxml2-utils");
    assert!(
        lint.status.success(),
        "{} does not validate:\n{}\n{}",
        junit.display(),
        String::from_utf8_lossy(&lint.stderr),
        std::fs::read_to_string(junit).unwrap_or_default()
    );
}
