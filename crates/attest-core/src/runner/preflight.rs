//! The RBAC preflight of a plan: one review per cluster, before anything runs.

use std::sync::Arc;

use tokio::runtime::Runtime;

use super::events::{Observers, RunEvent};
use super::plan::Plan;
use super::{RunConfig, PREFLIGHT_TIMEOUT};
use crate::k8s::preflight::Denial;
use crate::k8s::KubeAccess;
use crate::k8s::Permission;
use crate::load::Suite;

/// Asks each cluster's API server, once for the whole run, for every permission the checks
/// that will run there need; returns, per suite and check, the missing one. A run without
/// Kubernetes checks makes no request; a preflight that cannot reach the server leaves the
/// checks to report it.
pub(super) fn preflight(
    suites: &[Arc<Suite>],
    plan: &Plan,
    config: &RunConfig,
    events: &Observers,
    runtime: &Runtime,
) -> Vec<Vec<Option<Denial>>> {
    let mut per_cluster: Vec<(Arc<KubeAccess>, Vec<Permission>)> = Vec::new();
    let needed: Vec<(Arc<KubeAccess>, Vec<&[Permission]>)> = suites
        .iter()
        .zip(&plan.suites)
        .map(|(suite, planned)| {
            let access = config
                .services
                .for_context(suite.kube_context.as_deref())
                .kube;
            let per_check: Vec<&[Permission]> =
                planned.iter().map(|p| p.permissions.as_slice()).collect();
            let all = per_check.iter().copied().flatten().cloned();
            match per_cluster
                .iter_mut()
                .find(|(a, _)| Arc::ptr_eq(a, &access))
            {
                Some((_, permissions)) => permissions.extend(all),
                None => per_cluster.push((access.clone(), all.collect())),
            }
            (access, per_check)
        })
        .collect();
    let denied: Vec<(Arc<KubeAccess>, _)> = per_cluster
        .into_iter()
        .filter(|(_, permissions)| !permissions.is_empty())
        .map(|(access, permissions)| {
            let review = crate::k8s::preflight::review(&access, &permissions, PREFLIGHT_TIMEOUT);
            let denied = match runtime.block_on(review) {
                Ok(denied) => denied,
                Err(e) => {
                    let context = access.context().unwrap_or("the current context");
                    events.emit(RunEvent::Notice(&format!(
                        "attest: RBAC preflight skipped for {context}: {e}"
                    )));
                    Default::default()
                }
            };
            (access, denied)
        })
        .collect();
    needed
        .into_iter()
        .map(|(access, per_check)| {
            let denied = denied.iter().find(|(a, _)| Arc::ptr_eq(a, &access));
            per_check
                .iter()
                .map(|permissions| {
                    let (_, denied) = denied?;
                    let mut missing: Vec<Denial> = Vec::new();
                    for permission in *permissions {
                        if let Some(denial) = denied.get(permission) {
                            if !missing.contains(denial) {
                                missing.push(denial.clone());
                            }
                        }
                    }
                    // Every permission the check lacks, named at once (a Role grants them together).
                    (!missing.is_empty()).then(|| Denial {
                        missing: missing
                            .iter()
                            .map(|d| d.missing.clone())
                            .collect::<Vec<_>>()
                            .join(", "),
                        rule: missing
                            .iter()
                            .map(|d| d.rule.clone())
                            .collect::<Vec<_>>()
                            .join("; "),
                    })
                })
                .collect()
        })
        .collect()
}
