//! A throwaway git checkout shaped like the homelab repository of the stories: Helm values
//! committed, credentials in a gitignored `secrets/` folder.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

/// The Paperless values file the stories edit, bundled so the sandbox needs no repository.
const PAPERLESS_VALUES: &str = include_str!("../../../fixtures/paperless/values-homelab.yaml");
/// The connectivity runbook Story 5.5 asks for.
const CONNECTIVITY_RUNBOOK: &str =
    include_str!("../../../fixtures/runbooks/postgres-connectivity.md");

pub struct Workspace {
    pub dir: TempDir,
    /// The generated database password written to the secrets file.
    pub db_password: String,
    /// Removes the checkout (it holds a secrets file) if this process dies without doing so.
    watchdog: Option<std::process::Child>,
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            if let Some(mut stdin) = watchdog.stdin.take() {
                use std::io::Write;
                let _ = writeln!(stdin, "stopped");
            }
            let _ = watchdog.wait();
        }
    }
}

/// A shell that waits for one line from us: `stopped` means we cleaned up; end-of-file means
/// we died (even by SIGKILL), so it removes `dir` itself.
fn watchdog(dir: &Path) -> Option<std::process::Child> {
    use std::os::unix::process::CommandExt;
    std::process::Command::new("sh")
        .args([
            "-c",
            r#"read -r line; [ "$line" = stopped ] || rm -rf "$0""#,
        ])
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .ok()
}

pub fn create(db_password: String) -> Result<Workspace, String> {
    let dir = tempfile::Builder::new()
        .prefix("attest-sandbox-repo-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary folder: {e}"))?;
    let root = dir.path();
    write(
        root,
        "applications/paperless/values-homelab.yaml",
        PAPERLESS_VALUES,
    )?;
    write(
        root,
        "docs/runbooks/postgres-connectivity.md",
        CONNECTIVITY_RUNBOOK,
    )?;
    write(root, ".gitignore", "secrets/\n")?;
    write(
        root,
        "secrets/paperless-secrets.yaml",
        &format!("env:\n  PAPERLESS_DBPASS: \"{db_password}\"\n"),
    )?;
    git(root, &["init", "-q"])?;
    git(root, &["add", ".gitignore", "applications", "docs"])?;
    git(
        root,
        &[
            "-c",
            "user.name=attest",
            "-c",
            "user.email=attest@localhost",
            "commit",
            "-q",
            "-m",
            "homelab",
        ],
    )?;
    let watchdog = watchdog(dir.path());
    Ok(Workspace {
        dir,
        db_password,
        watchdog,
    })
}

fn write(root: &Path, relative: &str, content: &str) -> Result<(), String> {
    let path = root.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(&path, content).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn git(root: &Path, args: &[&str]) -> Result<(), String> {
    let status = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .status()
        .map_err(|e| format!("cannot run git ({e}); install Debian's `git` package"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`git {}` failed in the sandbox workspace",
            args.join(" ")
        ))
    }
}
