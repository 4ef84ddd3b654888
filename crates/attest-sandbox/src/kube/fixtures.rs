//! The stories' cluster on the testbed: its folders, the pods' stand-ins and log files, the
//! kwokctl configuration, then the manifests, the operators' statuses and the backup Job.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::postgres::secrets;
use super::testbed::SERVICE_CIDR;
use super::util::{free_ports, set_mode, write_private};
use super::{nodes, render, KubeOptions, KubeTestbed};

/// The user `kubectl exec` runs as when the testbed runs as root (`nobody`'s usual uid).
const NOBODY: u32 = 65534;

impl KubeTestbed {
    /// Temporary folders, pods' stand-ins, log files and the kwokctl config.
    pub(super) fn prepare(&self, options: &KubeOptions, now: DateTime<Utc>) -> Result<(), String> {
        let io = |p: &Path, e: std::io::Error| format!("cannot prepare {}: {e}", p.display());
        // Others may traverse (for the pods' folders) but not list the testbed folder.
        set_mode(&self.path, 0o711)?;
        for (sub, mode) in [
            ("work", 0o700),
            ("home", 0o700),
            ("kubectl-cache", 0o700),
            ("manifests", 0o700),
            ("pods", 0o755),
            ("logs", 0o755),
        ] {
            let dir = self.path.join(sub);
            fs::create_dir(&dir).map_err(|e| io(&dir, e))?;
            set_mode(&dir, mode)?;
        }
        let fixtures = &options.fixtures;
        let read = |name: &str| {
            let path = fixtures.join(name);
            fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        let pods = self.path.join("pods");
        render::pod_tree(&read("pods.txt")?, &pods)?;
        let run_as = (fs::metadata(&self.path)
            .map_err(|e| io(&self.path, e))?
            .uid()
            == 0)
            .then(nobody);
        if let Some((uid, gid)) = run_as {
            for namespace in fs::read_dir(&pods).map_err(|e| io(&pods, e))?.flatten() {
                chown_tree(&namespace.path(), uid, gid)?;
            }
        }
        let logs = fixtures.join("logs");
        for entry in fs::read_dir(&logs).map_err(|e| io(&logs, e))?.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(stem) = file.strip_suffix(".log") {
                let text = read(&format!("logs/{file}"))?;
                let log = render::cri_log(&text, now).map_err(|e| format!("logs/{file}: {e}"))?;
                let path = self.path.join("logs").join(format!("{stem}.log"));
                fs::write(&path, log).map_err(|e| io(&path, e))?;
            }
        }
        let pg = &options.postgres;
        let mut exec_path = String::new();
        if let Some(dir) = &pg.bin_dir {
            exec_path = format!("{}:", dir.display());
        }
        exec_path.push_str("/usr/local/bin:/usr/bin:/bin");
        let security_context = match run_as {
            Some((uid, gid)) => format!("securityContext: {{runAsUser: {uid}, runAsGroup: {gid}}}"),
            None => String::new(),
        };
        let names = [
            "apiserver",
            "etcd",
            "etcd_peer",
            "kwok",
            "controller_manager",
            "scheduler",
        ];
        let port_names: Vec<String> = names.iter().map(|n| format!("port_{n}")).collect();
        let ports = free_ports(names.len())?;
        // With real nodes (only ever in a network namespace of the testbed's own, checked by
        // `nodes::preflight` before this), pods reach the apiserver through the `kubernetes`
        // Service: it listens on that namespace's addresses, advertises node 1's, and keeps the
        // Service's endpoints; its certificate names that address and the Service's ClusterIP.
        let (service_cidr, bind, advertise, reconciler, sans) = match options.real_nodes {
            None => (
                SERVICE_CIDR,
                "127.0.0.1",
                "127.0.0.1",
                "none",
                String::new(),
            ),
            Some(_) => (
                nodes::SERVICE_CIDR,
                "0.0.0.0",
                nodes::API_ADDRESS,
                "lease",
                format!(", {}, {}", nodes::API_ADDRESS, nodes::API_SERVICE_IP),
            ),
        };
        let mut values = HashMap::from([
            ("service_cidr", service_cidr.to_owned()),
            ("apiserver_bind", bind.to_owned()),
            ("apiserver_advertise", advertise.to_owned()),
            ("endpoint_reconciler", reconciler.to_owned()),
            ("apiserver_sans", format!("[127.0.0.1, localhost{sans}]")),
            ("pod_cidr", options.pod_cidr.clone()),
            ("pki", self.pki().display().to_string()),
            ("pg_host", pg.host.clone()),
            ("pg_port", pg.port.to_string()),
            ("pg_password", yaml_escape(&pg.superuser_password)),
            ("paperless_password", yaml_escape(&pg.paperless_password)),
            ("pods", pods.display().to_string()),
            ("logs", self.path.join("logs").display().to_string()),
            ("security_context", security_context),
            ("exec_path", exec_path),
            // Nothing listens on port 1: without a Paperless stand-in, forwards are refused.
            (
                "paperless_http_port",
                options.paperless_http_port.unwrap_or(1).to_string(),
            ),
        ]);
        for (name, port) in port_names.iter().zip(ports) {
            values.insert(name.as_str(), port.to_string());
        }
        let config = render::fill(&read("kwok.yaml")?, &values, now)
            .map_err(|e| format!("fixtures/kubernetes/kwok.yaml: {e}"))?;
        write_private(&self.path.join("kwok.yaml"), &config)
    }

    pub(super) fn apply_fixtures(
        &self,
        options: &KubeOptions,
        now: DateTime<Utc>,
        deadline: Instant,
    ) -> Result<(), String> {
        let fixtures = &options.fixtures;
        let crds = fixtures.join("crds").display().to_string();
        self.kubectl_output(&["apply", "--server-side", "-f", &crds])?;
        // Not `kubectl wait`: it fails on a CRD whose status is still empty.
        loop {
            let list: Value =
                serde_json::from_str(&self.kubectl_output(&["get", "crd", "-o", "json"])?)
                    .map_err(|e| format!("kubectl printed JSON we cannot read: {e}"))?;
            let items = list["items"].as_array().cloned().unwrap_or_default();
            let pending: Vec<String> = items
                .iter()
                .filter(|crd| {
                    let conditions = crd["status"]["conditions"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    !conditions
                        .iter()
                        .any(|c| c["type"] == "Established" && c["status"] == "True")
                })
                .map(|crd| crd["metadata"]["name"].as_str().unwrap_or("?").to_owned())
                .collect();
            if pending.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "CRDs not Established in time: {}",
                    pending.join(", ")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }

        // The manifests, filled in, plus the Secrets with the real passwords (never committed).
        let manifests = self.path.join("manifests");
        let mut names: Vec<String> = fs::read_dir(fixtures)
            .map_err(|e| format!("cannot list {}: {e}", fixtures.display()))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml") && n != "kwok.yaml")
            .collect();
        names.sort();
        for name in &names {
            let text = fs::read_to_string(fixtures.join(name))
                .map_err(|e| format!("cannot read {name}: {e}"))?;
            let text = render::fill(&text, &HashMap::new(), now)
                .map_err(|e| format!("fixtures/kubernetes/{name}: {e}"))?;
            write_private(&manifests.join(name), &text)?;
        }
        write_private(
            &manifests.join("05-secrets.yaml"),
            &secrets(&options.postgres),
        )?;
        if options.real_nodes.is_some() {
            self.postgres_on_real_nodes(&manifests)?;
        }
        let dir = manifests.display().to_string();
        self.kubectl_output(&["apply", "--server-side", "-f", &dir])?;

        // What the operators would write, through the status subresource; the file name is
        // the field manager (cloudnative-pg, external-secrets).
        let status = fixtures.join("status");
        let mut files: Vec<PathBuf> = fs::read_dir(&status)
            .map_err(|e| format!("cannot list {}: {e}", status.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        for file in files {
            let stem = file
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let text = fs::read_to_string(&file).map_err(|e| format!("cannot read {stem}: {e}"))?;
            let text = render::fill(&text, &HashMap::new(), now)
                .map_err(|e| format!("fixtures/kubernetes/status/{stem}.yaml: {e}"))?;
            let target = manifests.join(format!("status-{stem}.yaml"));
            write_private(&target, &text)?;
            let manager = format!("--field-manager={stem}");
            let target = target.display().to_string();
            let args = [
                "apply",
                "--server-side",
                "--subresource=status",
                &manager,
                "-f",
                &target,
            ];
            self.kubectl_output(&args)?;
        }

        // The restic backup's last run: a real Job from the CronJob, named as the CronJob
        // controller names its Jobs; kwok completes its pod, the Job controller the Job.
        let job = format!("paperless-ngx-backup-{}", now.timestamp() / 60);
        let from = "--from=cronjob/paperless-ngx-backup";
        self.kubectl_output(&["create", "job", from, &job, "-n", "paperless-ngx"])?;
        Ok(())
    }
}

/// Escapes text for a double-quoted YAML scalar.
pub(super) fn yaml_escape(text: &str) -> String {
    text.replace('\\', r"\\").replace('"', "\\\"")
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), String> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .map_err(|e| format!("cannot give {} to uid {uid}: {e}", path.display()))?;
    if path.is_dir() && !path.is_symlink() {
        let entries =
            fs::read_dir(path).map_err(|e| format!("cannot list {}: {e}", path.display()))?;
        for entry in entries.flatten() {
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// uid and gid of `nobody` from /etc/passwd (65534 when absent).
fn nobody() -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == "nobody")
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .unwrap_or((NOBODY, NOBODY))
}
