//! What the disruptive kinds (`pod-delete`, `node-drain`) observe and do through the API: a
//! pod's facts (UID, node, controller, claims), its owner chain, its claims' volumes, its
//! replacement found by UID, nodes and their cordon (with attest's annotation), pods on a node,
//! PodDisruptionBudgets, evictions. The checks judge; this layer only fetches and acts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, PersistentVolume, PersistentVolumeClaim, Pod,
    Toleration,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams, Preconditions};

use super::pods::{PodError, PodPick, PodRef};
use super::{KubeAccess, KubeError, Selection};
use crate::checks::Permission;

/// The annotation a cordoned node carries while attest drains it: its value is the run's
/// marker (`attest-run <id> suite=… check=… created=…`), so `attest cleanup` can find nodes a
/// killed run left cordoned, and an uncordon never touches a node someone else cordoned.
pub const CORDON_ANNOTATION: &str = "attest.dev/cordoned-by";

/// The annotation kubelets put on mirror pods (static pods), which a drain skips.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Owner kinds whose objects the walk reads (a GET each), so the RBAC preflight can name them;
/// other owners (operators' CRDs) are named from the reference without reading them.
const WALKED: [(&str, &str); 5] = [
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
];

/// `get` on each owner kind the walk may read, in `namespace`.
pub fn owner_permissions(namespace: &str) -> Vec<Permission> {
    WALKED
        .iter()
        .map(|(api, kind)| Permission::new("get", api, kind, Some(namespace)))
        .collect()
}

/// One link of a pod's owner chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    /// `false` when the owner was read and is gone (nothing will recreate the pod).
    pub exists: bool,
}

impl Owner {
    pub fn describe(&self) -> String {
        let gone = if self.exists { "" } else { " (gone)" };
        format!("{} {}{gone}", self.kind, self.name)
    }
}

/// A claim of a pod and the volume it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub name: String,
    pub uid: String,
    /// `spec.volumeName`; empty while unbound.
    pub volume: String,
    pub phase: String,
}

/// What a disruption records about a pod before and after.
#[derive(Debug, Clone)]
pub struct PodFacts {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Empty while unscheduled.
    pub node: String,
    pub phase: String,
    pub ready: bool,
    pub deleting: bool,
    /// The controller's reference (`controller: true`), if any.
    pub controller: Option<Owner>,
    /// Claim names of `persistentVolumeClaim` volumes, in the pod's order.
    pub claims: Vec<String>,
    /// Names of `emptyDir` volumes.
    pub empty_dirs: Vec<String>,
    pub mirror: bool,
    pub labels: BTreeMap<String, String>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
}

impl PodFacts {
    pub fn of(pod: &Pod) -> PodFacts {
        let meta = &pod.metadata;
        let spec = pod.spec.clone().unwrap_or_default();
        let status = pod.status.clone().unwrap_or_default();
        let volumes = spec.volumes.clone().unwrap_or_default();
        let controller = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| Owner {
                api_version: o.api_version.clone(),
                kind: o.kind.clone(),
                name: o.name.clone(),
                uid: o.uid.clone(),
                exists: true,
            });
        PodFacts {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            node: spec.node_name.clone().unwrap_or_default(),
            phase: status.phase.clone().unwrap_or_default(),
            ready: status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
            deleting: meta.deletion_timestamp.is_some(),
            controller,
            claims: volumes
                .iter()
                .filter_map(|v| Some(v.persistent_volume_claim.as_ref()?.claim_name.clone()))
                .collect(),
            empty_dirs: volumes
                .iter()
                .filter(|v| v.empty_dir.is_some())
                .map(|v| v.name.clone())
                .collect(),
            mirror: meta
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION)),
            labels: meta.labels.clone().unwrap_or_default(),
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            tolerations: spec.tolerations.clone().unwrap_or_default(),
        }
    }

    /// `data/postgres-postgresql-0`.
    pub fn place(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn finished(&self) -> bool {
        matches!(self.phase.as_str(), "Succeeded" | "Failed")
    }

    pub fn daemonset(&self) -> bool {
        self.controller
            .as_ref()
            .is_some_and(|c| c.kind == "DaemonSet")
    }

    /// One line for evidence: `pod data/pg-0 (uid 1234…) on k3s-worker-01, Running, Ready`.
    pub fn describe(&self) -> String {
        let node = if self.node.is_empty() {
            "not scheduled".to_owned()
        } else {
            format!("on {}", self.node)
        };
        let mut state = if self.phase.is_empty() {
            "no phase".to_owned()
        } else {
            self.phase.clone()
        };
        state.push_str(if self.ready { ", Ready" } else { ", not Ready" });
        if self.deleting {
            state.push_str(", terminating");
        }
        format!("pod {} (uid {}) {node}, {state}", self.place(), self.uid)
    }
}

fn pods_api(client: kube::Client, namespace: &str) -> Api<Pod> {
    Api::namespaced(client, namespace)
}

/// The one pod a disruptive check means: the named pod, or the only running pod the selector
/// matches (several are refused: which one to disrupt must not be a guess).
pub async fn select_pod(
    access: &KubeAccess,
    pod: &PodRef,
    limit: Duration,
) -> Result<Pod, SelectError> {
    let mut pods = pod.matching(access, limit).await.map_err(|e| match e {
        PodError::Api(e) => SelectError::Api(e),
        PodError::NoPod(why) => SelectError::None(why),
    })?;
    if pods.len() == 1 {
        return Ok(pods.remove(0));
    }
    let names: Vec<String> = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let selector = match &pod.pick {
        PodPick::Selector(selector) => selector.as_str(),
        PodPick::Name(name) => name.as_str(),
    };
    Err(SelectError::Several(format!(
        "{} running pods match {selector} in namespace {}: {}; a disruption needs exactly one",
        names.len(),
        pod.namespace,
        names.join(", ")
    )))
}

/// Why no single pod was selected.
#[derive(Debug, Clone)]
pub enum SelectError {
    Api(KubeError),
    None(String),
    Several(String),
}

impl From<KubeError> for SelectError {
    fn from(e: KubeError) -> Self {
        SelectError::Api(e)
    }
}

/// The pod's controllers, nearest first (`StatefulSet postgres-postgresql`, or `ReplicaSet
/// web-5d9c`, `Deployment web`): each walked kind is read, so a controller that is gone shows as
/// such; the walk stops at a kind it does not read, or an object without a controller.
pub async fn owner_chain(
    access: &KubeAccess,
    facts: &PodFacts,
    limit: Duration,
) -> Result<Vec<Owner>, KubeError> {
    let mut chain = Vec::new();
    let mut next = facts.controller.clone();
    while let Some(mut owner) = next.take() {
        if chain.len() > 5 {
            break;
        }
        let walked = WALKED
            .iter()
            .any(|(api, kind)| *api == owner.api_version && *kind == owner.kind);
        if walked {
            let selection = Selection {
                api_version: owner.api_version.clone(),
                kind: owner.kind.clone(),
                namespace: Some(facts.namespace.clone()),
                name: Some(owner.name.clone()),
                ..Selection::default()
            };
            let found = access.objects(&selection, limit).await?;
            match found.first() {
                Some(object) if object["metadata"]["uid"].as_str() == Some(&owner.uid) => {
                    next = object["metadata"]["ownerReferences"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|o| o["controller"].as_bool() == Some(true))
                        .map(|o| Owner {
                            api_version: o["apiVersion"].as_str().unwrap_or("").to_owned(),
                            kind: o["kind"].as_str().unwrap_or("").to_owned(),
                            name: o["name"].as_str().unwrap_or("").to_owned(),
                            uid: o["uid"].as_str().unwrap_or("").to_owned(),
                            exists: true,
                        });
                }
                // Missing, or a new object of the same name: the pod's controller is gone.
                _ => owner.exists = false,
            }
        }
        chain.push(owner);
    }
    Ok(chain)
}

/// The owner chain as text: `StatefulSet postgres-postgresql`, `ReplicaSet web-5d9c → Deployment web`.
pub fn describe_chain(chain: &[Owner]) -> String {
    chain
        .iter()
        .map(Owner::describe)
        .collect::<Vec<_>>()
        .join(" → ")
}

/// Each claim with its UID and the volume it is bound to.
pub async fn claims(
    access: &KubeAccess,
    namespace: &str,
    names: &[String],
    limit: Duration,
) -> Result<Vec<Claim>, KubeError> {
    let client = access.client(limit).await?;
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client, namespace);
    let mut found = Vec::new();
    for name in names {
        let what = format!("reading claim {namespace}/{name}");
        let claim = access.call(limit, &what, api.get_opt(name)).await?;
        found.push(match claim {
            Some(claim) => Claim {
                name: name.clone(),
                uid: claim.metadata.uid.unwrap_or_default(),
                volume: claim.spec.and_then(|s| s.volume_name).unwrap_or_default(),
                phase: claim.status.and_then(|s| s.phase).unwrap_or_default(),
            },
            None => Claim {
                name: name.clone(),
                uid: String::new(),
                volume: String::new(),
                phase: "missing".into(),
            },
        });
    }
    Ok(found)
}

/// `data-postgres-postgresql-0 → pvc-523f…` for each claim.
pub fn describe_claims(claims: &[Claim]) -> String {
    if claims.is_empty() {
        return "no claims".into();
    }
    claims
        .iter()
        .map(|c| {
            if c.volume.is_empty() {
                format!("{} (unbound, {})", c.name, c.phase)
            } else {
                format!("{} → {}", c.name, c.volume)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn volume(
    access: &KubeAccess,
    name: &str,
    limit: Duration,
) -> Result<Option<PersistentVolume>, KubeError> {
    let client = access.client(limit).await?;
    let api: Api<PersistentVolume> = Api::all(client);
    access
        .call(limit, &format!("reading volume {name}"), api.get_opt(name))
        .await
}

/// What one look for the replacement of `old` saw.
pub enum Replacement {
    /// Ready, with a new UID (and on another node than `avoid`, when given).
    Ready(Box<PodFacts>),
    /// Not yet: what was seen, for the verdict if it never comes.
    NotYet(String),
}

/// One look for the pod that replaces `old`: a pod of the same controller (by UID), or of the
/// same name when it has none, whose UID differs from the old one. Never by name alone: a
/// StatefulSet recreates the same name, and the old pod may still be terminating.
pub async fn replacement(
    access: &KubeAccess,
    old: &PodFacts,
    avoid: Option<&str>,
    limit: Duration,
) -> Result<Replacement, KubeError> {
    let client = access.client(limit).await?;
    let api = pods_api(client, &old.namespace);
    let what = format!("listing pods in {} for the replacement", old.namespace);
    let list = access
        .call(limit, &what, api.list(&ListParams::default()))
        .await?;
    let mut old_still_there = None;
    let mut candidates = Vec::new();
    for pod in &list.items {
        let facts = PodFacts::of(pod);
        if facts.uid == old.uid {
            old_still_there = Some(facts);
            continue;
        }
        let same_workload = match (&old.controller, &facts.controller) {
            (Some(a), Some(b)) => a.uid == b.uid,
            (None, _) => facts.name == old.name,
            _ => false,
        };
        if same_workload && !facts.deleting {
            candidates.push(facts);
        }
    }
    candidates.sort_by_key(|c| (c.name != old.name, c.name.clone()));
    if let Some(ready) = candidates
        .iter()
        .find(|c| c.ready && avoid.is_none_or(|node| c.node != node))
    {
        return Ok(Replacement::Ready(Box::new(ready.clone())));
    }
    let whose = match &old.controller {
        Some(c) => format!("of {} {}", c.kind, c.name),
        None => format!("named {}", old.name),
    };
    let seen = match (candidates.first(), old_still_there) {
        (Some(c), _) if c.ready => format!(
            "{} is Ready but still on {} (expected another node)",
            c.describe(),
            c.node
        ),
        (Some(c), _) => c.describe(),
        (None, Some(old)) => format!(
            "no new pod {whose} yet; the old {}",
            old.describe().trim_start_matches("pod ")
        ),
        (None, None) => format!("no new pod {whose} (the old one is gone)"),
    };
    Ok(Replacement::NotYet(seen))
}

/// Polls [`replacement`] every `interval` until it is Ready or `until` passes; the last
/// observation when it never came.
pub async fn wait_replacement(
    access: &KubeAccess,
    old: &PodFacts,
    avoid: Option<&str>,
    until: Instant,
    interval: Duration,
) -> Result<PodFacts, String> {
    let mut last = "nothing observed yet".to_owned();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(last);
        }
        match replacement(access, old, avoid, left).await {
            Ok(Replacement::Ready(facts)) => return Ok(*facts),
            Ok(Replacement::NotYet(seen)) => last = seen,
            Err(e) if e.retryable() => last = e.to_string(),
            Err(e) => return Err(e.to_string()),
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(last);
        }
        tokio::time::sleep(interval.min(left)).await;
    }
}

/// Delete options for exactly this pod: a UID precondition, so a pod recreated meanwhile
/// under the same name is never the one deleted or evicted.
fn exactly(facts: &PodFacts, grace_period: Option<u32>) -> DeleteParams {
    DeleteParams {
        grace_period_seconds: grace_period,
        preconditions: Some(Preconditions {
            uid: Some(facts.uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    }
}

/// Deletes exactly this pod (a UID precondition: a pod recreated meanwhile under the same name
/// is never the one deleted).
pub async fn delete_pod(
    access: &KubeAccess,
    facts: &PodFacts,
    grace_period: Option<u32>,
    limit: Duration,
) -> Result<(), KubeError> {
    let client = access.client(limit).await?;
    let api = pods_api(client, &facts.namespace);
    let params = exactly(facts, grace_period);
    let what = format!("deleting pod {}", facts.place());
    match access
        .call(limit, &what, api.delete(&facts.name, &params))
        .await
    {
        Ok(_) | Err(KubeError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether the pod of this UID is gone (deleted, or replaced by a pod of the same name).
pub async fn pod_gone(
    access: &KubeAccess,
    facts: &PodFacts,
    limit: Duration,
) -> Result<bool, KubeError> {
    let client = access.client(limit).await?;
    let api = pods_api(client, &facts.namespace);
    let what = format!("reading pod {}", facts.place());
    Ok(
        match access.call(limit, &what, api.get_opt(&facts.name)).await? {
            None => true,
            Some(pod) => pod.metadata.uid.as_deref() != Some(&facts.uid),
        },
    )
}

/// How an eviction went.
pub enum Eviction {
    /// Accepted (or the pod was already gone).
    Done,
    /// 429: a PodDisruptionBudget does not allow it now; the server's message.
    Blocked(String),
}

/// Evicts one pod through the Eviction API (policy/v1), so PodDisruptionBudgets apply.
pub async fn evict(
    access: &KubeAccess,
    facts: &PodFacts,
    grace_period: Option<u32>,
    limit: Duration,
) -> Result<Eviction, KubeError> {
    let client = access.unretried_client(limit).await?;
    let api = pods_api(client, &facts.namespace);
    let params = EvictParams {
        delete_options: Some(exactly(facts, grace_period)),
        ..EvictParams::default()
    };
    let what = format!("evicting pod {}", facts.place());
    match access
        .call(limit, &what, api.evict(&facts.name, &params))
        .await
    {
        Ok(_) | Err(KubeError::NotFound { .. }) => Ok(Eviction::Done),
        // The UID precondition failed: the pod we meant is gone, another has its name.
        Err(KubeError::Conflict { .. }) => Ok(Eviction::Done),
        Err(KubeError::TooManyRequests { message, .. }) => Ok(Eviction::Blocked(message)),
        Err(e) => Err(e),
    }
}

pub async fn node(
    access: &KubeAccess,
    name: &str,
    limit: Duration,
) -> Result<Option<Node>, KubeError> {
    let client = access.client(limit).await?;
    let api: Api<Node> = Api::all(client);
    access
        .call(limit, &format!("reading node {name}"), api.get_opt(name))
        .await
}

pub async fn nodes(access: &KubeAccess, limit: Duration) -> Result<Vec<Node>, KubeError> {
    let client = access.client(limit).await?;
    let api: Api<Node> = Api::all(client);
    Ok(access
        .call(limit, "listing nodes", api.list(&ListParams::default()))
        .await?
        .items)
}

pub fn unschedulable(node: &Node) -> bool {
    node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
}

pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

pub fn cordon_marker(node: &Node) -> Option<String> {
    node.metadata
        .annotations
        .as_ref()?
        .get(CORDON_ANNOTATION)
        .cloned()
}

/// Cordons `name` and marks it with `marker` (one merge patch).
pub async fn cordon(
    access: &KubeAccess,
    name: &str,
    marker: &str,
    limit: Duration,
) -> Result<(), KubeError> {
    set_cordon(access, name, Some(marker), limit).await
}

/// One merge patch: cordoned with attest's `marker`, or schedulable with no mark (`None`).
async fn set_cordon(
    access: &KubeAccess,
    name: &str,
    marker: Option<&str>,
    limit: Duration,
) -> Result<(), KubeError> {
    let client = access.client(limit).await?;
    let api: Api<Node> = Api::all(client);
    let patch = serde_json::json!({
        "metadata": {"annotations": {CORDON_ANNOTATION: marker}},
        "spec": {"unschedulable": marker.is_some()},
    });
    let what = match marker {
        Some(_) => format!("cordoning node {name}"),
        None => format!("uncordoning node {name}"),
    };
    access
        .call(
            limit,
            &what,
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await
        .map(|_| ())
}

/// Uncordons `name` and removes the mark, only if it carries attest's mark (`marker`, or any
/// attest mark when `None`): a node someone cordoned by hand, or that was cordoned before the
/// run, is never made schedulable. Returns whether it uncordoned.
pub async fn uncordon(
    access: &KubeAccess,
    name: &str,
    marker: Option<&str>,
    limit: Duration,
) -> Result<bool, KubeError> {
    let Some(found) = node(access, name, limit).await? else {
        return Ok(false);
    };
    let ours = match (cordon_marker(&found), marker) {
        (Some(found), Some(wanted)) => found == wanted,
        (Some(found), None) => found.starts_with(crate::cleanup::MARKER_PREFIX),
        (None, _) => false,
    };
    if !ours {
        return Ok(false);
    }
    set_cordon(access, name, None, limit).await.map(|()| true)
}

/// Nodes carrying attest's cordon mark: name, mark, and whether still unschedulable.
pub async fn marked_nodes(
    access: &KubeAccess,
    limit: Duration,
) -> Result<Vec<(String, String, bool)>, KubeError> {
    Ok(nodes(access, limit)
        .await?
        .iter()
        .filter_map(|n| {
            let mark = cordon_marker(n)?;
            mark.starts_with(crate::cleanup::MARKER_PREFIX).then(|| {
                (
                    n.metadata.name.clone().unwrap_or_default(),
                    mark,
                    unschedulable(n),
                )
            })
        })
        .collect())
}

/// Every pod on `node`, in all namespaces.
pub async fn pods_on_node(
    access: &KubeAccess,
    node: &str,
    limit: Duration,
) -> Result<Vec<PodFacts>, KubeError> {
    let client = access.client(limit).await?;
    let api: Api<Pod> = Api::all(client);
    let params = ListParams::default().fields(&format!("spec.nodeName={node}"));
    let what = format!("listing pods on node {node}");
    let mut pods: Vec<PodFacts> = access
        .call(limit, &what, api.list(&params))
        .await?
        .items
        .iter()
        .map(PodFacts::of)
        .collect();
    pods.sort_by_key(PodFacts::place);
    Ok(pods)
}

pub async fn budgets(
    access: &KubeAccess,
    limit: Duration,
) -> Result<Vec<PodDisruptionBudget>, KubeError> {
    let client = access.client(limit).await?;
    let api: Api<PodDisruptionBudget> = Api::all(client);
    Ok(access
        .call(
            limit,
            "listing PodDisruptionBudgets",
            api.list(&ListParams::default()),
        )
        .await?
        .items)
}

/// The budgets that cover `pod` (same namespace, selector matches its labels).
pub fn budgets_of<'a>(
    budgets: &'a [PodDisruptionBudget],
    pod: &PodFacts,
) -> Vec<&'a PodDisruptionBudget> {
    budgets
        .iter()
        .filter(|b| b.metadata.namespace.as_deref() == Some(&pod.namespace))
        .filter(|b| {
            b.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                // policy/v1: an empty selector selects every pod of the namespace, none none.
                .is_some_and(|s| selector_matches(s, &pod.labels))
        })
        .collect()
}

/// `data/postgres-postgresql (0 disruptions allowed)`.
pub fn describe_budget(budget: &PodDisruptionBudget) -> String {
    let allowed = budget.status.as_ref().map_or(0, |s| s.disruptions_allowed);
    format!(
        "{}/{} ({allowed} disruption{} allowed)",
        budget.metadata.namespace.as_deref().unwrap_or(""),
        budget.metadata.name.as_deref().unwrap_or(""),
        if allowed == 1 { "" } else { "s" }
    )
}

/// Whether a label selector selects these labels.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.clone().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

/// Whether a node's labels meet one node selector requirement (PV node affinity, pod affinity).
fn requirement_holds(req: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&req.key);
    let values = req.values.clone().unwrap_or_default();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if req.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Whether a node's labels meet any of the terms (terms are ORed, requirements ANDed).
pub fn terms_hold(terms: &[NodeSelectorTerm], labels: &BTreeMap<String, String>) -> bool {
    terms.iter().any(|t| {
        t.match_expressions
            .iter()
            .flatten()
            .all(|r| requirement_holds(r, labels))
    })
}

/// `kubernetes.io/hostname In [k3s-worker-01]`.
pub fn describe_terms(terms: &[NodeSelectorTerm]) -> String {
    terms
        .iter()
        .map(|t| {
            t.match_expressions
                .iter()
                .flatten()
                .map(|r| {
                    let values = r.values.clone().unwrap_or_default();
                    if values.is_empty() {
                        format!("{} {}", r.key, r.operator)
                    } else {
                        format!("{} {} [{}]", r.key, r.operator, values.join(", "))
                    }
                })
                .collect::<Vec<_>>()
                .join(" and ")
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The required node affinity of a volume, if it has one (local-path, local PVs).
pub fn volume_affinity(volume: &PersistentVolume) -> Option<Vec<NodeSelectorTerm>> {
    let terms = volume
        .spec
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required
        .as_ref()?
        .node_selector_terms
        .clone();
    (!terms.is_empty()).then_some(terms)
}

/// Why `pod` could not run on `node` (schedulable, Ready, its nodeSelector, the taints it does
/// not tolerate), or `None` when it could as far as these go. Resources and affinities other
/// than the nodeSelector are left to the scheduler.
pub fn unfit(node: &Node, pod: &PodFacts) -> Option<String> {
    if unschedulable(node) {
        return Some("cordoned".into());
    }
    if !node_ready(node) {
        return Some("not Ready".into());
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    if let Some((k, v)) = pod
        .node_selector
        .iter()
        .find(|(k, v)| labels.get(*k) != Some(*v))
    {
        return Some(format!("nodeSelector {k}={v} does not match"));
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    for taint in taints {
        if taint.effect == "PreferNoSchedule" {
            continue;
        }
        let tolerated = pod.tolerations.iter().any(|t| {
            let key_ok = t
                .key
                .as_deref()
                .is_none_or(|k| k.is_empty() || k == taint.key);
            let effect_ok = t
                .effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == taint.effect);
            let value_ok = match t.operator.as_deref() {
                Some("Exists") => true,
                _ => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
            };
            // An empty key with Exists tolerates everything.
            key_ok
                && effect_ok
                && value_ok
                && (t.key.is_some() || t.operator.as_deref() == Some("Exists"))
        });
        if !tolerated {
            return Some(format!(
                "taint {}:{} not tolerated",
                taint.key, taint.effect
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn volume_affinity_terms_match_like_the_scheduler() {
        let terms: Vec<NodeSelectorTerm> = serde_json::from_value(serde_json::json!([
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["w1"]}]}
        ]))
        .unwrap();
        assert!(terms_hold(
            &terms,
            &labels(&[("kubernetes.io/hostname", "w1")])
        ));
        assert!(!terms_hold(
            &terms,
            &labels(&[("kubernetes.io/hostname", "w2")])
        ));
        assert_eq!(describe_terms(&terms), "kubernetes.io/hostname In [w1]");
    }

    #[test]
    fn budgets_select_by_labels_and_expressions() {
        let selector: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"app": "pg"},
            "matchExpressions": [{"key": "role", "operator": "NotIn", "values": ["replica"]}]
        }))
        .unwrap();
        assert!(selector_matches(&selector, &labels(&[("app", "pg")])));
        assert!(!selector_matches(
            &selector,
            &labels(&[("app", "pg"), ("role", "replica")])
        ));
        assert!(!selector_matches(&selector, &labels(&[("app", "web")])));
    }

    #[test]
    fn a_node_fits_unless_cordoned_unready_mislabelled_or_tainted() {
        let node = |extra: serde_json::Value| -> Node {
            let mut base = serde_json::json!({
                "metadata": {"name": "w2", "labels": {"disk": "ssd"}},
                "spec": {},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            });
            if let Some(spec) = extra.get("spec") {
                base["spec"] = spec.clone();
            }
            serde_json::from_value(base).unwrap()
        };
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "n", "uid": "u"},
            "spec": {"containers": [], "nodeSelector": {"disk": "ssd"},
                     "tolerations": [{"key": "attest.dev/real-node", "operator": "Exists"}]},
        }))
        .unwrap();
        let facts = PodFacts::of(&pod);
        assert_eq!(unfit(&node(serde_json::json!({})), &facts), None);
        assert_eq!(
            unfit(
                &node(serde_json::json!({"spec": {"unschedulable": true}})),
                &facts
            ),
            Some("cordoned".into())
        );
        let tainted = serde_json::json!({"spec": {"taints": [
            {"key": "attest.dev/real-node", "value": "x", "effect": "NoSchedule"}]}});
        assert_eq!(unfit(&node(tainted), &facts), None);
        let other =
            serde_json::json!({"spec": {"taints": [{"key": "gpu", "effect": "NoSchedule"}]}});
        assert_eq!(
            unfit(&node(other), &facts),
            Some("taint gpu:NoSchedule not tolerated".into())
        );
    }
}
