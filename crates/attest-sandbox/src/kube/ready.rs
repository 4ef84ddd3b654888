//! When the testbed is ready: the story's claim Bound, its workloads ready, every pod Running
//! and the backup Job complete; and, when not in time, what is still missing.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::KubeTestbed;

impl KubeTestbed {
    /// Polls until the story's claim is Bound, the StatefulSet and Deployments are ready,
    /// every pod Running (or Succeeded) and the backup Job complete; then records the
    /// CronJob's last schedule time from that Job, as the CronJob controller would have.
    pub(super) fn wait_ready(&self, deadline: Instant) -> Result<(), String> {
        let mut last = Vec::new();
        while Instant::now() < deadline {
            let json = self.kubectl_output(&[
                "get",
                "pvc,statefulset,deployment,job,pod",
                "-A",
                "-o",
                "json",
            ])?;
            let list: Value = serde_json::from_str(&json)
                .map_err(|e| format!("kubectl printed JSON we cannot read: {e}"))?;
            last = unready(&list);
            if last.is_empty() {
                let job =
                    list["items"].as_array().into_iter().flatten().find(|i| {
                        i["kind"] == "Job" && i["metadata"]["namespace"] == "paperless-ngx"
                    });
                if let Some(started) = job.and_then(|j| j["status"]["startTime"].as_str()) {
                    let patch = format!(r#"{{"status":{{"lastScheduleTime":"{started}"}}}}"#);
                    self.kubectl_output(&[
                        "patch",
                        "cronjob",
                        "paperless-ngx-backup",
                        "-n",
                        "paperless-ngx",
                        "--subresource=status",
                        "--type=merge",
                        "--field-manager=cronjob-controller",
                        "-p",
                        &patch,
                    ])?;
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!(
            "the Kubernetes testbed was not ready in time:\n{}{}",
            last.iter()
                .map(|l| format!("  * {l}\n"))
                .collect::<String>(),
            self.component_logs()
        ))
    }
}

/// What is not ready yet in a `kubectl get -A -o json` list, one line per object and field.
fn unready(list: &Value) -> Vec<String> {
    let mut missing = Vec::new();
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let name = |i: &Value| {
        let m = &i["metadata"];
        format!(
            "{} {}/{}",
            i["kind"].as_str().unwrap_or("?"),
            m["namespace"].as_str().unwrap_or(""),
            m["name"].as_str().unwrap_or("?")
        )
    };
    let field =
        |i: &Value, path: &[&str]| -> Value { path.iter().fold(i.clone(), |v, k| v[*k].clone()) };
    let expect = |missing: &mut Vec<String>, i: &Value, path: &[&str], want: &Value| {
        let found = field(i, path);
        if &found != want {
            missing.push(format!(
                "{}: {}: expected {want}, found {found}",
                name(i),
                path.join(".")
            ));
        }
    };
    let kinds = |kind: &str| items.iter().filter(move |i| i["kind"] == kind).count();
    for (kind, at_least) in [
        ("StatefulSet", 1),
        ("Deployment", 4),
        ("Job", 1),
        ("Pod", 6),
    ] {
        if kinds(kind) < at_least {
            missing.push(format!(
                "{kind}: expected at least {at_least}, found {}",
                kinds(kind)
            ));
        }
    }
    for item in &items {
        match item["kind"].as_str().unwrap_or_default() {
            "PersistentVolumeClaim" => {
                expect(&mut missing, item, &["status", "phase"], &"Bound".into())
            }
            "StatefulSet" | "Deployment" => {
                let want = field(item, &["spec", "replicas"]);
                expect(&mut missing, item, &["status", "readyReplicas"], &want);
            }
            "Job" => expect(&mut missing, item, &["status", "succeeded"], &1.into()),
            "Pod" => {
                let phase = field(item, &["status", "phase"]);
                if phase != "Running" && phase != "Succeeded" {
                    missing.push(format!(
                        "{}: status.phase: expected Running, found {phase}",
                        name(item)
                    ));
                }
            }
            _ => {}
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unready_names_each_object_and_field() {
        let list: Value = serde_json::from_str(
            r#"{"items":[
              {"kind":"PersistentVolumeClaim","metadata":{"namespace":"data","name":"data-postgres-postgresql-0"},"status":{"phase":"Pending"}},
              {"kind":"Pod","metadata":{"namespace":"data","name":"p"},"status":{"phase":"Pending"}}
            ]}"#,
        )
        .unwrap();
        let lines = unready(&list);
        assert!(lines.contains(
            &"PersistentVolumeClaim data/data-postgres-postgresql-0: status.phase: expected \"Bound\", found \"Pending\"".to_owned()
        ), "{lines:?}");
        assert!(lines
            .iter()
            .any(|l| l.starts_with("Pod data/p: status.phase")));
        assert!(lines
            .iter()
            .any(|l| l.starts_with("StatefulSet: expected at least 1")));
    }
}
