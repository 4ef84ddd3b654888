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
}
