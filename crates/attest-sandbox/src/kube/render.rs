//! Turns the fixtures of `fixtures/kubernetes/` into what one testbed start needs: manifests
//! and kwokctl config with `${...}` filled in, CRI log files, the pods' stand-in folders.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use chrono::{DateTime, Duration as Span, SecondsFormat, Utc};
use regex::{Captures, Regex};

/// Fills `${name}` from `values` and the time placeholders `${now}`, `${now-2h}`,
/// `${now-2h+1m}` (RFC 3339 UTC), `${stamp:now-2h}` (YYYYMMDDhhmmss, CloudNativePG's backup
/// names) and `${backupid:now-2h}` (Barman's YYYYMMDDThhmmss), all relative to `now`.
/// Anything else in `${...}` is an error naming it, so a typo never reaches the cluster.
pub fn fill(
    text: &str,
    values: &HashMap<&str, String>,
    now: DateTime<Utc>,
) -> Result<String, String> {
    let pattern = Regex::new(r"\$\{([^}]*)\}").expect("valid regex");
    let mut unknown = Vec::new();
    let filled = pattern.replace_all(text, |caps: &Captures| {
        let inner = &caps[1];
        let at = |spec: &str| offset(spec).map(|span| now + span);
        let value = if let Some(spec) = inner.strip_prefix("stamp:") {
            at(spec).map(|t| t.format("%Y%m%d%H%M%S").to_string())
        } else if let Some(spec) = inner.strip_prefix("backupid:") {
            at(spec).map(|t| t.format("%Y%m%dT%H%M%S").to_string())
        } else if inner.starts_with("now") {
            at(inner).map(rfc3339)
        } else {
            values.get(inner).cloned()
        };
        value.unwrap_or_else(|| {
            unknown.push(caps[0].to_owned());
            String::new()
        })
    });
    match unknown.is_empty() {
        true => Ok(filled.into_owned()),
        false => Err(format!("unknown placeholders {}", unknown.join(", "))),
    }
}

/// `now`, `now-2h`, `now-2h+1m` → the offset from now.
fn offset(spec: &str) -> Option<Span> {
    let rest = spec.strip_prefix("now")?;
    let term = Regex::new(r"([+-])(\d+)([smhd])").expect("valid regex");
    let mut total = Span::zero();
    let mut consumed = 0;
    for caps in term.captures_iter(rest) {
        let n: i64 = caps[2].parse().ok()?;
        let unit = match &caps[3] {
            "s" => Span::seconds(n),
            "m" => Span::minutes(n),
            "h" => Span::hours(n),
            _ => Span::days(n),
        };
        total = if &caps[1] == "-" {
            total - unit
        } else {
            total + unit
        };
        consumed += caps[0].len();
    }
    (consumed == rest.len()).then_some(total)
}

pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A log template (see fixtures/kubernetes/logs/README.md) as CRI log records:
/// `<RFC 3339 nanoseconds> stdout F <text>` per line, ending `# ends: Nm ago` before `now`.
pub fn cri_log(template: &str, now: DateTime<Utc>) -> Result<String, String> {
    let mut lines = template.lines();
    let header = lines.next().unwrap_or_default();
    let minutes: i64 = header
        .strip_prefix("# ends: ")
        .and_then(|h| h.strip_suffix("m ago"))
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| format!("a log template starts with `# ends: Nm ago`, not `{header}`"))?;
    let records: Vec<&str> = lines.collect();
    let step = Span::milliseconds(40);
    let first = now - Span::minutes(minutes) - step * records.len() as i32;
    let stamp = Regex::new(r"\$\{time:([^}]*)\}").expect("valid regex");
    let mut out = String::new();
    for (i, text) in records.iter().enumerate() {
        let at = first + step * i as i32;
        let mut bad = None;
        let text = stamp.replace_all(text, |caps: &Captures| {
            let mut s = String::new();
            if write!(s, "{}", at.format(&caps[1])).is_err() {
                bad = Some(caps[1].to_owned());
            }
            s
        });
        if let Some(format) = bad {
            return Err(format!("bad time format `{format}` in a log template"));
        }
        let time = at.to_rfc3339_opts(SecondsFormat::Nanos, true);
        let _ = writeln!(out, "{time} stdout F {text}");
    }
    Ok(out)
}

/// Creates the pods' stand-in folders listed in `pods.txt` under `root`. PostgreSQL's PGDATA
/// (any path through `postgresql/data`) is private as initdb makes it: folders 0700, files
/// 0600; everything else 0755 and 0644.
pub fn pod_tree(listing: &str, root: &Path) -> Result<(), String> {
    let io = |path: &Path, e: std::io::Error| format!("cannot create {}: {e}", path.display());
    let size = Regex::new(r"^(.*\S)\s+\[(\d+)(B|KiB|MiB)\]$").expect("valid regex");
    for line in listing.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (rel, content, len) = if let Some(caps) = size.captures(line) {
            let n: u64 = caps[2]
                .parse()
                .map_err(|_| format!("bad size in `{line}`"))?;
            let unit = match &caps[3] {
                "B" => 1,
                "KiB" => 1024,
                _ => 1024 * 1024,
            };
            (caps[1].to_owned(), None, Some(n * unit))
        } else if let Some((path, text)) = line.split_once(": ") {
            (path.to_owned(), Some(text.to_owned()), None)
        } else {
            (line.to_owned(), None, None)
        };
        if rel.starts_with('/') || rel.split('/').any(|c| c == "..") {
            return Err(format!(
                "pods.txt: `{rel}` must stay inside the pods folder"
            ));
        }
        let path = root.join(&rel);
        let private = rel.contains("/postgresql/data");
        let folder = if rel.ends_with('/') {
            path.as_path()
        } else {
            path.parent().unwrap_or(root)
        };
        fs::create_dir_all(folder).map_err(|e| io(folder, e))?;
        if rel.ends_with('/') {
            continue;
        }
        match (content, len) {
            (Some(text), _) => fs::write(&path, format!("{text}\n")).map_err(|e| io(&path, e))?,
            (None, Some(n)) => fs::File::create(&path)
                .and_then(|f| f.set_len(n))
                .map_err(|e| io(&path, e))?,
            (None, None) => fs::write(&path, "").map_err(|e| io(&path, e))?,
        }
        let mode = if private { 0o600 } else { 0o644 };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(|e| io(&path, e))?;
    }
    // Modes of folders last, once everything inside exists.
    set_folder_modes(root)
}

fn set_folder_modes(dir: &Path) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            set_folder_modes(&path)?;
            let text = path.to_string_lossy();
            let private = text.contains("/postgresql/data");
            let mode = if private { 0o700 } else { 0o755 };
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// The claim of the stories' PostgreSQL StatefulSet (`data/postgres-postgresql`).
pub const POSTGRES_CLAIM: &str = "data-postgres-postgresql-0";

/// With real nodes: moves the stories' PostgreSQL onto them, in the JSON of its manifests
/// (`kubectl create --dry-run=client -o json`, one object or a List). The StatefulSet gets a
/// `type: real` node selector and a toleration of the real nodes' taint, and its readiness
/// probe runs every second (the chart's 5 s delay and 10 s period would add up to 15 s to
/// each start); the PersistentVolume reserved for its claim gets a host folder both real
/// nodes mount (`volume`) instead of its NFS source, which nothing here could mount (these
/// kernels have no NFS), saying so in an annotation. Returns how many objects it changed.
pub fn postgres_on_real_nodes(
    manifests: &mut serde_json::Value,
    taint: &str,
    volume: &Path,
) -> usize {
    use serde_json::json;
    let items: Vec<&mut serde_json::Value> = match manifests["kind"].as_str() {
        Some("List") => manifests["items"]
            .as_array_mut()
            .map(|items| items.iter_mut().collect())
            .unwrap_or_default(),
        _ => vec![manifests],
    };
    let mut changed = 0;
    for item in items {
        let name = item["metadata"]["name"].as_str().unwrap_or_default();
        let namespace = item["metadata"]["namespace"].as_str().unwrap_or_default();
        match item["kind"].as_str().unwrap_or_default() {
            "StatefulSet" if namespace == "data" && name == "postgres-postgresql" => {
                let spec = &mut item["spec"]["template"]["spec"];
                spec["nodeSelector"] = json!({"type": "real"});
                let toleration =
                    json!({"key": taint, "operator": "Exists", "effect": "NoSchedule"});
                match spec["tolerations"].as_array_mut() {
                    Some(list) => list.push(toleration),
                    None => spec["tolerations"] = json!([toleration]),
                }
                for container in spec["containers"].as_array_mut().into_iter().flatten() {
                    let probe = &mut container["readinessProbe"];
                    if probe.is_object() {
                        probe["initialDelaySeconds"] = json!(0);
                        probe["periodSeconds"] = json!(1);
                    }
                }
                item["metadata"]["annotations"]["attest.dev/testbed"] = json!(
                    "runs on the testbed's real nodes (nodeSelector type=real, toleration of attest.dev/real-node); readiness probed every 1s, not the chart's 10s"
                );
                changed += 1;
            }
            "PersistentVolume" if item["spec"]["claimRef"]["name"] == POSTGRES_CLAIM => {
                let spec = item["spec"].as_object_mut().expect("a PV has a spec");
                let nfs = spec.remove("nfs").unwrap_or_default();
                spec.insert(
                    "hostPath".into(),
                    json!({"path": volume.display().to_string(), "type": "Directory"}),
                );
                item["metadata"]["annotations"]["attest.dev/testbed"] = json!(format!(
                    "a host folder both real nodes mount, standing in for the NFS share {}:{} of the story: this kernel has no NFS client or server, so this volume is not NFS",
                    nfs["server"].as_str().unwrap_or("?"),
                    nfs["path"].as_str().unwrap_or("?")
                ));
                changed += 1;
            }
            _ => {}
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 7, 5, 0, 0).unwrap()
    }

    #[test]
    fn fills_names_and_times_and_rejects_unknown_placeholders() {
        let values = HashMap::from([("pg_port", "5433".to_owned())]);
        let text = "port: ${pg_port}\nat: ${now-2h}\nend: ${now-2h+1m}\nname: b-${stamp:now-2h}\nid: ${backupid:now-2h}\nnext: ${now+22h}";
        let out = fill(text, &values, now()).unwrap();
        assert_eq!(
            out,
            "port: 5433\nat: 2026-01-07T03:00:00Z\nend: 2026-01-07T03:01:00Z\nname: b-20260107030000\nid: 20260107T030000\nnext: 2026-01-08T03:00:00Z"
        );
        let err = fill("${nope} ${now-2x}", &values, now()).unwrap_err();
        assert!(
            err.contains("${nope}") && err.contains("${now-2x}"),
            "{err}"
        );
    }

    #[test]
    fn log_templates_become_cri_records_ending_before_now() {
        let log = cri_log("# ends: 20m ago\nfirst ${time:%H:%M}\nlast", now()).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            "2026-01-07T04:39:59.920000000Z stdout F first 04:39"
        );
        assert_eq!(lines[1], "2026-01-07T04:39:59.960000000Z stdout F last");
        assert!(cri_log("no header\nx", now()).is_err());
    }

    #[test]
    fn pod_tree_makes_private_pgdata_and_sparse_files() {
        let dir = tempfile::tempdir().unwrap();
        let listing = "# c\np/pg/postgresql/data/base/1/\np/pg/postgresql/data/PG_VERSION: 18\np/pg/postgresql/data/pg_wal/0001 [16MiB]\np/app/src/\n";
        pod_tree(listing, dir.path()).unwrap();
        let data = dir.path().join("p/pg/postgresql/data");
        assert_eq!(fs::read_to_string(data.join("PG_VERSION")).unwrap(), "18\n");
        assert_eq!(
            fs::metadata(data.join("pg_wal/0001")).unwrap().len(),
            16 << 20
        );
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&dir.path().join("p/app/src")), 0o755);
        assert!(pod_tree("../escape/", dir.path()).is_err());
    }

    #[test]
    fn postgres_moves_to_the_real_nodes_on_a_host_folder_and_says_so() {
        let mut list = serde_json::json!({"kind": "List", "items": [
            {"kind": "StatefulSet", "metadata": {"name": "postgres-postgresql", "namespace": "data"},
             "spec": {"template": {"spec": {"containers": [
                 {"name": "postgresql", "readinessProbe": {"initialDelaySeconds": 5, "periodSeconds": 10}}]}}}},
            {"kind": "PersistentVolume", "metadata": {"name": "pv1"},
             "spec": {"claimRef": {"name": "data-postgres-postgresql-0"},
                      "nfs": {"server": "nfs.homelab.invalid", "path": "/volume1/x"}}},
            {"kind": "PersistentVolume", "metadata": {"name": "pv2"},
             "spec": {"claimRef": {"name": "other"}, "nfs": {"server": "s", "path": "/p"}}}
        ]});
        let changed = postgres_on_real_nodes(&mut list, "attest.dev/real-node", Path::new("/v"));
        assert_eq!(changed, 2);
        let sts = &list["items"][0];
        let spec = &sts["spec"]["template"]["spec"];
        assert_eq!(spec["nodeSelector"]["type"], "real");
        assert_eq!(spec["tolerations"][0]["key"], "attest.dev/real-node");
        assert_eq!(spec["containers"][0]["readinessProbe"]["periodSeconds"], 1);
        let pv = &list["items"][1];
        assert!(pv["spec"]["nfs"].is_null());
        assert_eq!(pv["spec"]["hostPath"]["path"], "/v");
        let note = pv["metadata"]["annotations"]["attest.dev/testbed"]
            .as_str()
            .unwrap();
        assert!(note.contains("nfs.homelab.invalid:/volume1/x") && note.contains("not NFS"));
        assert_eq!(list["items"][2]["spec"]["nfs"]["server"], "s");
    }
}
