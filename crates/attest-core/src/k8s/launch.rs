//! `attest job` live: create the manifests of [`super::job`] and [`super::rbac`] on a cluster,
//! follow the pod's console, bring its reports back and delete everything again.
//!
//! **Reports come back in the pod's log.** At the end of the run, `attest run` in the pod
//! (told by [`FRAME_ENV`]) prints each report as a frame: a begin line with its name, size and
//! SHA-256, its bytes as base64 lines, an end line, all prefixed with the run's id. The launcher
//! reads them from the log it is already following (kubelet's follow crosses log rotation, so
//! a report larger than `containerLogMaxSize` still arrives whole) and, if that stream broke,
//! from the terminated container's log once more. Nothing else is needed: no `exec` (no `tar`
//! or shell in the image, no container kept alive waiting), no extra RBAC, no size cap of an
//! object, and the pod never restarts (`restartPolicy: Never`, `backoffLimit: 0`). Every
//! frame is checked by size and digest; a missing or damaged one is named.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams,
    PostParams,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// The label every object of one `attest job` carries, valued with its run id; `attest
/// cleanup --kubeconfig` finds leftovers by it.
pub const RUN_LABEL: &str = "attest.dev/run";
/// Set in the pod: `attest run` prints its reports as frames tagged with this value.
pub const FRAME_ENV: &str = "ATTEST_REPORT_FRAME";
const FRAME_TAG: &str = "attest-report-frame";
const CONTAINER: &str = "attest";

/// The kinds `attest job` creates: (apiVersion, kind, plural, namespaced), in creation order.
pub const KINDS: [(&str, &str, &str, bool); 9] = [
    ("v1", "ServiceAccount", "serviceaccounts", true),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    ("rbac.authorization.k8s.io/v1", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    ("v1", "ConfigMap", "configmaps", true),
    ("v1", "Secret", "secrets", true),
    ("batch/v1", "Job", "jobs", true),
    ("v1", "Pod", "pods", true),
];

fn kind_of(api_version: &str, kind: &str) -> Option<(ApiResource, bool)> {
    KINDS
        .iter()
        .find(|(v, k, _, _)| *v == api_version && *k == kind)
        .map(|(v, k, plural, namespaced)| {
            let (group, version) = v.rsplit_once('/').unwrap_or(("", v));
            let gvk = GroupVersionKind::gvk(group, version, k);
            (ApiResource::from_gvk_with_plural(&gvk, plural), *namespaced)
        })
}

fn api(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

/// Adds the run's label to every object (and the Job's pod template), and the frame variable
/// to the Job's container.
pub fn mark(documents: &mut [(Vec<String>, Value)], run_id: &str) {
    for (_, object) in documents.iter_mut() {
        object["metadata"]["labels"][RUN_LABEL] = Value::String(run_id.into());
        if object["kind"] == "Job" {
            object["spec"]["template"]["metadata"]["labels"][RUN_LABEL] =
                Value::String(run_id.into());
            if let Some(containers) =
                object["spec"]["template"]["spec"]["containers"].as_array_mut()
            {
                for container in containers {
                    let env = &mut container["env"];
                    if !env.is_array() {
                        *env = Value::Array(Vec::new());
                    }
                    if let Some(env) = env.as_array_mut() {
                        env.push(serde_json::json!({"name": FRAME_ENV, "value": run_id}));
                    }
                }
            }
        }
    }
}

/// One object created, to be deleted again.
#[derive(Debug, Clone)]
pub struct Created {
    pub resource: ApiResource,
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.resource.kind, self.name),
            None => write!(f, "{} {}", self.resource.kind, self.name),
        }
    }
}

async fn allowed(
    reviews: &Api<SelfSubjectAccessReview>,
    attributes: ResourceAttributes,
) -> Result<bool, String> {
    let request = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(attributes),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let answer = reviews
        .create(&PostParams::default(), &request)
        .await
        .map_err(|e| {
            format!("asking the API server for permissions (SelfSubjectAccessReview): {e}")
        })?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

fn attributes(
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> ResourceAttributes {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_owned())),
        None => (resource, None),
    };
    ResourceAttributes {
        verb: Some(verb.into()),
        group: Some(group.into()),
        resource: Some(resource.into()),
        subresource,
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
        ..ResourceAttributes::default()
    }
}

fn describe(a: &ResourceAttributes) -> String {
    let resource = match &a.subresource {
        Some(sub) => format!("{}/{sub}", a.resource.as_deref().unwrap_or_default()),
        None => a.resource.clone().unwrap_or_default(),
    };
    let group = match a.group.as_deref() {
        Some("") | None => String::new(),
        Some(g) => format!(".{g}"),
    };
    let name = a
        .name
        .as_deref()
        .map(|n| format!(" {n}"))
        .unwrap_or_default();
    let place = match &a.namespace {
        Some(ns) => format!("in namespace {ns}"),
        None => "cluster-wide".into(),
    };
    format!(
        "{} {resource}{group}{name} {place}",
        a.verb.as_deref().unwrap_or_default()
    )
}

/// What the launcher itself needs, asked with SelfSubjectAccessReviews before anything is
/// created: `create` and `delete` of every object, `get`/`list`/`watch` of pods, `get` of
/// their logs, `list` of events in the Job's namespace; and, since the API server lets a
/// user create a Role or binding only for permissions the user holds (else `escalate` on
/// roles and `bind` on them), every permission the generated Roles grant, or both `escalate`
/// and `bind`. Returns the missing ones, described.
pub async fn preflight(
    client: &kube::Client,
    documents: &[(Vec<String>, Value)],
    namespace: &str,
) -> Result<Vec<String>, String> {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut wanted: Vec<ResourceAttributes> = Vec::new();
    for (_, object) in documents {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let Some((resource, _)) = kind_of(api_version, kind) else {
            continue;
        };
        let ns = object["metadata"]["namespace"].as_str();
        wanted.push(attributes(
            "create",
            &resource.group,
            &resource.plural,
            ns,
            None,
        ));
        let name = object["metadata"]["name"].as_str();
        wanted.push(attributes(
            "delete",
            &resource.group,
            &resource.plural,
            ns,
            name,
        ));
    }
    for (verb, resource) in [
        ("get", "pods"),
        ("list", "pods"),
        ("delete", "pods"),
        ("get", "pods/log"),
        ("list", "events"),
    ] {
        wanted.push(attributes(verb, "", resource, Some(namespace), None));
    }
    let mut missing = Vec::new();
    for a in wanted {
        if !allowed(&reviews, a.clone()).await? {
            missing.push(describe(&a));
        }
    }
    // The grants of the Roles and ClusterRole: held by the launcher, or escalate + bind.
    let mut not_held = Vec::new();
    for (_, object) in documents {
        let kind = object["kind"].as_str().unwrap_or_default();
        if kind != "Role" && kind != "ClusterRole" {
            continue;
        }
        let ns = object["metadata"]["namespace"].as_str();
        for rule in object["rules"].as_array().into_iter().flatten() {
            let list = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            };
            let names = list("resourceNames");
            let names: Vec<Option<&str>> = if names.is_empty() {
                vec![None]
            } else {
                names.iter().map(|n| Some(n.as_str())).collect()
            };
            for group in list("apiGroups") {
                for resource in list("resources") {
                    for verb in list("verbs") {
                        for name in &names {
                            let a = attributes(&verb, &group, &resource, ns, *name);
                            if !allowed(&reviews, a.clone()).await? {
                                not_held.push(describe(&a));
                            }
                        }
                    }
                }
            }
        }
    }
    if !not_held.is_empty() {
        let rbac = "rbac.authorization.k8s.io";
        let mut may = true;
        for (verb, resource) in [
            ("escalate", "roles"),
            ("bind", "roles"),
            ("escalate", "clusterroles"),
            ("bind", "clusterroles"),
        ] {
            let a = attributes(verb, rbac, resource, None, None);
            if !allowed(&reviews, a).await? {
                may = false;
            }
        }
        if !may {
            missing.push(format!(
                "to grant what the run's Roles grant, either hold it ({} not held: {}) or `escalate` and `bind` on roles and clusterroles",
                not_held.len(),
                not_held.join(", ")
            ));
        }
    }
    Ok(missing)
}

/// Creates the documents in order, recording each one created in `created` at once (so
/// whatever happens next, it is deleted).
pub async fn create_all(
    client: &kube::Client,
    documents: &[(Vec<String>, Value)],
    created: &mut Vec<Created>,
) -> Result<(), String> {
    let mut ordered: Vec<&Value> = documents.iter().map(|(_, o)| o).collect();
    let rank = |o: &Value| {
        KINDS
            .iter()
            .position(|(_, k, _, _)| o["kind"] == *k)
            .unwrap_or(KINDS.len())
    };
    ordered.sort_by_key(|o| rank(o));
    for object in ordered {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let (resource, namespaced) = kind_of(api_version, kind)
            .ok_or_else(|| format!("attest job does not create {kind} objects"))?;
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .filter(|_| namespaced)
            .map(str::to_owned);
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let dynamic: DynamicObject =
            serde_json::from_value(object.clone()).map_err(|e| format!("{kind} {name}: {e}"))?;
        let target = Created {
            resource: resource.clone(),
            namespace: namespace.clone(),
            name: name.clone(),
        };
        match api(client, &resource, namespace.as_deref())
            .create(&PostParams::default(), &dynamic)
            .await
        {
            Ok(_) => created.push(target),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                return Err(format!(
                    "{target} already exists (another `attest job`, or a leftover: `attest cleanup --kubeconfig …` lists what killed runs left); nothing of it was changed"
                ))
            }
            Err(e) => return Err(format!("cannot create {target}: {e}")),
        }
    }
    Ok(())
}

/// Deletes what was created (the Job's pods too), newest first; waits until the pods are gone
/// (at most `limit`). Returns what could not be deleted.
pub async fn delete_all(
    client: &kube::Client,
    created: &[Created],
    namespace: &str,
    run_id: &str,
    limit: Duration,
) -> Vec<String> {
    let mut problems = Vec::new();
    for target in created.iter().rev() {
        let params = DeleteParams::background();
        match api(client, &target.resource, target.namespace.as_deref())
            .delete(&target.name, &params)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => problems.push(format!("{target}: {e}")),
        }
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = ListParams::default().labels(&format!("{RUN_LABEL}={run_id}"));
    let clock = Instant::now();
    loop {
        match pods.list(&selector).await {
            Ok(list) if list.items.is_empty() => break,
            Ok(list) => {
                for pod in &list.items {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    if pod.metadata.deletion_timestamp.is_none() {
                        let _ = pods.delete(&name, &DeleteParams::background()).await;
                    }
                }
                if clock.elapsed() > limit {
                    let names: Vec<String> = list
                        .items
                        .iter()
                        .filter_map(|p| p.metadata.name.clone())
                        .collect();
                    problems.push(format!(
                        "pod(s) {} still terminating after {} s",
                        names.join(", "),
                        limit.as_secs()
                    ));
                    break;
                }
            }
            Err(e) => {
                problems.push(format!("listing the pods of the run: {e}"));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    problems
}

/// How the Job ended, as the launcher saw it.
#[derive(Debug)]
pub enum End {
    /// The container ran to its end: its exit code and the reports it framed.
    Finished {
        exit_code: i32,
        reports: Vec<(String, Vec<u8>)>,
        /// A report frame that was missing or damaged.
        report_problem: Option<String>,
    },
    /// The pod never ran its container: why, with the pod's events.
    NotStarted(String),
    /// `--timeout` passed, or the Job's deadline: what was seen.
    TimedOut(String),
    /// A signal (StopSignals' cancel).
    Interrupted,
    /// The API server failed us.
    Error(String),
}

/// Waiting reasons that will not resolve by waiting.
const HOPELESS: [&str; 6] = [
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// The events of the objects with these uids (the pod, the Job: by uid, so that events of an
/// earlier Job of the same name are not quoted), oldest first, one `reason: message` a line.
pub async fn events(client: &kube::Client, namespace: &str, uids: &[&str]) -> String {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let mut items = Vec::new();
    for uid in uids.iter().filter(|u| !u.is_empty()) {
        let params = ListParams::default().fields(&format!("involvedObject.uid={uid}"));
        if let Ok(list) = api.list(&params).await {
            items.extend(list.items);
        }
    }
    items.sort_by_key(|e| {
        e.last_timestamp
            .clone()
            .or(e.first_timestamp.clone())
            .map(|t| t.0)
    });
    let lines: Vec<String> = items
        .into_iter()
        .map(|e| {
            format!(
                "  {} {}/{}: {}: {}",
                e.type_.unwrap_or_default(),
                e.involved_object.kind.unwrap_or_default(),
                e.involved_object.name.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default().trim()
            )
        })
        .collect();
    if lines.is_empty() {
        "  (no events)".into()
    } else {
        lines.join("\n")
    }
}

fn container_state(pod: &Pod) -> (Option<(String, String)>, Option<i32>, bool) {
    let status = pod.status.as_ref();
    let container = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.iter().find(|c| c.name == CONTAINER));
    let state = container.and_then(|c| c.state.as_ref());
    let waiting = state.and_then(|s| s.waiting.as_ref()).map(|w| {
        (
            w.reason.clone().unwrap_or_default(),
            w.message.clone().unwrap_or_default(),
        )
    });
    let exit = state
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code);
    let running = state.is_some_and(|s| s.running.is_some());
    (waiting, exit, running)
}

/// What [`follow`] watches.
#[derive(Debug, Clone, Copy)]
pub struct Watch<'a> {
    pub namespace: &'a str,
    /// The Job's name.
    pub job: &'a str,
    pub run_id: &'a str,
    /// How long the pod may take to be scheduled and start.
    pub start_limit: Duration,
    /// `--timeout`.
    pub deadline: Instant,
}

/// Follows the Job's pod: waits for it to start (a hopeless waiting reason, or longer than
/// `start_limit` without starting, ends it with the pod's events), streams its console to
/// `out` line by line (report frames taken out), and returns how it ended. `deadline` is
/// `--timeout`; `cancel` a signal.
pub async fn follow(
    client: &kube::Client,
    watch: &Watch<'_>,
    cancel: &CancellationToken,
    out: &mut (dyn FnMut(&str) + Send),
) -> End {
    let Watch {
        namespace,
        job,
        run_id,
        start_limit,
        deadline,
    } = *watch;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = ListParams::default().labels(&format!("{RUN_LABEL}={run_id}"));
    let started = Instant::now();
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), namespace);
    let job_uid = jobs
        .get(job)
        .await
        .ok()
        .and_then(|j| j.metadata.uid)
        .unwrap_or_default();
    let uid_of = |pod: &Pod| pod.metadata.uid.clone().unwrap_or_default();
    // 1. Until the container runs (or already ended).
    let pod_name = loop {
        if cancel.is_cancelled() {
            return End::Interrupted;
        }
        let list = match pods.list(&selector).await {
            Ok(list) => list,
            Err(e) => return End::Error(format!("listing the Job's pod: {e}")),
        };
        if let Some(pod) = list.items.first() {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let (waiting, exit, running) = container_state(pod);
            if running || exit.is_some() {
                break name;
            }
            if let Some((reason, message)) = &waiting {
                if HOPELESS.contains(&reason.as_str()) {
                    return End::NotStarted(format!(
                        "the pod {name} cannot start its container: {reason}: {message}\n  the pod's events:\n{}",
                        events(client, namespace, &[&uid_of(pod), &job_uid]).await
                    ));
                }
            }
            if pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed") {
                break name;
            }
            if started.elapsed() > start_limit {
                let why = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|c| {
                        c.iter()
                            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
                    })
                    .map(|c| {
                        format!(
                            "not scheduled ({}: {})",
                            c.reason.clone().unwrap_or_default(),
                            c.message.clone().unwrap_or_default()
                        )
                    })
                    .or_else(|| waiting.map(|(r, m)| format!("waiting: {r} {m}")))
                    .unwrap_or_else(|| "still pending".into());
                return End::NotStarted(format!(
                    "the pod {name} did not start within {} s: {why}\n  the pod's events:\n{}",
                    start_limit.as_secs(),
                    events(client, namespace, &[&uid_of(pod), &job_uid]).await
                ));
            }
        } else if started.elapsed() > start_limit {
            return End::NotStarted(format!(
                "the Job {job} made no pod within {} s\n  the Job's events:\n{}",
                start_limit.as_secs(),
                events(client, namespace, &[&job_uid]).await
            ));
        }
        if Instant::now() > deadline {
            return End::TimedOut("the pod had not started".into());
        }
        tokio::select! {
            _ = cancel.cancelled() => return End::Interrupted,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    };
    // 2. The console, live.
    let mut frames = FrameReader::new(run_id);
    let params = LogParams {
        container: Some(CONTAINER.into()),
        follow: true,
        ..LogParams::default()
    };
    let mut streamed_whole = false;
    match pods.log_stream(&pod_name, &params).await {
        Ok(stream) => {
            let mut lines = stream.lines();
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return End::Interrupted,
                    _ = tokio::time::sleep_until(deadline.into()) => {
                        return End::TimedOut(format!("the pod {pod_name} was still running"));
                    }
                    line = lines.next() => match line {
                        Some(Ok(line)) => {
                            if !frames.feed(&line) {
                                out(&line);
                            }
                        }
                        Some(Err(_)) => break,
                        None => {
                            streamed_whole = true;
                            break;
                        }
                    }
                }
            }
        }
        Err(e) => out(&format!(
            "(cannot follow the pod's log: {e}; reading it when it ends)"
        )),
    }
    // 3. The container's end.
    let exit_code = loop {
        match pods.get(&pod_name).await {
            Ok(pod) => {
                let (_, exit, _) = container_state(&pod);
                if let Some(code) = exit {
                    break code;
                }
                if pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed") {
                    let pod_uid = uid_of(&pod);
                    let reason = pod
                        .status
                        .and_then(|s| s.reason.or(s.message))
                        .unwrap_or_default();
                    return End::TimedOut(format!(
                        "the pod {pod_name} failed without an exit code ({reason})\n  the pod's events:\n{}",
                        events(client, namespace, &[&pod_uid, &job_uid]).await
                    ));
                }
            }
            Err(e) => return End::Error(format!("reading the pod {pod_name}: {e}")),
        }
        if Instant::now() > deadline {
            return End::TimedOut(format!("the pod {pod_name} was still running"));
        }
        tokio::select! {
            _ = cancel.cancelled() => return End::Interrupted,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    };
    // 4. The reports: from the stream, else from the terminated container's whole log.
    if !streamed_whole || !frames.complete() {
        let params = LogParams {
            container: Some(CONTAINER.into()),
            ..LogParams::default()
        };
        if let Ok(text) = pods.logs(&pod_name, &params).await {
            let mut again = FrameReader::new(run_id);
            for line in text.lines() {
                again.feed(line);
            }
            if again.complete() || again.reports.len() > frames.reports.len() {
                frames = again;
            }
        }
    }
    let report_problem = frames.problem();
    End::Finished {
        exit_code,
        reports: frames.reports,
        report_problem,
    }
}

/// Prints `content` as one report frame (for the pod's stdout).
pub fn encode_frame(tag: &str, name: &str, content: &[u8]) -> String {
    let digest = hex(&Sha256::digest(content));
    let mut text = format!(
        "{FRAME_TAG} {tag} begin {name} {} {digest}\n",
        content.len()
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(content);
    for chunk in encoded.as_bytes().chunks(4096) {
        text.push_str(&format!("{FRAME_TAG} {tag} data "));
        text.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        text.push('\n');
    }
    text.push_str(&format!("{FRAME_TAG} {tag} end {name}\n"));
    text
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Takes report frames out of a log, line by line.
#[derive(Debug)]
pub struct FrameReader {
    prefix: String,
    open: Option<(String, usize, String, String)>,
    pub reports: Vec<(String, Vec<u8>)>,
    problems: Vec<String>,
    ended: bool,
}

impl FrameReader {
    pub fn new(tag: &str) -> FrameReader {
        FrameReader {
            prefix: format!("{FRAME_TAG} {tag} "),
            open: None,
            reports: Vec::new(),
            problems: Vec::new(),
            ended: false,
        }
    }

    /// Whether `line` belonged to a frame (and is not console output).
    pub fn feed(&mut self, line: &str) -> bool {
        let Some(rest) = line.strip_prefix(&self.prefix) else {
            return false;
        };
        let mut words = rest.splitn(2, ' ');
        let what = words.next().unwrap_or_default();
        let rest = words.next().unwrap_or_default();
        match what {
            "begin" => {
                let parts: Vec<&str> = rest.split(' ').collect();
                if let [name, size, digest] = parts[..] {
                    let size = size.parse().unwrap_or(usize::MAX);
                    self.open = Some((name.into(), size, digest.into(), String::new()));
                }
            }
            "data" => {
                if let Some(open) = &mut self.open {
                    open.3.push_str(rest.trim_end());
                }
            }
            "end" => {
                if let Some((name, size, digest, data)) = self.open.take() {
                    let bytes = base64::engine::general_purpose::STANDARD.decode(data.as_bytes());
                    match bytes {
                        Ok(bytes)
                            if bytes.len() == size && hex(&Sha256::digest(&bytes)) == digest =>
                        {
                            self.reports.push((name, bytes));
                        }
                        _ => self
                            .problems
                            .push(format!("{name}: damaged (size or digest differ)")),
                    }
                }
            }
            "done" => self.ended = true,
            _ => {}
        }
        true
    }

    /// The closing line of all frames.
    pub fn done_line(tag: &str) -> String {
        format!("{FRAME_TAG} {tag} done")
    }

    pub fn complete(&self) -> bool {
        self.ended && self.problems.is_empty() && self.open.is_none()
    }

    pub fn problem(&self) -> Option<String> {
        if self.complete() {
            return None;
        }
        let mut problems = self.problems.clone();
        if let Some((name, ..)) = &self.open {
            problems.push(format!("{name}: cut off"));
        }
        if !self.ended {
            problems.push("the pod's log ended before all reports were sent".into());
        }
        Some(problems.join("; "))
    }
}

/// Leftovers of killed `attest job` runs: every object of [`KINDS`] carrying [`RUN_LABEL`],
/// in all namespaces; with `delete`, deleted. Returns (description, run id) and problems.
pub async fn leftovers(
    client: &kube::Client,
    delete: bool,
) -> (Vec<(String, String)>, Vec<String>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for (api_version, kind, _, _) in KINDS.iter().rev() {
        let Some((resource, _)) = kind_of(api_version, kind) else {
            continue;
        };
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let list = match all.list(&ListParams::default().labels(RUN_LABEL)).await {
            Ok(list) => list,
            Err(e) => {
                problems.push(format!("listing {}: {e}", resource.plural));
                continue;
            }
        };
        for object in list.items {
            let name = object.metadata.name.clone().unwrap_or_default();
            let namespace = object.metadata.namespace.clone();
            let run = object
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(RUN_LABEL))
                .cloned()
                .unwrap_or_default();
            let target = Created {
                resource: resource.clone(),
                namespace: namespace.clone(),
                name: name.clone(),
            };
            if delete {
                match api(client, &resource, namespace.as_deref())
                    .delete(&name, &DeleteParams::background())
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => problems.push(format!("deleting {target}: {e}")),
                }
            }
            found.push((target.to_string(), run));
        }
    }
    (found, problems)
}

/// The reports by name, for tests.
pub fn by_name(reports: &[(String, Vec<u8>)]) -> BTreeMap<&str, &[u8]> {
    reports
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_hide_from_the_console() {
        let big: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let mut log = String::from("console line\n");
        log.push_str(&encode_frame("run1", "report.json", &big));
        log.push_str(&encode_frame("run1", "junit.xml", b"<x/>"));
        log.push_str(&FrameReader::done_line("run1"));
        log.push_str("\nattest-report-frame other begin x 1 00\n");
        let mut reader = FrameReader::new("run1");
        let console: Vec<&str> = log.lines().filter(|l| !reader.feed(l)).collect();
        assert_eq!(
            console,
            ["console line", "attest-report-frame other begin x 1 00"]
        );
        assert!(reader.complete(), "{:?}", reader.problem());
        assert_eq!(by_name(&reader.reports)["report.json"], &big[..]);
        assert_eq!(by_name(&reader.reports)["junit.xml"], b"<x/>");
    }

    #[test]
    fn a_cut_or_damaged_frame_is_named() {
        let frame = encode_frame("r", "report.md", b"hello world");
        let mut reader = FrameReader::new("r");
        for line in frame.lines().take(2) {
            reader.feed(line);
        }
        let problem = reader.problem().unwrap();
        assert!(problem.contains("report.md: cut off"), "{problem}");
        let damaged = frame.replace("aGVsbG8gd29ybGQ=", "aGVsbG8gd29ybGR=");
        let mut reader = FrameReader::new("r");
        for line in damaged.lines() {
            reader.feed(line);
        }
        reader.feed(&FrameReader::done_line("r"));
        assert!(reader.problem().unwrap().contains("damaged"));
    }

    #[test]
    fn mark_labels_every_object_and_the_pod_template() {
        let mut docs = vec![
            (
                vec![],
                serde_json::json!({"kind": "ConfigMap", "metadata": {"name": "a"}}),
            ),
            (
                vec![],
                serde_json::json!({"kind": "Job", "metadata": {"name": "j", "labels": {"x": "y"}},
                    "spec": {"template": {"spec": {"containers": [{"name": "attest"}]}}}}),
            ),
        ];
        mark(&mut docs, "run-1");
        assert_eq!(docs[0].1["metadata"]["labels"][RUN_LABEL], "run-1");
        assert_eq!(docs[1].1["metadata"]["labels"]["x"], "y");
        assert_eq!(
            docs[1].1["spec"]["template"]["metadata"]["labels"][RUN_LABEL],
            "run-1"
        );
        assert_eq!(
            docs[1].1["spec"]["template"]["spec"]["containers"][0]["env"][0]["name"],
            FRAME_ENV
        );
    }
}
