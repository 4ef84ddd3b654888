//! The RBAC preflight: before anything runs, one SelfSubjectAccessReview per permission the
//! selected checks need, so a missing permission is reported up front, per check, with the
//! Role rule that would grant it, instead of as a 403 in the middle of a run.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use super::{KubeAccess, KubeError, Selection};
use crate::k8s::Permission;

/// Why a permission is missing, and how to grant it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// `create pods/exec in namespace apps`.
    pub missing: String,
    /// The Role (or ClusterRole) rule that would grant it.
    pub rule: String,
}

/// Asks the API server about each permission; returns the denied ones. A permission whose
/// kind the server does not serve is left to the check itself (it reports the missing CRD).
pub async fn review(
    access: &KubeAccess,
    permissions: &[Permission],
    limit: Duration,
) -> Result<BTreeMap<Permission, Denial>, KubeError> {
    let client = access.client(limit).await?;
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client);
    let mut denied = BTreeMap::new();
    for permission in permissions {
        if denied.contains_key(permission) {
            continue;
        }
        let selection = Selection {
            api_version: permission.api_version.clone(),
            kind: permission.kind.clone(),
            ..Selection::default()
        };
        let resource = match access.resource(&selection, limit).await {
            Ok((resource, _)) => resource,
            Err(KubeError::UnknownKind { .. }) => continue,
            Err(e) => return Err(e),
        };
        let attributes = ResourceAttributes {
            verb: Some(permission.verb.clone()),
            group: Some(resource.group.clone()),
            resource: Some(resource.plural.clone()),
            subresource: permission.subresource.clone(),
            namespace: permission.namespace.clone(),
            name: permission.name.clone(),
            ..ResourceAttributes::default()
        };
        let request = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(attributes),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let answer = access
            .call(
                limit,
                "asking the API server for permissions (SelfSubjectAccessReview)",
                reviews.create(&PostParams::default(), &request),
            )
            .await?;
        let allowed = answer.status.as_ref().is_some_and(|s| s.allowed);
        if !allowed {
            let resource_name = match &permission.subresource {
                Some(sub) => format!("{}/{sub}", resource.plural),
                None => resource.plural.clone(),
            };
            let place = match &permission.namespace {
                Some(ns) => format!("in namespace {ns}"),
                None => "cluster-wide".to_owned(),
            };
            let role = if permission.namespace.is_some() {
                "Role"
            } else {
                "ClusterRole"
            };
            // A Role may grant one object only: say which (as `kubectl auth can-i` reads).
            let (object, names) = match &permission.name {
                Some(name) => (format!(" {name}"), format!(", resourceNames: [\"{name}\"]")),
                None => (String::new(), String::new()),
            };
            denied.insert(
                permission.clone(),
                Denial {
                    missing: format!("{} {resource_name}{object} {place}", permission.verb),
                    rule: format!(
                        "a {role} rule {{apiGroups: [\"{}\"], resources: [\"{resource_name}\"]{names}, verbs: [\"{}\"]}}",
                        resource.group, permission.verb
                    ),
                },
            );
        }
    }
    Ok(denied)
}
