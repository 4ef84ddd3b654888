//! `pod-delete`: deletes one pod and proves its workload brings it back: a new UID (found by
//! UID, never by name: a StatefulSet recreates the same name), Ready, the same claims bound to
//! the same volumes; the time from deletion to Ready is measured. A pod without a controller
//! is refused before anything is deleted: nothing would bring it back.

use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Deserialize;

use super::{millis, FieldProblem, Kind, Permission, Verdict};
use crate::context::CheckContext;
use crate::duration::format_duration;
use crate::k8s::disruption::{self as dis, Claim, PodFacts, SelectError};
use crate::k8s::pods::{PodPick, PodRef};
use crate::k8s::{KubeAccess, KubeError};
use crate::safety::Safety;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PodDeleteCheck {
    /// Which pod: `name:`, or a `selector:` that matches exactly one running pod.
    pub pod: PodRef,
    /// Seconds the pod gets to stop (default: its own `terminationGracePeriodSeconds`; 0 kills
    /// it at once).
    #[serde(default)]
    pub grace_period: Option<u32>,
}

/// How often the replacement is looked for.
pub(crate) const POLL: Duration = Duration::from_millis(500);

/// How many times a pod replaced between its read and its delete is read again.
const MAX_REREADS: usize = 3;

/// Says in the evidence which pods were replaced by someone else before attest's delete.
fn note_replaced(mut verdict: Verdict, uids: &[String]) -> Verdict {
    if !uids.is_empty() {
        verdict.summary.push_str(&format!(
            "; before the delete, the pod read was replaced by another actor {} time(s) (uid {}), so the pod there then was deleted",
            uids.len(),
            uids.join(", ")
        ));
    }
    verdict
}

/// When a disruptive check stops waiting: before the runner's timeout, keeping a fifth of the
/// time (at most `reserve`) for what follows (reading the claims, the budgets, the uncordon),
/// so the verdict is its own, with the last observation, never the runner's bare "did not
/// finish".
pub(crate) fn wait_until(ctx: &CheckContext, reserve: Duration) -> Instant {
    let left = ctx.remaining();
    let margin = (left / 5).min(reserve);
    Instant::now() + left.saturating_sub(margin)
}

/// Permissions to find one pod and its workload's replacement, read its claims, volumes and
/// owners.
pub(crate) fn pod_permissions(pod: &PodRef) -> Vec<Permission> {
    let ns = Some(pod.namespace.as_str());
    // Listing finds the replacement (and a selector's pod).
    let mut permissions = vec![Permission::new("list", "v1", "Pod", ns)];
    if let PodPick::Name(name) = &pod.pick {
        permissions.push(Permission::new("get", "v1", "Pod", ns).named(name));
    }
    permissions.push(Permission::new("get", "v1", "PersistentVolumeClaim", ns));
    permissions.push(Permission::new("get", "v1", "PersistentVolume", None));
    permissions.extend(dis::owner_permissions(&pod.namespace));
    permissions
}

/// A pod before its disruption: its facts, owner chain and claims.
pub(crate) struct Before {
    pub facts: PodFacts,
    pub chain: Vec<dis::Owner>,
    pub claims: Vec<Claim>,
}

/// The pod reference with values registered by earlier checks filled in (`${pg_name}`).
pub(crate) fn expanded(pod: &PodRef, ctx: &CheckContext) -> Result<PodRef, String> {
    let expand = |text: &str| ctx.expand(text);
    Ok(PodRef {
        namespace: expand(&pod.namespace)?,
        pick: match &pod.pick {
            PodPick::Name(name) => PodPick::Name(expand(name)?),
            PodPick::Selector(selector) => PodPick::Selector(expand(selector)?),
        },
        container: pod.container.clone(),
    })
}

/// Selects the pod and records it; a verdict instead when it cannot be disrupted safely (no
/// controller, a controller that is gone, already terminating).
pub(crate) async fn record(
    access: &KubeAccess,
    pod: &PodRef,
    limit: Duration,
) -> Result<Before, Verdict> {
    let selected =
        match dis::select_pod(access, pod, limit).await {
            Ok(pod) => pod,
            Err(SelectError::Api(e)) => return Err(super::kube_object::api_verdict(&e)),
            Err(SelectError::None(why)) => return Err(Verdict::fail(why).hint(
                "check the name or selector and namespace (`kubectl get pods -n … --show-labels`)",
            )),
            Err(SelectError::Several(why)) => {
                return Err(Verdict::error(why)
                    .hint("name the pod (`name:`), or narrow the selector to one pod"))
            }
        };
    let facts = PodFacts::of(&selected);
    if facts.deleting {
        return Err(Verdict::fail(format!(
            "{} is already terminating; refused to disrupt it again",
            facts.describe()
        ))
        .hint("wait until its replacement is Ready, then run again"));
    }
    let chain = dis::owner_chain(access, &facts, limit)
        .await
        .map_err(|e| super::kube_object::api_verdict(&e))?;
    if facts.controller.is_none() {
        let owners: Vec<String> = selected
            .metadata
            .owner_references
            .iter()
            .flatten()
            .map(|o| format!("{} {} (not its controller)", o.kind, o.name))
            .collect();
        let chain_text = if owners.is_empty() {
            "no owner at all".to_owned()
        } else {
            owners.join(", ")
        };
        return Err(Verdict::fail(format!(
            "refused: {} has no controller ({chain_text}); nothing would recreate it, so nothing was disrupted",
            facts.describe()
        ))
        .expected("a pod managed by a controller (StatefulSet, Deployment, …)")
        .found(chain_text)
        .hint("disrupt a pod of a StatefulSet or Deployment; a bare pod is gone for good once deleted"));
    }
    if let Some(gone) = chain.iter().find(|o| !o.exists) {
        return Err(Verdict::fail(format!(
            "refused: {}'s owner chain is {}: its {} {} is gone, so nothing would recreate it; nothing was disrupted",
            facts.describe(),
            dis::describe_chain(&chain),
            gone.kind,
            gone.name
        ))
        .hint("the pod is orphaned; recreate its controller, or delete the pod by hand"));
    }
    let claims = dis::claims(access, &facts.namespace, &facts.claims, limit)
        .await
        .map_err(|e| super::kube_object::api_verdict(&e))?;
    Ok(Before {
        facts,
        chain,
        claims,
    })
}

/// Judges the replacement of `before`: a new UID (given), the same claims, each bound to the
/// same volume (and the same claim object, by UID). The mismatches when not.
pub(crate) async fn same_claims(
    access: &KubeAccess,
    before: &Before,
    after: &PodFacts,
    limit: Duration,
) -> Result<(Vec<Claim>, Vec<(String, String, String)>), Verdict> {
    let now = dis::claims(access, &after.namespace, &after.claims, limit)
        .await
        .map_err(|e| super::kube_object::api_verdict(&e))?;
    let mut mismatches = Vec::new();
    let names = |claims: &[Claim]| {
        let mut names: Vec<String> = claims.iter().map(|c| c.name.clone()).collect();
        names.sort();
        names.join(", ")
    };
    if names(&before.claims) != names(&now) {
        mismatches.push((
            "spec.volumes[].persistentVolumeClaim".to_owned(),
            names(&before.claims),
            names(&now),
        ));
    }
    for old in &before.claims {
        let Some(new) = now.iter().find(|c| c.name == old.name) else {
            continue;
        };
        if new.volume != old.volume {
            mismatches.push((
                format!("claim {} volume", old.name),
                old.volume.clone(),
                if new.volume.is_empty() {
                    format!("unbound ({})", new.phase)
                } else {
                    new.volume.clone()
                },
            ));
        } else if new.uid != old.uid {
            mismatches.push((
                format!("claim {} uid", old.name),
                old.uid.clone(),
                format!("{} (the claim was recreated)", new.uid),
            ));
        }
    }
    Ok((now, mismatches))
}

/// The verdict once the replacement is Ready: pass with the evidence, or fail on the claims.
pub(crate) async fn judge_replacement(
    access: &KubeAccess,
    before: &Before,
    after: &PodFacts,
    what: &str,
    downtime: Duration,
    limit: Duration,
) -> Verdict {
    let old = &before.facts;
    let (claims, mismatches) = match same_claims(access, before, after, limit).await {
        Ok(found) => found,
        Err(verdict) => return verdict,
    };
    let new_node = if after.node == old.node {
        format!("on the same node {}", after.node)
    } else {
        format!("on {} (was {})", after.node, old.node)
    };
    let evidence = format!(
        "{what} pod {} (uid {} on {}); replacement pod {} (uid {}) Ready {new_node} {} after the {}; claims: {}",
        old.place(),
        old.uid,
        old.node,
        after.place(),
        after.uid,
        format_duration(downtime),
        if what == "deleted" { "deletion" } else { "eviction" },
        dis::describe_claims(&claims)
    );
    let mut verdict = if mismatches.is_empty() {
        let same = if claims.is_empty() {
            "; nothing on a claim outlives a pod here"
        } else {
            " (same volumes)"
        };
        Verdict::pass(format!("{evidence}{same}"))
    } else {
        let mut verdict = Verdict::fail(format!(
            "{evidence}: the replacement does not use the same storage"
        ))
        .subject(format!("v1/Pod {}", after.place()))
        .hint("a StatefulSet's volumeClaimTemplates keep a pod's claim; a recreated claim or a new volume means the data is not the same");
        for (path, expected, found) in mismatches {
            verdict = verdict.mismatch(path, expected, found);
        }
        verdict
    };
    verdict = verdict
        .measure("ready_after_ms", millis(downtime))
        .export("name", after.name.clone())
        .export("namespace", after.namespace.clone())
        .export("uid", after.uid.clone())
        .export("node", after.node.clone())
        .export("previous_uid", old.uid.clone())
        .export("previous_node", old.node.clone())
        .export(
            "volume",
            claims.first().map(|c| c.volume.clone()).unwrap_or_default(),
        );
    verdict
}

/// The verdict when the replacement never became Ready.
pub(crate) fn no_replacement(before: &Before, waited: Duration, last: &str) -> Verdict {
    Verdict::fail(format!(
        "no replacement pod within {} for {} ({}); last: {last}",
        format_duration(waited),
        before.facts.place(),
        dis::describe_chain(&before.chain)
    ))
    .expected("a pod of the same workload with a new UID, Ready")
    .found(last.to_owned())
    .hint("`kubectl describe` the workload and the pod: replicas scaled to 0, an image pull, a volume that cannot attach, or no node that fits")
}

pub(crate) const EXPORTS: &[(&str, bool)] = &[
    ("name", false),
    ("namespace", false),
    ("uid", false),
    ("node", false),
    ("previous_uid", false),
    ("previous_node", false),
    ("volume", false),
];

impl Kind for PodDeleteCheck {
    const SAFETY: Safety = Safety::Destructive;
    const DESCRIPTION: &'static str = "Deletes one pod (name, or a selector matching one) and waits, by UID, for its controller's replacement to be Ready with the same claims on the same volumes; measures deletion to Ready; refuses a pod without a controller. `register` exports the new pod's name, namespace, uid and node, previous_uid, previous_node and volume.";
    const EXPORTS: &'static [(&'static str, bool)] = EXPORTS;

    fn target(&self) -> String {
        self.pod.describe()
    }

    fn permissions(&self) -> Vec<Permission> {
        let mut permissions = pod_permissions(&self.pod);
        let delete = Permission::new("delete", "v1", "Pod", Some(&self.pod.namespace));
        permissions.push(match &self.pod.pick {
            PodPick::Name(name) => delete.named(name),
            PodPick::Selector(_) => delete,
        });
        permissions
    }

    fn validate(&self) -> Vec<FieldProblem> {
        match &self.pod.container {
            Some(_) => vec![FieldProblem::new(
                "pod.container",
                "a pod is deleted whole; remove `container:`",
            )],
            None => Vec::new(),
        }
    }

    async fn observe(&self, ctx: &CheckContext) -> Verdict {
        let access = &ctx.services.kube;
        let until = wait_until(ctx, Duration::from_secs(2));
        let pod = match expanded(&self.pod, ctx) {
            Ok(pod) => pod,
            Err(e) => return Verdict::error(e),
        };
        // The delete names the UID just read. A 409 means the pod was replaced between that
        // read and the delete (its controller, or another actor): read again and delete the
        // pod that is there now, a few times at most, and say so in the evidence.
        let mut replaced_meanwhile = Vec::new();
        let before = loop {
            let before = match record(access, &pod, ctx.remaining()).await {
                Ok(before) => before,
                Err(verdict) => return verdict,
            };
            match dis::delete_pod(access, &before.facts, self.grace_period, ctx.remaining()).await {
                Ok(()) => break before,
                Err(KubeError::Conflict { .. })
                    if replaced_meanwhile.len() < MAX_REREADS && !ctx.remaining().is_zero() =>
                {
                    replaced_meanwhile.push(before.facts.uid.clone());
                }
                Err(e) => return super::kube_object::api_verdict(&e),
            }
        };
        let deleted_at = Instant::now();
        match dis::wait_replacement(access, &before.facts, None, until, POLL).await {
            Ok(after) => {
                let verdict = judge_replacement(
                    access,
                    &before,
                    &after,
                    "deleted",
                    deleted_at.elapsed(),
                    ctx.remaining(),
                )
                .await;
                note_replaced(verdict, &replaced_meanwhile)
            }
            Err(last) => note_replaced(
                no_replacement(&before, deleted_at.elapsed(), &last),
                &replaced_meanwhile,
            ),
        }
    }
}
