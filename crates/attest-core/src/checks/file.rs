//! `file`: a local file exists (or not), contains or lacks patterns, has values at YAML paths
//! (Helm values files), and is ignored by git (secrets files).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Kind, Verdict};
use crate::context::CheckContext;
use crate::matchers::{check_patterns, Pattern, ShowMatch};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileCheck {
    /// Path, relative to the directory attest runs in.
    pub path: PathBuf,
    /// Whether the file must exist (default true).
    #[serde(default = "yes")]
    pub exists: bool,
    /// Patterns the content must contain.
    #[serde(default)]
    pub contains: Vec<Pattern>,
    /// Patterns the content must not contain (reported by line number only: files may hold secrets).
    #[serde(default)]
    pub excludes: Vec<Pattern>,
    /// Values at YAML paths, e.g. `env.PAPERLESS_DBENGINE: postgresql`; `a.0.b` indexes lists.
    #[serde(default)]
    pub yaml: BTreeMap<String, String>,
    /// Whether git must ignore the file (`true` for secrets files).
    #[serde(default)]
    pub git_ignored: Option<bool>,
    /// Whether values read from the file may be secrets (default true): a `yaml:` mismatch
    /// then reports only the found value's length and a hash prefix. Set `false` for files
    /// without secrets (Helm values) to see the values themselves.
    #[serde(default = "yes")]
    pub sensitive: bool,
}

fn yes() -> bool {
    true
}

impl FileCheck {
    async fn inspect(&self) -> Verdict {
        let path = &self.path;
        let shown = path.display();
        let content = match (tokio::fs::read(path).await, self.exists) {
            (Err(e), true) if e.kind() == std::io::ErrorKind::NotFound => {
                return Verdict::fail(format!("`{shown}` does not exist"))
                    .expected("the file exists")
                    .found("no such file")
                    .hint("paths are relative to the directory attest runs in; run it from the repository root")
            }
            (Err(e), false) if e.kind() == std::io::ErrorKind::NotFound => {
                return Verdict::pass(format!("`{shown}` does not exist, as expected"))
            }
            (Err(e), false) => {
                return Verdict::error(format!("cannot tell whether `{shown}` exists: {e}"))
            }
            (Err(e), true) => {
                return Verdict::error(format!("cannot read `{shown}`: {e}"))
            }
            (Ok(_), false) => {
                return Verdict::fail(format!("`{shown}` exists but should not"))
                    .expected("no such file")
                    .found("the file exists")
            }
            (Ok(bytes), true) => String::from_utf8_lossy(&bytes).into_owned(),
        };

        let mut problems = check_patterns(
            &content,
            &self.contains,
            &self.excludes,
            ShowMatch::LineNumber,
        );
        if !self.yaml.is_empty() {
            problems.extend(self.yaml_problems(&content));
        }
        if let Some(want_ignored) = self.git_ignored {
            match git_ignore_status(path).await {
                Ok(status) if status.matches(want_ignored) => {}
                Ok(status) => problems.push(status.describe(want_ignored)),
                Err(e) => return Verdict::error(e),
            }
        }

        if problems.is_empty() {
            Verdict::pass(format!("`{shown}`: {}", self.expectation()))
        } else {
            Verdict::fail(format!("`{shown}`: {}", problems.join("; ")))
                .expected(self.expectation())
                .found(problems.join("; "))
        }
    }

    fn yaml_problems(&self, content: &str) -> Vec<String> {
        let document: Value = match serde_saphyr::from_str(content) {
            Ok(document) => document,
            Err(e) => return vec![format!("not valid YAML: {}", first_line(&e.to_string()))],
        };
        self.yaml
            .iter()
            .filter_map(|(path, want)| match lookup(&document, path) {
                None => Some(format!("`{path}` is not set")),
                Some(value) if self.sensitive => {
                    mismatch_evidence(value, want).map(|evidence| format!("`{path}` {evidence}"))
                }
                Some(value) => {
                    let got = scalar_text(value);
                    (got != *want).then(|| format!("`{path}` is `{got}`, expected `{want}`"))
                }
            })
            .collect()
    }

    fn expectation(&self) -> String {
        let mut parts = vec!["exists".to_owned()];
        parts.extend(self.contains.iter().map(|p| format!("contains {p}")));
        parts.extend(self.excludes.iter().map(|p| format!("lacks {p}")));
        parts.extend(self.yaml.iter().map(|(k, v)| format!("{k} == {v}")));
        match self.git_ignored {
            Some(true) => parts.push("ignored by git".into()),
            Some(false) => parts.push("not ignored by git".into()),
            None => {}
        }
        parts.join(", ")
    }
}

/// How a found value differs from the expected one, in words that cannot reveal it: its
/// shape, length and a short hash (enough to tell two runs apart, or to compare with
/// `printf %s "$VALUE" | sha256sum` by hand). None when it matches.
fn mismatch_evidence(value: &Value, want: &str) -> Option<String> {
    let got = match value {
        Value::Object(map) => {
            return Some(format!(
                "is a map of {} key(s), expected a value",
                map.len()
            ))
        }
        Value::Array(items) => {
            return Some(format!(
                "is a list of {} item(s), expected a value",
                items.len()
            ))
        }
        other => scalar_text(other),
    };
    if got == want {
        return None;
    }
    let near_miss = if got.trim() == want.trim() {
        "; it differs only in leading or trailing whitespace"
    } else if got.to_lowercase() == want.to_lowercase() {
        "; it differs only in letter case"
    } else {
        ""
    };
    Some(format!(
        "differs from the expected value: found {} character(s), SHA-256 prefix {}{near_miss} \
         (values are not shown, as the file may hold secrets; `sensitive: false` shows them)",
        got.chars().count(),
        sha256_prefix(&got)
    ))
}

fn sha256_prefix(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// Follows a dotted path through maps and lists.
fn lookup<'v>(document: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .try_fold(document, |node, segment| match node {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
}

/// A YAML value as the text a user would compare it with: `5432` and `"5432"` alike.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum GitStatus {
    Ignored,
    NotIgnored,
    /// Tracked files are never ignored, whatever .gitignore says.
    Tracked,
}

impl GitStatus {
    fn matches(&self, want_ignored: bool) -> bool {
        (*self == GitStatus::Ignored) == want_ignored
    }
    fn describe(&self, want_ignored: bool) -> String {
        match (self, want_ignored) {
            (GitStatus::Tracked, true) => {
                "tracked by git, so .gitignore does not protect it (run `git rm --cached` on it)"
                    .into()
            }
            (_, true) => "not ignored by git: add it to .gitignore".into(),
            (_, false) => "ignored by git, but should be committed".into(),
        }
    }
}

async fn git_ignore_status(path: &Path) -> Result<GitStatus, String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().map(PathBuf::from).unwrap_or_default();
    let git = |args: &[&str]| {
        let mut command = tokio::process::Command::new("git");
        command.arg("-C").arg(dir).args(args).arg(&name);
        command.kill_on_drop(true);
        command
    };
    let tracked = git(&["ls-files", "--error-unmatch", "--"])
        .output()
        .await
        .map_err(|e| format!("cannot run git: {e} (install Debian's `git` package)"))?;
    if tracked.status.success() {
        return Ok(GitStatus::Tracked);
    }
    let ignored = git(&["check-ignore", "-q", "--"])
        .output()
        .await
        .map_err(|e| format!("cannot run git: {e}"))?;
    match ignored.status.code() {
        Some(0) => Ok(GitStatus::Ignored),
        Some(1) => Ok(GitStatus::NotIgnored),
        _ => Err(format!(
            "cannot ask git about `{}`: {}",
            path.display(),
            String::from_utf8_lossy(&ignored.stderr).trim()
        )),
    }
}

impl Kind for FileCheck {
    const DESCRIPTION: &'static str = "A local file exists (or not), contains or lacks patterns, has values at YAML paths, is ignored by git.";
    fn target(&self) -> String {
        self.path.display().to_string()
    }

    fn validate(&self) -> Vec<super::FieldProblem> {
        use crate::validate;
        let mut problems = validate::patterns("contains", &self.contains, true);
        problems.extend(validate::patterns("excludes", &self.excludes, true));
        problems
    }

    fn observe(&self, _ctx: &CheckContext) -> impl std::future::Future<Output = Verdict> + Send {
        self.inspect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_paths_reach_maps_and_lists() {
        let doc: Value = serde_saphyr::from_str(
            "env:\n  PAPERLESS_DBPORT: \"5432\"\n  N: 5432\nlist:\n  - name: a\n",
        )
        .unwrap();
        assert_eq!(
            scalar_text(lookup(&doc, "env.PAPERLESS_DBPORT").unwrap()),
            "5432"
        );
        assert_eq!(scalar_text(lookup(&doc, "env.N").unwrap()), "5432");
        assert_eq!(scalar_text(lookup(&doc, "list.0.name").unwrap()), "a");
        assert!(lookup(&doc, "env.MISSING").is_none());
    }

    #[test]
    fn sensitive_mismatches_describe_the_value_without_showing_it() {
        let secret = Value::String("Real-Db-Pass-123".into());
        let evidence = mismatch_evidence(&secret, "other").unwrap();
        assert!(!evidence.contains("Real"), "{evidence}");
        assert!(
            evidence.contains("16 character(s), SHA-256 prefix "),
            "{evidence}"
        );
        assert_eq!(mismatch_evidence(&secret, "Real-Db-Pass-123"), None);
        let padded = mismatch_evidence(
            &Value::String("Real-Db-Pass-123 ".into()),
            "Real-Db-Pass-123",
        );
        assert!(padded
            .unwrap()
            .contains("only in leading or trailing whitespace"));
        let map: Value = serde_saphyr::from_str("a: Real-Db-Pass-123\nb: 2\n").unwrap();
        let evidence = mismatch_evidence(&map, "x").unwrap();
        assert!(
            evidence.contains("map of 2 key(s)") && !evidence.contains("Real"),
            "{evidence}"
        );
    }

    #[test]
    fn hash_prefix_is_sha256() {
        // printf %s abc | sha256sum
        assert_eq!(sha256_prefix("abc"), "ba7816bf");
    }
}
