//! `node-drain`: drains the node hosting a selected pod (or a named node) the way `kubectl
//! drain` does (kubectl's pkg/drain): cordon, evict through the Eviction API so
//! PodDisruptionBudgets apply, skip DaemonSet and mirror pods, refuse pods with emptyDir data
//! or without a controller unless opted in; then proves the selected pod's replacement is
//! Ready on another node with the same claims. Before it touches anything it checks that the
//! move can succeed (another node that fits, no volume pinned to this node, not attest's own
//! node). It always uncordons a node it cordoned (the uncordon is registered as teardown before
//! the cordon), and never one that was cordoned before.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use schemars::JsonSchema;
use serde::Deserialize;

use super::pod_delete::{self, Before};
use super::{FieldProblem, Kind, Permission, Verdict};
use crate::context::CheckContext;
use crate::duration::format_duration;
use crate::k8s::disruption::{self as dis, Eviction, PodFacts};
use crate::k8s::pods::PodRef;
use crate::k8s::KubeAccess;
use crate::safety::Safety;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeDrainCheck {
    /// The pod whose node is drained, and whose replacement must be Ready on another node with
    /// the same claims: `name:`, or a `selector:` matching exactly one running pod.
    #[serde(default)]
    pub pod: Option<PodRef>,
    /// A node to drain by name (instead of `pod:`): passes once every pod it evicts is gone.
    #[serde(default)]
    pub node: Option<String>,
    /// Seconds each evicted pod gets to stop (default: its own `terminationGracePeriodSeconds`).
    #[serde(default)]
    pub grace_period: Option<u32>,
    /// Evict pods with `emptyDir` volumes too, losing that data (kubectl's
    /// `--delete-emptydir-data`); without it, such a pod is a refusal before the cordon.
    #[serde(default)]
    pub delete_emptydir_data: bool,
    /// Evict pods without a controller too; nothing recreates them (kubectl's `--force`).
    #[serde(default)]
    pub force: bool,
}

/// How long after a 429 (a PodDisruptionBudget) an eviction is tried again. kubectl waits 5 s;
/// a shorter wait sees a budget that opens sooner, at one request per pod per second.
const EVICT_RETRY: Duration = Duration::from_secs(1);

/// The pods a drain of one node means.
struct Plan {
    evict: Vec<PodFacts>,
    /// `ns/name (DaemonSet)`, `(mirror pod)`, `(finished)`, `(already terminating)`.
    skipped: Vec<String>,
    /// What blocks the drain unless opted in.
    refused: Vec<String>,
}

impl NodeDrainCheck {
    fn plan(&self, pods: Vec<PodFacts>) -> Plan {
        let mut plan = Plan {
            evict: Vec::new(),
            skipped: Vec::new(),
            refused: Vec::new(),
        };
        for pod in pods {
            let why_skip = if pod.mirror {
                Some("mirror pod")
            } else if pod.daemonset() {
                Some("DaemonSet")
            } else if pod.finished() {
                Some("finished")
            } else if pod.deleting {
                Some("already terminating")
            } else {
                None
            };
            if let Some(why) = why_skip {
                plan.skipped.push(format!("{} ({why})", pod.place()));
                continue;
            }
            if !pod.empty_dirs.is_empty() && !self.delete_emptydir_data {
                plan.refused.push(format!(
                    "{} has emptyDir data ({}), lost on eviction (opt in with `delete_emptydir_data: true`)",
                    pod.place(),
                    pod.empty_dirs.join(", ")
                ));
                continue;
            }
            if pod.controller.is_none() && !self.force {
                plan.refused.push(format!(
                    "{} has no controller: nothing would recreate it (opt in with `force: true`)",
                    pod.place()
                ));
                continue;
            }
            plan.evict.push(pod);
        }
        plan
    }
}

/// The node attest itself runs on, when it runs in a pod: `ATTEST_NODE_NAME` (the downward
/// API's `spec.nodeName`), else its own pod's. `Err` when in a pod and that cannot be read.
async fn own_node(access: &KubeAccess, limit: Duration) -> Result<Option<String>, String> {
    if let Some(node) = std::env::var(crate::vantage::NODE_NAME_ENV)
        .ok()
        .filter(|n| !n.is_empty())
    {
        return Ok(Some(node));
    }
    let Ok(namespace) =
        std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    else {
        return Ok(None);
    };
    let Ok(pod) = std::env::var("HOSTNAME") else {
        return Ok(None);
    };
    let client = access.client(limit).await.map_err(|e| e.to_string())?;
    let api: kube::Api<Pod> = kube::Api::namespaced(client, namespace.trim());
    match access
        .call(limit, "reading attest's own pod", api.get_opt(&pod))
        .await
    {
        Ok(Some(pod)) => Ok(pod.spec.and_then(|s| s.node_name)),
        Ok(None) => Ok(None),
        Err(e) => Err(format!(
            "attest runs in a pod and cannot tell its own node ({e}); set ATTEST_NODE_NAME from the downward API (fieldRef spec.nodeName)"
        )),
    }
}

impl Kind for NodeDrainCheck {
    const SAFETY: Safety = Safety::Destructive;
    const DESCRIPTION: &'static str = "Drains the node of a selected pod (or a named node) like `kubectl drain`: checks first that the move can succeed, cordons with attest's annotation, evicts through the Eviction API (PodDisruptionBudgets apply), waits for the pod's replacement Ready on another node with the same claims, and always uncordons a node it cordoned. `register` exports the new pod's name, namespace, uid and node, previous_uid, previous_node and volume.";
    const EXPORTS: &'static [(&'static str, bool)] = pod_delete::EXPORTS;

    fn target(&self) -> String {
        match (&self.pod, &self.node) {
            (Some(pod), _) => format!("the node of {}", pod.describe()),
            (None, Some(node)) => format!("node {node}"),
            (None, None) => String::new(),
        }
    }

    fn permissions(&self) -> Vec<Permission> {
        let mut permissions = self
            .pod
            .as_ref()
            .map(pod_delete::pod_permissions)
            .unwrap_or_default();
        // The node is known before the run only when named; the other nodes are listed
        // to find one the pods fit on.
        let node = |verb: &str| match &self.node {
            Some(name) => Permission::new(verb, "v1", "Node", None).named(name),
            None => Permission::new(verb, "v1", "Node", None),
        };
        permissions.extend([
            node("get"),
            Permission::new("list", "v1", "Node", None),
            node("patch"),
            // The pods on the node, in every namespace, and their eviction.
            Permission::new("list", "v1", "Pod", None),
            Permission::new("create", "v1", "Pod", None).subresource("eviction"),
            Permission::new("list", "policy/v1", "PodDisruptionBudget", None),
        ]);
        permissions
    }

    fn validate(&self) -> Vec<FieldProblem> {
        let mut problems = Vec::new();
        match (&self.pod, &self.node) {
            (None, None) => problems.push(FieldProblem::new(
                "",
                "expected `pod:` (drain the node that hosts it) or `node:` (a node by name), found neither",
            )),
            (Some(_), Some(_)) => problems.push(FieldProblem::new(
                "node",
                "expected `pod:` or `node:`, found both; the pod decides the node, so keep one",
            )),
            _ => {}
        }
        if self.pod.as_ref().is_some_and(|p| p.container.is_some()) {
            problems.push(FieldProblem::new(
                "pod.container",
                "a drain moves whole pods; remove `container:`",
            ));
        }
        problems
    }

    async fn observe(&self, ctx: &CheckContext) -> Verdict {
        let access = ctx.services.kube.clone();
        let until = pod_delete::wait_until(ctx, Duration::from_secs(3));
        let api = |e: &crate::k8s::KubeError| super::kube_object::api_verdict(e);

        // 1. What moves, and from where.
        let before = match &self.pod {
            Some(pod) => {
                let pod = match pod_delete::expanded(pod, ctx) {
                    Ok(pod) => pod,
                    Err(e) => return Verdict::error(e),
                };
                match pod_delete::record(&access, &pod, ctx.remaining()).await {
                    Ok(before) => Some(before),
                    Err(verdict) => return verdict,
                }
            }
            None => None,
        };
        let node_name = match (&before, &self.node) {
            (Some(before), _) => before.facts.node.clone(),
            (None, Some(node)) => match ctx.expand(node) {
                Ok(node) => node,
                Err(e) => return Verdict::error(e),
            },
            (None, None) => return Verdict::error("no pod or node to drain"),
        };
        if node_name.is_empty() {
            return Verdict::fail(format!(
                "{} is not scheduled on any node; nothing to drain",
                before
                    .as_ref()
                    .map(|b| b.facts.describe())
                    .unwrap_or_default()
            ));
        }
        let node = match dis::node(&access, &node_name, ctx.remaining()).await {
            Ok(Some(node)) => node,
            Ok(None) => return Verdict::fail(format!("no node {node_name}")),
            Err(e) => return api(&e),
        };
        let was_cordoned = dis::unschedulable(&node);

        // 2. Before touching anything: can the move succeed?
        match own_node(&access, ctx.remaining()).await {
            Ok(Some(own)) if own == node_name => {
                return refused(
                    &node_name,
                    format!("attest itself runs on node {node_name}; draining it would evict this run"),
                    "run attest on another node (a nodeSelector or anti-affinity on its Job), or drain from outside the cluster",
                )
            }
            Ok(_) => {}
            Err(why) => return refused(&node_name, why, "grant `get pods` in attest's namespace, or set ATTEST_NODE_NAME"),
        }
        let pods = match dis::pods_on_node(&access, &node_name, ctx.remaining()).await {
            Ok(pods) => pods,
            Err(e) => return api(&e),
        };
        let plan = self.plan(pods);
        if !plan.refused.is_empty() {
            return refused(
                &node_name,
                format!("the drain would lose pods: {}", plan.refused.join("; ")),
                "opt in with the field named, or move those pods first",
            );
        }
        if let Some(before) = &before {
            if !plan.evict.iter().any(|p| p.uid == before.facts.uid) {
                return refused(
                    &node_name,
                    format!(
                        "a drain does not move {} ({})",
                        before.facts.place(),
                        dis::describe_chain(&before.chain)
                    ),
                    "a DaemonSet or mirror pod stays on its node; select the workload's own pod",
                );
            }
        }
        let all_nodes = match dis::nodes(&access, ctx.remaining()).await {
            Ok(nodes) => nodes,
            Err(e) => return api(&e),
        };
        let anyone = PodFacts::of(&Pod::default());
        let mover = before.as_ref().map_or(&anyone, |b| &b.facts);
        let mut unfit_nodes = Vec::new();
        let candidates: Vec<_> = all_nodes
            .iter()
            .filter(|n| n.metadata.name.as_deref() != Some(&node_name))
            .filter(|n| match dis::unfit(n, mover) {
                None => true,
                Some(why) => {
                    unfit_nodes.push(format!(
                        "{} ({why})",
                        n.metadata.name.as_deref().unwrap_or("")
                    ));
                    false
                }
            })
            .collect();
        if candidates.is_empty() {
            let others = if unfit_nodes.is_empty() {
                "there is no other node".to_owned()
            } else {
                format!("other nodes: {}", unfit_nodes.join(", "))
            };
            return refused(
                &node_name,
                format!(
                    "no other schedulable node could take {}: {others}",
                    mover_name(&before)
                ),
                "a drain needs somewhere to go: uncordon or add a node, or tolerate its taints",
            );
        }
        if let Some(before) = &before {
            for claim in before.claims.iter().filter(|c| !c.volume.is_empty()) {
                let volume = match dis::volume(&access, &claim.volume, ctx.remaining()).await {
                    Ok(Some(volume)) => volume,
                    Ok(None) => continue,
                    Err(e) => return api(&e),
                };
                let Some(terms) = dis::volume_affinity(&volume) else {
                    continue;
                };
                let reachable = candidates.iter().any(|n| {
                    dis::terms_hold(&terms, &n.metadata.labels.clone().unwrap_or_default())
                });
                if !reachable {
                    return refused(
                        &node_name,
                        format!(
                            "volume {} (claim {}) is pinned to this node by its node affinity {}; after the drain {} could start on no other node",
                            claim.volume,
                            claim.name,
                            dis::describe_terms(&terms),
                            before.facts.place()
                        ),
                        "node-local storage (local-path, local PVs) cannot follow a pod; use networked storage (NFS, Longhorn, Ceph) to test this",
                    );
                }
            }
        }
        let budgets = match dis::budgets(&access, ctx.remaining()).await {
            Ok(budgets) => budgets,
            Err(e) => return api(&e),
        };
        let mut budget_notes: Vec<String> = plan
            .evict
            .iter()
            .flat_map(|p| dis::budgets_of(&budgets, p))
            .map(dis::describe_budget)
            .collect();
        budget_notes.dedup();
        let evidence = Evidence {
            node: node_name.clone(),
            evicting: plan.evict.iter().map(PodFacts::place).collect(),
            skipped: plan.skipped.clone(),
            budgets: budget_notes,
            targets: candidates
                .iter()
                .filter_map(|n| n.metadata.name.clone())
                .collect(),
        };

        // 3. Cordon, its undo registered first.
        let marker = ctx.marker();
        if !was_cordoned {
            let (undo_access, undo_node, undo_marker) =
                (access.clone(), node_name.clone(), marker.clone());
            ctx.on_teardown(format!("uncordon node {node_name}"), async move {
                dis::uncordon(
                    &undo_access,
                    &undo_node,
                    Some(&undo_marker),
                    Duration::from_secs(20),
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
            });
            if let Err(e) = dis::cordon(&access, &node_name, &marker, ctx.remaining()).await {
                return api(&e);
            }
        }
        let verdict = self
            .drain(
                ctx,
                &access,
                &plan,
                before.as_ref(),
                &node_name,
                until,
                &budgets,
            )
            .await;
        let verdict = verdict.measure("evicted_pods", plan.evict.len() as f64);
        let verdict = evidence.append(verdict);
        // The other pods the drain moved belong in the row itself, not only in its details.
        let selected = before.as_ref().map(|b| b.facts.place());
        let others: Vec<&String> = evidence
            .evicting
            .iter()
            .filter(|p| Some(*p) != selected.as_ref())
            .collect();
        let verdict = match others.is_empty() {
            true => verdict,
            false => with_note(
                verdict,
                format!(
                    "also evicted from {node_name}: {}",
                    others
                        .iter()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        };

        // 4. Uncordon now (the teardown covers the paths that never get here).
        if was_cordoned {
            return with_note(
                verdict,
                format!("node {node_name} was cordoned before the run and stays cordoned"),
            );
        }
        match dis::uncordon(&access, &node_name, Some(&marker), ctx.remaining()).await {
            Ok(_) => with_note(verdict, format!("node {node_name} uncordoned")),
            Err(e) => with_note(
                verdict,
                format!("uncordoning node {node_name} failed ({e}); teardown tries again"),
            ),
        }
    }
}

impl NodeDrainCheck {
    /// Evicts every planned pod (retrying those a budget blocks), waits until they are gone
    /// by UID, then for the selected pod's replacement on another node.
    #[allow(clippy::too_many_arguments)]
    async fn drain(
        &self,
        ctx: &CheckContext,
        access: &Arc<KubeAccess>,
        plan: &Plan,
        before: Option<&Before>,
        node: &str,
        until: Instant,
        budgets_at_start: &[k8s_openapi::api::policy::v1::PodDisruptionBudget],
    ) -> Verdict {
        let started = Instant::now();
        let mut pending: Vec<&PodFacts> = plan.evict.iter().collect();
        let mut evicted_at = None;
        let mut blocked: Vec<(&PodFacts, String)>;
        loop {
            blocked = Vec::new();
            for pod in pending {
                match dis::evict(access, pod, self.grace_period, ctx.remaining()).await {
                    Ok(Eviction::Done) => {
                        if before.is_some_and(|b| b.facts.uid == pod.uid) {
                            evicted_at = Some(Instant::now());
                        }
                    }
                    Ok(Eviction::Blocked(message)) => blocked.push((pod, message)),
                    Err(e) => {
                        return super::kube_object::api_verdict(&e).hint(
                            "the eviction failed for another reason than a budget; kubectl drain stops here too",
                        )
                    }
                }
            }
            if blocked.is_empty() {
                break;
            }
            if Instant::now() + EVICT_RETRY >= until {
                // The budgets as they are now, for the verdict.
                let budgets = dis::budgets(access, ctx.remaining())
                    .await
                    .unwrap_or_else(|_| budgets_at_start.to_vec());
                let named: Vec<String> = blocked
                    .iter()
                    .map(|(pod, message)| {
                        let theirs: Vec<String> = dis::budgets_of(&budgets, pod)
                            .into_iter()
                            .map(|b| format!("PodDisruptionBudget {}", dis::describe_budget(b)))
                            .collect();
                        if theirs.is_empty() {
                            format!("{}: {message}", pod.place())
                        } else {
                            format!("{} blocked by {}", pod.place(), theirs.join(", "))
                        }
                    })
                    .collect();
                let first = &named[0];
                let summary = match first.split_once(" blocked by ") {
                    Some((_, budget)) => format!(
                        "blocked by {budget}: {} could not be evicted from {node} within {}",
                        blocked[0].0.place(),
                        format_duration(started.elapsed())
                    ),
                    None => format!(
                        "eviction refused within {}: {first}",
                        format_duration(started.elapsed())
                    ),
                };
                return Verdict::fail(summary)
                    .expected("every pod on the node evicted")
                    .found(named.join("; "))
                    .hint("a budget of minAvailable 1 on a single replica never allows a voluntary disruption: lower it (maxUnavailable: 1) for the test, or add a replica");
            }
            tokio::time::sleep(EVICT_RETRY).await;
            pending = blocked.iter().map(|(p, _)| *p).collect();
        }
        let evicted_at = evicted_at.unwrap_or(started);

        // Gone by UID (the same name may already be back, elsewhere).
        loop {
            let left: Vec<&PodFacts> = match dis::pods_on_node(access, node, ctx.remaining()).await
            {
                Ok(now) => plan
                    .evict
                    .iter()
                    .filter(|p| now.iter().any(|n| n.uid == p.uid))
                    .collect(),
                Err(e) if e.retryable() => plan.evict.iter().collect(),
                Err(e) => return super::kube_object::api_verdict(&e),
            };
            if left.is_empty() {
                break;
            }
            if Instant::now() + pod_delete::POLL >= until {
                return Verdict::fail(format!(
                    "evicted pods still on {node} after {}: {}",
                    format_duration(started.elapsed()),
                    left.iter().map(|p| p.describe()).collect::<Vec<_>>().join("; ")
                ))
                .hint("a pod stuck terminating: a finalizer, or a kubelet that does not answer (`kubectl describe pod`)");
            }
            tokio::time::sleep(pod_delete::POLL).await;
        }
        let Some(before) = before else {
            return Verdict::pass(format!(
                "drained node {node}: {} pod(s) evicted and gone in {}",
                plan.evict.len(),
                format_duration(started.elapsed())
            ));
        };
        match dis::wait_replacement(access, &before.facts, Some(node), until, pod_delete::POLL)
            .await
        {
            Ok(after) => {
                pod_delete::judge_replacement(
                    access,
                    before,
                    &after,
                    "evicted",
                    evicted_at.elapsed(),
                    ctx.remaining(),
                )
                .await
            }
            Err(last) => pod_delete::no_replacement(before, evicted_at.elapsed(), &last),
        }
    }
}

fn mover_name(before: &Option<Before>) -> String {
    match before {
        Some(before) => before.facts.place(),
        None => "its pods".into(),
    }
}

/// A drain refused before the cordon: nothing was touched.
fn refused(node: &str, why: String, hint: &str) -> Verdict {
    Verdict::fail(format!(
        "refused to drain node {node}: {why}; nothing was cordoned or evicted"
    ))
    .hint(hint)
}

fn with_note(mut verdict: Verdict, note: String) -> Verdict {
    verdict.summary = format!("{}; {note}", verdict.summary);
    verdict
}

/// What the drain's preflight saw, for the report: every pod it evicts, the ones it leaves,
/// the budgets and the nodes the pods can go to.
struct Evidence {
    node: String,
    evicting: Vec<String>,
    skipped: Vec<String>,
    budgets: Vec<String>,
    targets: Vec<String>,
}

impl Evidence {
    fn append(&self, verdict: Verdict) -> Verdict {
        let mut text = format!(
            "drain of {}: evicts {}",
            self.node,
            if self.evicting.is_empty() {
                "nothing".to_owned()
            } else {
                self.evicting.join(", ")
            }
        );
        if !self.skipped.is_empty() {
            text.push_str(&format!("; leaves {}", self.skipped.join(", ")));
        }
        if !self.budgets.is_empty() {
            text.push_str(&format!("; budgets {}", self.budgets.join(", ")));
        }
        text.push_str(&format!(
            "; other nodes that fit: {}",
            self.targets.join(", ")
        ));
        let found = match &verdict.evidence.found {
            Some(found) => format!("{found}\n{text}"),
            None => text,
        };
        verdict.found(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> PodFacts {
        PodFacts::of(&serde_json::from_value::<Pod>(json).unwrap())
    }

    fn check(delete_emptydir_data: bool, force: bool) -> NodeDrainCheck {
        NodeDrainCheck {
            pod: None,
            node: Some("w1".into()),
            grace_period: None,
            delete_emptydir_data,
            force,
        }
    }

    #[test]
    fn the_permissions_are_complete_for_generated_rbac() {
        let check: NodeDrainCheck = serde_json::from_value(serde_json::json!({
            "pod": {"namespace": "data", "name": "pg-0"}, "delete_emptydir_data": true
        }))
        .unwrap();
        let written: Vec<String> = Kind::permissions(&check)
            .iter()
            .map(|p| {
                format!(
                    "{} {}/{}{} {}",
                    p.verb,
                    p.api_version,
                    p.kind,
                    p.subresource
                        .as_deref()
                        .map(|s| format!("/{s}"))
                        .unwrap_or_default(),
                    p.namespace.as_deref().unwrap_or("*")
                )
            })
            .collect();
        assert_eq!(
            written,
            [
                "list v1/Pod data",
                "get v1/Pod data",
                "get v1/PersistentVolumeClaim data",
                "get v1/PersistentVolume *",
                "get apps/v1/StatefulSet data",
                "get apps/v1/ReplicaSet data",
                "get apps/v1/Deployment data",
                "get apps/v1/DaemonSet data",
                "get batch/v1/Job data",
                "get v1/Node *",
                "list v1/Node *",
                "patch v1/Node *",
                "list v1/Pod *",
                "create v1/Pod/eviction *",
                "list policy/v1/PodDisruptionBudget *",
            ]
        );
        let delete: super::super::pod_delete::PodDeleteCheck = serde_json::from_value(
            serde_json::json!({"pod": {"namespace": "data", "selector": "app=pg"}}),
        )
        .unwrap();
        let verbs: Vec<String> = Kind::permissions(&delete)
            .iter()
            .map(|p| format!("{} {}", p.verb, p.kind))
            .collect();
        assert_eq!(verbs.first().map(String::as_str), Some("list Pod"));
        assert_eq!(verbs.last().map(String::as_str), Some("delete Pod"));
        assert!(!verbs.contains(&"get Pod".to_owned()), "{verbs:?}");
    }

    #[test]
    fn the_plan_follows_kubectl_drains_filters() {
        let owned = |kind: &str| serde_json::json!([{"apiVersion": "apps/v1", "kind": kind, "name": "o", "uid": "o1", "controller": true}]);
        let pods = vec![
            pod(
                serde_json::json!({"metadata": {"namespace": "kube-system", "name": "proxy", "uid": "1", "ownerReferences": owned("DaemonSet")}, "spec": {"containers": []}}),
            ),
            pod(
                serde_json::json!({"metadata": {"namespace": "kube-system", "name": "etcd", "uid": "2", "annotations": {"kubernetes.io/config.mirror": "x"}}, "spec": {"containers": []}}),
            ),
            pod(
                serde_json::json!({"metadata": {"namespace": "data", "name": "pg-0", "uid": "3", "ownerReferences": owned("StatefulSet")}, "spec": {"containers": [], "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-pg-0"}}]}}),
            ),
            pod(
                serde_json::json!({"metadata": {"namespace": "web", "name": "cache", "uid": "4", "ownerReferences": owned("ReplicaSet")}, "spec": {"containers": [], "volumes": [{"name": "tmp", "emptyDir": {}}]}}),
            ),
            pod(
                serde_json::json!({"metadata": {"namespace": "web", "name": "bare", "uid": "5"}, "spec": {"containers": []}}),
            ),
        ];
        let plan = check(false, false).plan(pods.clone());
        assert_eq!(
            plan.evict.iter().map(PodFacts::place).collect::<Vec<_>>(),
            ["data/pg-0"]
        );
        assert_eq!(
            plan.skipped,
            [
                "kube-system/proxy (DaemonSet)",
                "kube-system/etcd (mirror pod)"
            ]
        );
        assert_eq!(plan.refused.len(), 2);
        assert!(
            plan.refused[0].contains("web/cache has emptyDir data (tmp)"),
            "{:?}",
            plan.refused
        );
        assert!(
            plan.refused[1].contains("web/bare has no controller"),
            "{:?}",
            plan.refused
        );
        let plan = check(true, true).plan(pods);
        assert_eq!(plan.evict.len(), 3);
        assert!(plan.refused.is_empty());
    }
}
