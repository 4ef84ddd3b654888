//! The sandbox's in-cluster leg: the checks that say where they must be measured from
//! (`from: { namespace: apps }`, story 5.5) run a second time from there, through `attest
//! job` on the testbed's real nodes, with attest's image built from this very binary. Its
//! reports go to `<report dir>/in-cluster/`, beside the run from outside.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use attest_core::exit;
use attest_core::load::{self, Purpose, SelectsChecks, Suite, VarSources};
use attest_core::redact::Redactor;
use attest_core::runner::{self, StopSignals};
use attest_sandbox::kube::nodes;
use attest_sandbox::Sandbox;

use crate::console::{error_line, say};
use crate::run::{libtest_arguments, split_positionals, suite_files, RunArgs};

/// The taint and label of the testbed's real nodes: the Job's pod must run on one, since a
/// kwok node runs no process.
const REAL_NODE_TOLERATION: &str = "attest.dev/real-node:NoSchedule";
const REAL_NODE_SELECTOR: &str = "type=real";

/// What the in-cluster leg runs: one `attest job` per suite and namespace.
struct Leg {
    suite: PathBuf,
    suite_id: String,
    namespace: String,
    /// Checks of the suite it leaves out (`--skip`, exact): those neither marked `from:` this
    /// namespace nor needed by one that is.
    skip: Vec<String>,
    /// Secret variables the suite declares, handed over in a vars file.
    secrets: Vec<String>,
}

/// The legs of this run: suites with selected checks that carry `from:`.
fn legs(run: &RunArgs, provided: &[(String, String)]) -> Result<Vec<Leg>, String> {
    let (mut paths, filter) = split_positionals(&run.positional)?;
    if paths.is_empty() {
        paths.push(PathBuf::from("suites"));
    }
    let files = suite_files(&paths).ok_or("no suites")?;
    let selection = runner::Selection::new(libtest_arguments(&run.libtest, filter));
    let sources = VarSources {
        provided: provided.to_vec(),
        ..VarSources::default()
    };
    let loaded = load::load_suites(&files, &sources, &Redactor::default(), Purpose::Inspect);
    let suites = loaded
        .suites
        .map_err(|_| "the suites did not load (the run above said why)".to_owned())?;
    Ok(suites
        .iter()
        .flat_map(|suite| legs_of(suite, &selection))
        .collect())
}

fn legs_of(suite: &Suite, selection: &runner::Selection) -> Vec<Leg> {
    let mut by_namespace: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for check in &suite.checks {
        let selected = selection.selects(
            &suite.id,
            &check.decl.id,
            check.decl.kind,
            check.decl.ignore.is_some(),
        );
        if let Some(from) = check.decl.from.as_ref().filter(|_| selected) {
            by_namespace
                .entry(&from.namespace)
                .or_default()
                .insert(&check.decl.id);
        }
    }
    by_namespace
        .into_iter()
        .map(|(namespace, wanted)| {
            // The checks they need, transitively: `needs` names earlier checks only.
            let mut keep: BTreeSet<&str> = wanted;
            for check in suite.checks.iter().rev() {
                if keep.contains(check.decl.id.as_str()) {
                    keep.extend(check.decl.needs.iter().map(String::as_str));
                }
            }
            Leg {
                suite: suite.path.clone(),
                suite_id: suite.id.clone(),
                namespace: namespace.to_owned(),
                skip: suite
                    .checks
                    .iter()
                    .filter(|c| !keep.contains(c.decl.id.as_str()))
                    .map(|c| format!("{}::{}", suite.id, c.decl.id))
                    .collect(),
                secrets: suite
                    .variables
                    .iter()
                    .filter(|v| v.secret)
                    .map(|v| v.name.clone())
                    .collect(),
            }
        })
        .collect()
}

/// Runs the legs; the worst exit code of their Jobs (0 with none).
pub fn run(
    sandbox: &Sandbox,
    run: &RunArgs,
    runtime: &tokio::runtime::Runtime,
    stop: &StopSignals,
) -> u8 {
    let (Some(kube), Some(kubeconfig)) = (sandbox.kube.as_ref(), sandbox.kubeconfig()) else {
        return exit::SUCCESS;
    };
    let provided: Vec<(String, String)> = sandbox.variables();
    let legs = match legs(run, &provided) {
        Ok(legs) if legs.is_empty() => return exit::SUCCESS,
        Ok(legs) => legs,
        Err(e) => {
            error_line(&format!("the in-cluster run did not start: {e}"));
            return exit::CHECK_FAILED;
        }
    };
    let Some(real_nodes) = kube.nodes() else {
        say("attest: in-cluster run skipped: kwok's nodes run no process (no real nodes in this testbed); the checks marked `from:` were measured from outside only");
        return exit::SUCCESS;
    };
    // attest's image from this very binary (cached by content), into both real nodes.
    let clock = Instant::now();
    let tarball = kube.dir().join("attest-image.tar");
    let image = std::env::current_exe()
        .map_err(|e| format!("cannot find attest's own binary: {e}"))
        .and_then(|exe| nodes::attest_image(&exe, &tarball, true))
        .and_then(|image| real_nodes.import_image(&tarball).map(|_| image));
    let image = match image {
        Ok(image) => image,
        Err(e) => {
            error_line(&format!(
                "the in-cluster run did not start: attest's image: {e}"
            ));
            return exit::CHECK_FAILED;
        }
    };
    say(&format!(
        "attest: in-cluster run: image {image} built from this binary and imported into the real nodes in {:.1}s",
        clock.elapsed().as_secs_f64()
    ));
    // Pods ask the stand-in on the testbed's node address (kubelet's clusterDNS).
    let simulated = super::simulated_dns("on 100.64.0.1:53");
    let secrets: BTreeMap<String, String> = sandbox.secret_variables().into_iter().collect();
    let mut code = exit::SUCCESS;
    let mut verdicts = Vec::new();
    for leg in &legs {
        if stop.interruption().is_some() {
            break;
        }
        // One folder per leg, so no leg overwrites another's reports.
        let report_dir = match legs.len() {
            1 => run.report_dir.join("in-cluster"),
            _ => run
                .report_dir
                .join("in-cluster")
                .join(format!("{}-{}", leg.suite_id, leg.namespace)),
        };
        say(&format!(
            "attest: in-cluster run: {} from namespace {} (attest job), reports in {}",
            leg.suite_id,
            leg.namespace,
            report_dir.display()
        ));
        let vars = match vars_file(kube.dir(), leg, &secrets) {
            Ok(vars) => vars,
            Err(e) => {
                error_line(&format!("the in-cluster run did not start: {e}"));
                return exit::CHECK_FAILED;
            }
        };
        let mut command = tokio::process::Command::new(match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => {
                error_line(&format!("cannot find attest's own binary: {e}"));
                return exit::CHECK_FAILED;
            }
        });
        command
            .arg("job")
            .arg(&leg.suite)
            .args(["--namespace", &leg.namespace, "--image", &image])
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--vars")
            .arg(&vars)
            .args([
                "--allow-mutating",
                "--exact",
                "--target",
                "sandbox, in-cluster",
            ])
            .args(["--toleration", REAL_NODE_TOLERATION])
            .args(["--node-selector", REAL_NODE_SELECTOR])
            .arg("--report-dir")
            .arg(&report_dir)
            .args(leg.skip.iter().flat_map(|name| ["--skip", name.as_str()]))
            .arg("--simulated")
            .arg(format!("{}={}", simulated.0, simulated.1))
            .env_remove("KUBECONFIG");
        let status = {
            let _context = runtime.enter();
            command.spawn()
        }
        .and_then(|child| super::wait_passing_signals(child, runtime, stop));
        let _ = std::fs::remove_file(&vars);
        if status.is_ok() {
            say(&format!(
                "attest: completion notes with both runs: attest evidence {} --with {} --story …",
                run.report_dir.join("report.json").display(),
                report_dir.join("report.json").display()
            ));
        }
        let leg_code = match status {
            Ok(code) => code,
            Err(e) => {
                error_line(&format!("attest job did not run: {e}"));
                exit::CHECK_FAILED
            }
        };
        code = exit::worst([code, leg_code]);
        let verdict = verdict(&report_dir.join("report.json"))
            .unwrap_or_else(|| format!("no report (exit {leg_code})"));
        verdicts.push(format!("from a pod in {}: {verdict}", leg.namespace));
    }
    // The last line is the whole run's: from outside, then from each namespace.
    if let Some(outside) = verdict(&run.report_dir.join("report.json")) {
        use colored::Colorize;
        let line = format!("{outside} · {}", verdicts.join(" · "));
        let outside_passed = outside.starts_with("PASSED");
        let line = match code {
            exit::SUCCESS if outside_passed && !line.contains("NOT VERIFIED") => {
                line.green().bold()
            }
            exit::SUCCESS | exit::NOT_VERIFIED if outside_passed => line.yellow().bold(),
            _ => line.red().bold(),
        };
        say(&line.to_string());
    }
    code
}

/// The verdict line a run wrote into its report.json.
fn verdict(report: &Path) -> Option<String> {
    let text = std::fs::read_to_string(report).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["verdict"]["line"].as_str().map(str::to_owned)
}

/// The secret values the leg's suite declares, in a vars file only root can read (the Job
/// puts them in a Secret, never in its ConfigMap).
fn vars_file(dir: &Path, leg: &Leg, secrets: &BTreeMap<String, String>) -> Result<PathBuf, String> {
    let path = dir.join(format!("in-cluster-{}.vars.yaml", leg.suite_id));
    let mut text = String::new();
    for name in &leg.secrets {
        if let Some(value) = secrets.get(name) {
            // A JSON string is a YAML double-quoted scalar: every character escaped as YAML reads it.
            let quoted = serde_json::to_string(value).map_err(|e| e.to_string())?;
            text.push_str(&format!("{name}: {quoted}\n"));
        }
    }
    attest_sandbox::write_private(&path, &text)?;
    Ok(path)
}
