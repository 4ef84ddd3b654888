//! A throwaway git checkout shaped like the homelab repository of the stories: Helm values
//! committed, credentials in a gitignored `secrets/` folder.

use std::path::Path;
use std::process::Command;

use attest_core::watchdog::Watchdog;
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
    /// Removes the checkout (it holds a secrets file) if this process dies without removing
    /// it; stood down when dropped, when `dir` removes it.
    _watchdog: Option<Watchdog>,
}

/// Removes `dir` once this process is gone, even by SIGKILL ([`Watchdog`]).
fn watchdog(dir: &Path) -> Option<Watchdog> {
    Watchdog::start(r#"read -r line; rm -rf "$0""#, |shell| {
        shell.arg(dir);
    })
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
        _watchdog: watchdog,
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
