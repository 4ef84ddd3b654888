//! The reports of a fleet run (`attest job` with several `--context`s): every cluster's
//! report.json, as its pod wrote it, merged into one `junit.xml`, `report.md` and
//! `report.json` in which every result names its cluster (the kubeconfig context) and
//! namespace. A cluster where nothing ran is in them too, with why.
//!
//! Why the merge reads report.json and does not rebuild a [`crate::outcome::RunRecord`] for the
//! run's reporters: report.json is the one stable contract between the pod and the launcher
//! (the pod may run another attest version), while the reporters need suite data report.json
//! does not carry (criteria texts, coverage, requirement texts); a rebuilt record would be
//! lossy and tie the JSON format to internal types. So the merged JSON keeps every result
//! object verbatim and adds `cluster` and `namespace` (nothing a pod reported is lost), the
//! JUnit is built with quick-junit as the run's reporter builds it (and shares its schema
//! fix), and the Markdown uses the run reporter's cells and result words. Each cluster's own
//! full reports stay next to the merged ones, in a folder named after its context.

use std::fmt::Write as _;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use serde::Deserialize;
use serde_json::Value;

use crate::outcome::Status;

/// One cluster of a fleet run, as the launcher saw it end.
#[derive(Debug, Clone)]
pub struct ClusterRun {
    /// The kubeconfig context.
    pub cluster: String,
    pub namespace: String,
    /// The launcher's exit code for this cluster.
    pub exit_code: u8,
    /// How it ended, one line (`attest exited 1`, `nothing ran: …`); already redacted.
    pub ended: String,
    /// The folder (relative to the merged reports) with this cluster's own reports.
    pub folder: String,
    /// Its report.json, when the pod sent one that parses.
    pub report: Option<Value>,
}

/// A report.json that is not one.
#[derive(Debug, thiserror::Error)]
#[error("the report.json of cluster `{cluster}` is not one written by `attest run`: {source}")]
pub struct NotAReport {
    pub cluster: String,
    #[source]
    pub source: serde_json::Error,
}

/// The parts of a report.json the merged JUnit and Markdown show.
#[derive(Debug, Clone, Deserialize)]
struct Parsed {
    #[serde(default)]
    final_state: String,
    #[serde(default)]
    verdict: Verdict,
    results: Vec<ResultRow>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Verdict {
    #[serde(default)]
    line: String,
}

#[derive(Debug, Clone, Deserialize)]
struct ResultRow {
    suite: String,
    check: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    kind: String,
    status: Status,
    #[serde(default)]
    requirements: Vec<String>,
    #[serde(default)]
    ac: Option<String>,
    #[serde(default)]
    duration_ms: u64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    expected: Option<String>,
    #[serde(default)]
    found: Option<String>,
    #[serde(default)]
    hint: Option<String>,
    #[serde(default)]
    location: String,
    #[serde(default)]
    via: Option<String>,
    #[serde(default)]
    vantage: Option<crate::vantage::VantageNote>,
    #[serde(default)]
    simulated: Option<String>,
}

impl ResultRow {
    /// How it was measured (the port-forward, where from, a stand-in), as the run's own
    /// reports say it.
    fn path_notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self
            .via
            .iter()
            .filter(|_| self.vantage.is_none())
            .map(|via| format!("measured through a port-forward to {via}"))
            .collect();
        notes.extend(crate::outcome::measurement_notes(
            self.vantage.as_ref(),
            self.simulated.as_deref(),
        ));
        notes
    }
}

/// Parses a report.json brought back from `cluster`.
pub fn parse(cluster: &str, bytes: &[u8]) -> Result<Value, NotAReport> {
    let not_a_report = |source| NotAReport {
        cluster: cluster.to_owned(),
        source,
    };
    let value: Value = serde_json::from_slice(bytes).map_err(not_a_report)?;
    Parsed::deserialize(&value).map_err(not_a_report)?;
    Ok(value)
}

impl ClusterRun {
    /// `east/attest-east`: how results of this cluster are labelled.
    pub fn label(&self) -> String {
        format!("{}/{}", self.cluster, self.namespace)
    }

    /// The parsed report (None when there is none; [`parse`] checked the shape).
    fn parsed(&self) -> Option<Parsed> {
        self.report
            .as_ref()
            .and_then(|r| Parsed::deserialize(r).ok())
    }
}

/// The three merged files: `(name, content)`.
pub fn render_all(attest_version: &str, runs: &[ClusterRun]) -> [(&'static str, String); 3] {
    [
        ("junit.xml", junit(runs)),
        ("report.md", markdown(attest_version, runs)),
        ("report.json", json(attest_version, runs)),
    ]
}

/// The fleet's exit code: the worst of its clusters'.
pub fn exit_code(runs: &[ClusterRun]) -> u8 {
    crate::exit::worst(runs.iter().map(|r| r.exit_code))
}

/// One testsuite per cluster and suite, named `cluster/namespace/suite` and carrying
/// `cluster` and `namespace` properties; a cluster without results gets one testsuite
/// `cluster/namespace` with an error saying why.
pub fn junit(runs: &[ClusterRun]) -> String {
    let mut report = Report::new("attest fleet");
    for run in runs {
        let properties = |suite: Option<&str>, verdict: &str| {
            let mut properties = vec![
                Property::new("cluster", run.cluster.as_str()),
                Property::new("namespace", run.namespace.as_str()),
                Property::new("ended", run.ended.as_str()),
                Property::new("reports", run.folder.as_str()),
            ];
            properties.extend(suite.map(|s| Property::new("suite", s)));
            if !verdict.is_empty() {
                properties.push(Property::new("verdict", verdict));
            }
            properties
        };
        let Some(parsed) = run.parsed() else {
            let mut suite = TestSuite::new(run.label());
            suite.add_properties(properties(None, ""));
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_type("cluster");
            status.set_message(run.ended.as_str());
            let mut case = TestCase::new("run", status);
            case.set_classname(run.label());
            suite.add_test_case(case);
            report.add_test_suite(suite);
            continue;
        };
        let mut suites: Vec<(String, TestSuite)> = Vec::new();
        for row in &parsed.results {
            let at = match suites.iter().position(|(id, _)| *id == row.suite) {
                Some(at) => at,
                None => {
                    let mut suite = TestSuite::new(format!("{}/{}", run.label(), row.suite));
                    suite.add_properties(properties(Some(&row.suite), &parsed.verdict.line));
                    suites.push((row.suite.clone(), suite));
                    suites.len() - 1
                }
            };
            suites[at].1.add_test_case(test_case(run, row));
        }
        for (_, suite) in suites {
            report.add_test_suite(suite);
        }
    }
    let xml = report.to_string().expect("JUnit report serializes");
    super::junit::without_root_skipped(xml)
}

fn test_case(run: &ClusterRun, row: &ResultRow) -> TestCase {
    let status = match row.status {
        Status::Passed => TestCaseStatus::success(),
        Status::Skipped => {
            let mut status = TestCaseStatus::skipped();
            status.set_message(row.message.as_str());
            status
        }
        Status::Failed | Status::Error => {
            let kind = match row.status {
                Status::Failed => NonSuccessKind::Failure,
                _ => NonSuccessKind::Error,
            };
            let mut status = TestCaseStatus::non_success(kind);
            if !row.kind.is_empty() {
                status.set_type(row.kind.as_str());
            }
            status.set_message(row.message.as_str());
            status.set_description(details(row));
            status
        }
    };
    let mut covers = row.requirements.clone();
    covers.extend(row.ac.iter().cloned());
    let name = match covers.is_empty() {
        true => format!("{}: {}", row.check, row.title),
        false => format!("{}: {} [{}]", row.check, row.title, covers.join(", ")),
    };
    let mut case = TestCase::new(name, status);
    case.set_classname(format!("{}/{}", run.label(), row.suite));
    case.set_time(std::time::Duration::from_millis(row.duration_ms));
    let notes = row.path_notes();
    if !notes.is_empty() {
        case.set_system_out(notes.join("\n"));
    }
    case
}

/// Expected, found, hint and where, one per line.
fn details(row: &ResultRow) -> String {
    let mut lines = Vec::new();
    lines.extend(row.expected.as_ref().map(|e| format!("expected: {e}")));
    lines.extend(row.found.as_ref().map(|f| format!("found:    {f}")));
    lines.extend(row.hint.as_ref().map(|h| format!("hint:     {h}")));
    lines.push(format!("at:       {}", row.location));
    lines.join("\n")
}

/// Counts of one cluster's results.
fn counts(parsed: Option<&Parsed>) -> [usize; 4] {
    let mut counts = [0; 4];
    for row in parsed.map(|p| p.results.as_slice()).unwrap_or_default() {
        counts[match row.status {
            Status::Passed => 0,
            Status::Failed => 1,
            Status::Skipped => 2,
            Status::Error => 3,
        }] += 1;
    }
    counts
}

/// A combined summary (one row per cluster), then one section per cluster with its results.
pub fn markdown(attest_version: &str, runs: &[ClusterRun]) -> String {
    use super::markdown::{cell, result_word};
    let code = exit_code(runs);
    let parsed: Vec<Option<Parsed>> = runs.iter().map(ClusterRun::parsed).collect();
    let total = parsed
        .iter()
        .map(|p| counts(p.as_ref()))
        .fold([0; 4], |a, b| {
            [a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]]
        });
    let mut out = String::new();
    let _ = writeln!(out, "# Fleet evidence: {} clusters\n", runs.len());
    let _ = writeln!(
        out,
        "{} **exit {code}**: {} passed, {} failed, {} skipped, {} errors across {} clusters (attest {attest_version}).\n",
        if code == crate::exit::SUCCESS { "✅" } else { "❌" },
        total[0],
        total[1],
        total[2],
        total[3],
        runs.len()
    );
    out.push_str(
        "| Cluster | Namespace | Exit | Passed | Failed | Skipped | Errors | Verdict | Reports |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for (run, parsed) in runs.iter().zip(&parsed) {
        let [passed, failed, skipped, errors] = counts(parsed.as_ref());
        let verdict = parsed
            .as_ref()
            .map(|p| p.verdict.line.clone())
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| run.ended.clone());
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} | {passed} | {failed} | {skipped} | {errors} | {} | [{}/]({}/report.md) |",
            cell(&run.cluster),
            cell(&run.namespace),
            run.exit_code,
            cell(&verdict),
            cell(&run.folder),
            run.folder
        );
    }
    for (run, parsed) in runs.iter().zip(&parsed) {
        let _ = writeln!(
            out,
            "\n## Cluster `{}`, namespace `{}`\n",
            cell(&run.cluster),
            cell(&run.namespace)
        );
        let _ = writeln!(out, "{} (exit {}).\n", run.ended, run.exit_code);
        let Some(parsed) = parsed else {
            let _ = writeln!(out, "No results came back from this cluster.");
            continue;
        };
        if !parsed.final_state.is_empty() {
            let _ = writeln!(
                out,
                "Final state `{}`: {}\n",
                parsed.final_state, parsed.verdict.line
            );
        }
        out.push_str("| Suite | Check | Result | Duration | Evidence |\n|---|---|---|---|---|\n");
        for row in &parsed.results {
            let mut evidence = row.message.clone();
            let notes = row.path_notes();
            if !notes.is_empty() {
                let _ = write!(evidence, " ({})", notes.join("; "));
            }
            if matches!(row.status, Status::Failed | Status::Error) {
                for (what, value) in [
                    ("expected", &row.expected),
                    ("found", &row.found),
                    ("hint", &row.hint),
                ] {
                    if let Some(value) = value {
                        let _ = write!(evidence, "; {what}: {value}");
                    }
                }
            }
            let _ = writeln!(
                out,
                "| `{}` | `{}`: {} | {} | {} ms | {} |",
                cell(&row.suite),
                cell(&row.check),
                cell(&row.title),
                result_word(row.status),
                row.duration_ms,
                cell(&evidence)
            );
        }
        let _ = writeln!(
            out,
            "\nThe full evidence of this cluster (criteria, traceability, environment): [{0}/report.md]({0}/report.md).",
            run.folder
        );
    }
    out
}

/// `clusters`: one entry per cluster (exit code, how it ended, its summary and verdict, its
/// reports folder); `results`: every cluster's results as the pods wrote them, each with
/// `cluster` and `namespace` added.
pub fn json(attest_version: &str, runs: &[ClusterRun]) -> String {
    let mut clusters = Vec::new();
    let mut results = Vec::new();
    let mut summary = serde_json::Map::new();
    for run in runs {
        let field = |name: &str| {
            run.report
                .as_ref()
                .and_then(|r| r.get(name))
                .cloned()
                .unwrap_or(Value::Null)
        };
        clusters.push(serde_json::json!({
            "cluster": run.cluster,
            "namespace": run.namespace,
            "exit_code": run.exit_code,
            "ended": run.ended,
            "reports": run.folder,
            "run_id": field("run_id"),
            "final_state": field("final_state"),
            "summary": field("summary"),
            "verdict": field("verdict"),
            "stories": field("stories"),
        }));
        if let Some(Value::Object(counts)) = run.report.as_ref().and_then(|r| r.get("summary")) {
            for (key, value) in counts {
                let sum = summary.get(key).and_then(Value::as_u64).unwrap_or(0)
                    + value.as_u64().unwrap_or(0);
                summary.insert(key.clone(), sum.into());
            }
        }
        let rows = run
            .report
            .as_ref()
            .and_then(|r| r.get("results"))
            .and_then(Value::as_array);
        for row in rows.into_iter().flatten() {
            let mut labelled = serde_json::Map::new();
            labelled.insert("cluster".into(), run.cluster.clone().into());
            labelled.insert("namespace".into(), run.namespace.clone().into());
            if let Value::Object(fields) = row {
                labelled.extend(fields.clone());
            }
            results.push(Value::Object(labelled));
        }
    }
    let report = serde_json::json!({
        "attest_version": attest_version,
        "fleet": true,
        "exit_code": exit_code(runs),
        "summary": summary,
        "clusters": clusters,
        "results": results,
    });
    let mut text = serde_json::to_string_pretty(&report).expect("report serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: &str) -> Value {
        serde_json::json!({
            "run_id": "r1",
            "final_state": if status == "passed" { "success" } else { "failed" },
            "summary": {"passed": (status == "passed") as u8, "failed": (status == "failed") as u8, "skipped": 0, "errors": 0},
            "verdict": {"line": "a verdict | with a pipe"},
            "results": [{"suite": "s", "check": "c", "title": "t <x>", "kind": "kube", "status": status,
                         "requirements": ["FR1"], "ac": null, "duration_ms": 12, "message": "m",
                         "expected": "1", "found": "2", "hint": null, "location": "s.yaml:3:5",
                         "vantage": {"namespace": "apps", "measured_from": "from pod `p` in namespace `apps`", "holds": true},
                         "simulated": "a stand-in"}],
        })
    }

    fn runs() -> Vec<ClusterRun> {
        vec![
            ClusterRun {
                cluster: "east".into(),
                namespace: "ns-east".into(),
                exit_code: 0,
                ended: "attest exited 0".into(),
                folder: "east".into(),
                report: Some(report("passed")),
            },
            ClusterRun {
                cluster: "west".into(),
                namespace: "ns-west".into(),
                exit_code: 1,
                ended: "attest exited 1".into(),
                folder: "west".into(),
                report: Some(report("failed")),
            },
            ClusterRun {
                cluster: "north".into(),
                namespace: "default".into(),
                exit_code: 3,
                ended: "nothing ran: ImagePullBackOff".into(),
                folder: "north".into(),
                report: None,
            },
        ]
    }

    #[test]
    fn every_result_is_labelled_with_its_cluster_and_namespace() {
        let json: Value = serde_json::from_str(&json("0.1.0", &runs())).unwrap();
        // A failed check (1) is worse than a cluster where nothing ran (3).
        assert_eq!(json["exit_code"], 1);
        assert_eq!(json["summary"]["passed"], 1);
        assert_eq!(json["summary"]["failed"], 1);
        let results = json["results"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0]["cluster"], "east");
        assert_eq!(results[0]["namespace"], "ns-east");
        assert_eq!(results[0]["location"], "s.yaml:3:5");
        assert_eq!(results[1]["cluster"], "west");
        assert_eq!(
            json["clusters"][2]["ended"],
            "nothing ran: ImagePullBackOff"
        );
        assert_eq!(json["clusters"][2]["summary"], Value::Null);

        let xml = junit(&runs());
        assert!(xml.contains(r#"<testsuite name="east/ns-east/s""#), "{xml}");
        assert!(
            xml.contains(r#"<property name="cluster" value="west"/>"#),
            "{xml}"
        );
        assert!(xml.contains(r#"<testsuite name="north/default""#), "{xml}");
        assert!(xml.contains("nothing ran: ImagePullBackOff"), "{xml}");
        assert!(xml.contains("t &lt;x&gt;"), "{xml}");
        // Where each result was measured, as in the clusters' own reports.
        assert!(
            xml.contains("measured from pod `p` in namespace `apps`, as the criterion asks\nsimulated: a stand-in"),
            "{xml}"
        );
        assert!(!xml.contains("<testsuites name=\"attest fleet\" tests=\"3\" skipped"));

        let md = markdown("0.1.0", &runs());
        assert!(
            md.contains("m (measured from pod `p` in namespace `apps`, as the criterion asks; simulated: a stand-in)"),
            "{md}"
        );
        assert!(
            md.contains("## Cluster `east`, namespace `ns-east`"),
            "{md}"
        );
        assert!(
            md.contains("| `west` | `ns-west` | 1 | 0 | 1 | 0 | 0 | a verdict \\| with a pipe |"),
            "{md}"
        );
        assert!(
            md.contains("No results came back from this cluster."),
            "{md}"
        );
        assert!(md.contains("**exit 1**: 1 passed, 1 failed"), "{md}");
    }

    #[test]
    fn a_report_that_is_not_one_is_named() {
        let e = parse("east", b"{\"results\": 3}").unwrap_err();
        assert!(e.to_string().contains("cluster `east`"), "{e}");
        assert!(parse("east", b"not json").is_err());
        assert!(parse("east", report("passed").to_string().as_bytes()).is_ok());
    }
}
