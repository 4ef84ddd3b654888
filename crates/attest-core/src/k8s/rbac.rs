//! Least-privilege RBAC for the checks a run selects (`attest rbac`): each check's
//! [`Permission`]s become rules of one Role per namespace, and of one ClusterRole for what
//! needs cluster scope, bound to one ServiceAccount.
//!
//! Works offline: built-in kinds map to their resources through a static table (from
//! k8s-openapi); other kinds (CRDs) through discovery when the caller has a cluster, else a
//! lowercase-plural guess that the output marks with a comment.

use std::any::TypeId;
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{NamespaceResourceScope, Resource};

use crate::checks::Permission;

/// The label every object attest generates carries (`kubectl delete … -l
/// app.kubernetes.io/managed-by=attest` finds them all).
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "attest");
/// The ServiceAccount an object belongs to (its name; with [`ACCOUNT_NAMESPACE_LABEL`]).
pub const ACCOUNT_LABEL: &str = "attest.dev/service-account";
/// The namespace of that ServiceAccount.
pub const ACCOUNT_NAMESPACE_LABEL: &str = "attest.dev/service-account-namespace";

/// The identity an in-cluster run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub namespace: String,
}

impl Account {
    /// The labels of every object generated for this account.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MANAGED_BY_LABEL.0.into(), MANAGED_BY_LABEL.1.into()),
            ("app.kubernetes.io/name".into(), "attest".into()),
            (ACCOUNT_LABEL.into(), self.name.clone()),
            (ACCOUNT_NAMESPACE_LABEL.into(), self.namespace.clone()),
        ])
    }

    /// Metadata of an object of this account: `name`, in `namespace` (none: cluster-scoped).
    pub fn meta(&self, name: &str, namespace: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: namespace.map(str::to_owned),
            labels: Some(self.labels()),
            ..ObjectMeta::default()
        }
    }

    /// The name of its Roles and ClusterRole: unique per account, since the ClusterRole is
    /// cluster-wide and a Role may sit in a namespace other accounts use too.
    pub fn role_name(&self) -> String {
        format!("attest-{}-{}", self.namespace, self.name)
    }

    fn subject(&self) -> Subject {
        Subject {
            kind: "ServiceAccount".into(),
            name: self.name.clone(),
            namespace: Some(self.namespace.clone()),
            ..Subject::default()
        }
    }
}

/// How a kind's resource name was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Found {
    /// A built-in kind, from k8s-openapi's table.
    BuiltIn,
    /// Asked the cluster (API discovery).
    Discovered,
    /// Lowercase plural of the kind, namespaced when the check names a namespace: what a CRD
    /// usually declares, but not checked.
    Guessed,
}

/// The API resource of a kind, as RBAC names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindResource {
    /// `""` for the core group, `apps`, `postgresql.cnpg.io`.
    pub group: String,
    /// `pods`, `clusters`.
    pub plural: String,
    pub namespaced: bool,
    pub found: Found,
}

/// The group of an `apiVersion`: `apps/v1` → `apps`, `v1` → `""`.
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

fn entry<K: Resource>() -> (&'static str, &'static str, &'static str, bool)
where
    K::Scope: 'static,
{
    let namespaced = TypeId::of::<K::Scope>() == TypeId::of::<NamespaceResourceScope>();
    (K::GROUP, K::KIND, K::URL_PATH_SEGMENT, namespaced)
}

/// The built-in kinds checks may name: (group, kind, plural, namespaced).
fn built_in() -> Vec<(&'static str, &'static str, &'static str, bool)> {
    use k8s_openapi::api::{apps, autoscaling, batch, coordination, core, discovery};
    use k8s_openapi::api::{networking, policy, rbac, scheduling, storage};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as crd;
    vec![
        entry::<core::v1::ConfigMap>(),
        entry::<core::v1::Endpoints>(),
        entry::<core::v1::Event>(),
        entry::<core::v1::LimitRange>(),
        entry::<core::v1::Namespace>(),
        entry::<core::v1::Node>(),
        entry::<core::v1::PersistentVolume>(),
        entry::<core::v1::PersistentVolumeClaim>(),
        entry::<core::v1::Pod>(),
        entry::<core::v1::ResourceQuota>(),
        entry::<core::v1::Secret>(),
        entry::<core::v1::Service>(),
        entry::<core::v1::ServiceAccount>(),
        entry::<apps::v1::DaemonSet>(),
        entry::<apps::v1::Deployment>(),
        entry::<apps::v1::ReplicaSet>(),
        entry::<apps::v1::StatefulSet>(),
        entry::<autoscaling::v2::HorizontalPodAutoscaler>(),
        entry::<batch::v1::CronJob>(),
        entry::<batch::v1::Job>(),
        entry::<coordination::v1::Lease>(),
        entry::<discovery::v1::EndpointSlice>(),
        entry::<networking::v1::Ingress>(),
        entry::<networking::v1::IngressClass>(),
        entry::<networking::v1::NetworkPolicy>(),
        entry::<policy::v1::PodDisruptionBudget>(),
        entry::<rbac::v1::ClusterRole>(),
        entry::<rbac::v1::ClusterRoleBinding>(),
        entry::<rbac::v1::Role>(),
        entry::<rbac::v1::RoleBinding>(),
        entry::<scheduling::v1::PriorityClass>(),
        entry::<storage::v1::CSIDriver>(),
        entry::<storage::v1::StorageClass>(),
        entry::<storage::v1::VolumeAttachment>(),
        entry::<crd::CustomResourceDefinition>(),
    ]
}

/// The resource of a built-in kind; `None` for kinds the table does not know (CRDs).
pub fn built_in_resource(api_version: &str, kind: &str) -> Option<KindResource> {
    let group = group_of(api_version);
    built_in()
        .into_iter()
        .find(|(g, k, _, _)| *g == group && *k == kind)
        .map(|(group, _, plural, namespaced)| KindResource {
            group: group.into(),
            plural: plural.into(),
            namespaced,
            found: Found::BuiltIn,
        })
}

/// The usual plural of a CRD's kind: lower case, `-es` after s/x/z/ch/sh, `-ies` after a
/// consonant and y, else `-s` (`Cluster` → `clusters`, `Backup` → `backups`,
/// `ExternalSecret` → `externalsecrets`, `Policy` → `policies`).
pub fn guess_plural(kind: &str) -> String {
    let lower = kind.to_lowercase();
    let consonant_y = lower.ends_with('y')
        && !lower
            .chars()
            .rev()
            .nth(1)
            .is_some_and(|c| "aeiou".contains(c));
    if consonant_y {
        format!("{}ies", &lower[..lower.len() - 1])
    } else if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|end| lower.ends_with(end))
    {
        format!("{lower}es")
    } else {
        format!("{lower}s")
    }
}

/// Why RBAC could not be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RbacError {
    /// A field RBAC depends on is a variable without a value here.
    #[error("`{check}`: its {field} comes from a variable with no value here (`{text}`); give it with --set or --vars")]
    Unknown {
        check: String,
        field: &'static str,
        text: String,
    },
}

/// What one check needs: its name (`suite::check`) and its permissions.
#[derive(Debug, Clone)]
pub struct CheckNeeds {
    pub check: String,
    pub permissions: Vec<Permission>,
}

/// Where a rule applies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    /// A Role in this namespace.
    Namespace(String),
    /// The ClusterRole: cluster-scoped kinds, and namespaced ones in every namespace.
    Cluster,
}

/// (group, resource or resource/subresource, verb).
type Grant = (String, String, String);
/// The objects a grant is limited to; `None`: every object.
type Names = Option<BTreeSet<String>>;

/// The generated objects, ready to print.
#[derive(Debug, Clone)]
pub struct Rbac {
    pub service_account: ServiceAccount,
    /// One Role and its binding per namespace, sorted by namespace; with the checks needing it.
    pub roles: Vec<(Role, RoleBinding, Vec<String>)>,
    /// The ClusterRole (always: the preflight's SelfSubjectAccessReviews) and its binding,
    /// with the checks needing cluster scope.
    pub cluster_role: (ClusterRole, ClusterRoleBinding, Vec<String>),
    /// Kinds whose resource was guessed or discovered, as comment lines.
    pub notes: Vec<String>,
}

impl Rbac {
    /// Every rule, Roles' and the ClusterRole's.
    pub fn rule_count(&self) -> usize {
        let roles: usize = self
            .roles
            .iter()
            .map(|(role, _, _)| role.rules.as_ref().map_or(0, Vec::len))
            .sum();
        roles + self.cluster_role.0.rules.as_ref().map_or(0, Vec::len)
    }
}

/// The rule the in-pod RBAC preflight itself needs (granted to every authenticated user by
/// the default `system:basic-user` ClusterRole, which a cluster may have narrowed).
fn preflight_grant() -> Grant {
    (
        "authorization.k8s.io".into(),
        "selfsubjectaccessreviews".into(),
        "create".into(),
    )
}

/// Generates the RBAC objects for `needs`; `resource` maps a permission's kind to its
/// resource (see [`built_in_resource`]).
pub fn generate(
    needs: &[CheckNeeds],
    account: &Account,
    resource: impl Fn(&str, &str, bool) -> KindResource,
) -> Result<Rbac, RbacError> {
    let mut grants: BTreeMap<Scope, BTreeMap<Grant, Names>> = BTreeMap::new();
    let mut needed_by: BTreeMap<Scope, BTreeSet<String>> = BTreeMap::new();
    let mut notes: BTreeSet<String> = BTreeSet::new();
    for need in needs {
        for p in &need.permissions {
            let deferred = [
                ("namespace", p.namespace.as_deref().unwrap_or_default()),
                ("apiVersion", p.api_version.as_str()),
                ("kind", p.kind.as_str()),
            ]
            .into_iter()
            .find(|(_, text)| crate::validate::is_deferred(text));
            if let Some((field, text)) = deferred {
                return Err(RbacError::Unknown {
                    check: need.check.clone(),
                    field,
                    text: crate::text::display_markers(text),
                });
            }
            let found = resource(&p.api_version, &p.kind, p.namespace.is_some());
            match found.found {
                Found::BuiltIn => {}
                Found::Discovered => {
                    notes.insert(format!(
                        "{} {}: resource `{}` ({}) from the cluster's API discovery",
                        p.api_version,
                        p.kind,
                        found.plural,
                        if found.namespaced {
                            "namespaced"
                        } else {
                            "cluster-scoped"
                        }
                    ));
                }
                Found::Guessed => {
                    notes.insert(format!(
                        "{} {}: resource `{}` GUESSED (lowercase plural; no --kubeconfig to ask the cluster): check with `kubectl api-resources --api-group={}`",
                        p.api_version,
                        p.kind,
                        found.plural,
                        found.group
                    ));
                }
            }
            let scope = match (&p.namespace, found.namespaced) {
                (Some(ns), true) => Scope::Namespace(ns.clone()),
                _ => Scope::Cluster,
            };
            let resource = match &p.subresource {
                Some(sub) => format!("{}/{sub}", found.plural),
                None => found.plural.clone(),
            };
            let grant = (found.group.clone(), resource, p.verb.clone());
            let names = grants.entry(scope.clone()).or_default();
            let slot = names.entry(grant).or_insert_with(|| Some(BTreeSet::new()));
            match (&p.name, slot.as_mut()) {
                (Some(name), Some(set)) => {
                    set.insert(name.clone());
                }
                (None, _) => *slot = None,
                (Some(_), None) => {}
            }
            needed_by
                .entry(scope)
                .or_default()
                .insert(need.check.clone());
        }
    }
    // What the ClusterRole grants in every namespace, no Role needs to grant again.
    let cluster = grants.remove(&Scope::Cluster).unwrap_or_default();
    for names in grants.values_mut() {
        names.retain(|grant, wanted| match cluster.get(grant) {
            Some(None) => false,
            Some(Some(all)) => wanted.as_ref().is_none_or(|w| !w.is_subset(all)),
            None => true,
        });
    }
    let mut cluster = cluster;
    cluster.insert(preflight_grant(), None);

    let subjects = Some(vec![account.subject()]);
    let role_name = account.role_name();
    let roles = grants
        .into_iter()
        .filter(|(_, names)| !names.is_empty())
        .map(|(scope, names)| {
            let Scope::Namespace(ns) = scope else {
                unreachable!("the cluster's grants were taken out above")
            };
            let role = Role {
                metadata: account.meta(&role_name, Some(&ns)),
                rules: Some(rules(&names)),
            };
            let binding = RoleBinding {
                metadata: account.meta(&role_name, Some(&ns)),
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "Role".into(),
                    name: role_name.clone(),
                },
                subjects: subjects.clone(),
            };
            let checks = needed_by
                .get(&Scope::Namespace(ns))
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            (role, binding, checks)
        })
        .collect();
    let cluster_role = ClusterRole {
        metadata: account.meta(&role_name, None),
        rules: Some(rules(&cluster)),
        ..ClusterRole::default()
    };
    let cluster_binding = ClusterRoleBinding {
        metadata: account.meta(&role_name, None),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: role_name.clone(),
        },
        subjects,
    };
    let cluster_checks = needed_by
        .get(&Scope::Cluster)
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default();
    Ok(Rbac {
        service_account: ServiceAccount {
            metadata: account.meta(&account.name, Some(&account.namespace)),
            ..ServiceAccount::default()
        },
        roles,
        cluster_role: (cluster_role, cluster_binding, cluster_checks),
        notes: notes.into_iter().collect(),
    })
}

/// Compact, sorted rules: one per API group, object names and verb set, listing every
/// resource that shares them.
fn rules(grants: &BTreeMap<Grant, Names>) -> Vec<PolicyRule> {
    // (group, resource, names) → verbs
    let mut verbs: BTreeMap<(String, String, Vec<String>), BTreeSet<String>> = BTreeMap::new();
    for ((group, resource, verb), names) in grants {
        let names: Vec<String> = names.iter().flatten().cloned().collect();
        verbs
            .entry((group.clone(), resource.clone(), names))
            .or_default()
            .insert(verb.clone());
    }
    // (group, names, verbs) → resources
    let mut merged: BTreeMap<(String, Vec<String>, Vec<String>), BTreeSet<String>> =
        BTreeMap::new();
    for ((group, resource, names), verbs) in verbs {
        merged
            .entry((group, names, verbs.into_iter().collect()))
            .or_default()
            .insert(resource);
    }
    let mut rules: Vec<PolicyRule> = merged
        .into_iter()
        .map(|((group, names, verbs), resources)| PolicyRule {
            api_groups: Some(vec![group]),
            resources: Some(resources.into_iter().collect()),
            resource_names: (!names.is_empty()).then_some(names),
            verbs,
            ..PolicyRule::default()
        })
        .collect();
    rules.sort_by(|a, b| {
        let key = |r: &PolicyRule| {
            (
                r.api_groups.clone(),
                r.resources.clone(),
                r.resource_names.clone(),
                r.verbs.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    rules
}

/// The resource of a kind without asking a cluster: the built-in table, else a guess.
pub fn offline_resource(api_version: &str, kind: &str, namespaced: bool) -> KindResource {
    built_in_resource(api_version, kind).unwrap_or_else(|| KindResource {
        group: group_of(api_version).into(),
        plural: guess_plural(kind),
        namespaced,
        found: Found::Guessed,
    })
}

/// The resource of a kind the built-in table does not know, asked of the cluster; `None`
/// when the cluster does not serve the kind (its CRD is not installed there).
pub async fn discover(
    access: &super::KubeAccess,
    api_version: &str,
    kind: &str,
    limit: std::time::Duration,
) -> Result<Option<KindResource>, super::KubeError> {
    let selection = super::Selection {
        api_version: api_version.into(),
        kind: kind.into(),
        ..super::Selection::default()
    };
    match access.resource(&selection, limit).await {
        Ok((resource, capabilities)) => Ok(Some(KindResource {
            group: resource.group,
            plural: resource.plural,
            namespaced: capabilities.scope == kube::discovery::Scope::Namespaced,
            found: Found::Discovered,
        })),
        Err(super::KubeError::UnknownKind { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Serializes objects as YAML documents `kubectl apply -f -` takes, each after its comment
/// lines.
pub fn yaml_documents(documents: &[(Vec<String>, serde_json::Value)]) -> String {
    let mut out = String::new();
    for (comments, object) in documents {
        out.push_str("---\n");
        for line in comments {
            out.push_str(&format!("# {line}\n"));
        }
        let text = serde_saphyr::to_string(object).unwrap_or_else(|e| {
            // A JSON value always serializes; kept as text rather than a panic.
            format!("# cannot write this object as YAML: {e}\n")
        });
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

impl Rbac {
    /// The documents, with comments saying which checks need each Role; `header` first.
    pub fn documents(&self) -> Vec<(Vec<String>, serde_json::Value)> {
        let json = |v: serde_json::Result<serde_json::Value>| v.unwrap_or_default();
        let mut docs = vec![(
            Vec::new(),
            json(serde_json::to_value(&self.service_account)),
        )];
        let who = |checks: &[String]| match checks.len() {
            0 => "needed by: the RBAC preflight (SelfSubjectAccessReview)".to_owned(),
            _ => format!("needed by: {}", checks.join(", ")),
        };
        for (role, binding, checks) in &self.roles {
            docs.push((vec![who(checks)], json(serde_json::to_value(role))));
            docs.push((Vec::new(), json(serde_json::to_value(binding))));
        }
        let (role, binding, checks) = &self.cluster_role;
        let mut comments = vec![who(checks)];
        if !checks.is_empty() {
            comments.push("and the RBAC preflight (SelfSubjectAccessReview)".into());
        }
        docs.push((comments, json(serde_json::to_value(role))));
        docs.push((Vec::new(), json(serde_json::to_value(binding))));
        docs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            name: "attest".into(),
            namespace: "apps".into(),
        }
    }

    fn need(check: &str, permissions: Vec<Permission>) -> CheckNeeds {
        CheckNeeds {
            check: check.into(),
            permissions,
        }
    }

    fn rule_text(rules: &Option<Vec<PolicyRule>>) -> Vec<String> {
        rules
            .iter()
            .flatten()
            .map(|r| {
                format!(
                    "{:?} {:?} {:?} {:?}",
                    r.api_groups.clone().unwrap_or_default(),
                    r.resources.clone().unwrap_or_default(),
                    r.resource_names.clone().unwrap_or_default(),
                    r.verbs
                )
            })
            .collect()
    }

    #[test]
    fn built_in_kinds_and_guesses() {
        let pod = built_in_resource("v1", "Pod").unwrap();
        assert_eq!(
            (pod.group.as_str(), pod.plural.as_str(), pod.namespaced),
            ("", "pods", true)
        );
        let pv = built_in_resource("v1", "PersistentVolume").unwrap();
        assert!(!pv.namespaced);
        let pdb = built_in_resource("policy/v1", "PodDisruptionBudget").unwrap();
        assert_eq!(
            (pdb.group.as_str(), pdb.plural.as_str()),
            ("policy", "poddisruptionbudgets")
        );
        assert_eq!(built_in_resource("apps/v1", "Pod"), None);
        for (kind, plural) in [
            ("Cluster", "clusters"),
            ("ExternalSecret", "externalsecrets"),
            ("Policy", "policies"),
            ("Gateway", "gateways"),
            ("Ingress", "ingresses"),
            ("Patch", "patches"),
        ] {
            assert_eq!(guess_plural(kind), plural);
        }
    }

    #[test]
    fn named_grants_merge_and_yield_to_unnamed_ones() {
        let secret = |name: &str| Permission::new("get", "v1", "Secret", Some("data")).named(name);
        let rbac = generate(
            &[
                need("s::a", vec![secret("pg"), secret("app")]),
                need(
                    "s::b",
                    vec![Permission::new("get", "v1", "Pod", Some("data")).named("pg-0")],
                ),
                need(
                    "s::c",
                    vec![Permission::new("list", "v1", "Pod", Some("data"))],
                ),
                need(
                    "s::d",
                    vec![Permission::new("get", "v1", "Pod", Some("data"))],
                ),
                need(
                    "s::e",
                    vec![Permission::new("create", "v1", "Pod", Some("data"))
                        .subresource("exec")
                        .named("pg-0")],
                ),
            ],
            &account(),
            offline_resource,
        )
        .unwrap();
        assert_eq!(rbac.roles.len(), 1);
        let (role, binding, checks) = &rbac.roles[0];
        assert_eq!(role.metadata.namespace.as_deref(), Some("data"));
        assert_eq!(
            rule_text(&role.rules),
            [
                r#"[""] ["pods"] [] ["get", "list"]"#,
                r#"[""] ["pods/exec"] ["pg-0"] ["create"]"#,
                r#"[""] ["secrets"] ["app", "pg"] ["get"]"#,
            ]
        );
        assert_eq!(
            binding.subjects.as_ref().unwrap()[0].namespace.as_deref(),
            Some("apps")
        );
        assert_eq!(checks.len(), 5);
        // Nothing cluster-wide but the preflight's own question.
        assert_eq!(
            rule_text(&rbac.cluster_role.0.rules),
            [r#"["authorization.k8s.io"] ["selfsubjectaccessreviews"] [] ["create"]"#]
        );
    }

    #[test]
    fn cluster_scope_for_cluster_kinds_and_all_namespaces() {
        let rbac = generate(
            &[
                need(
                    "s::pv",
                    vec![Permission::new("get", "v1", "PersistentVolume", None).named("pv-1")],
                ),
                // A cluster-scoped kind named with a namespace still needs the ClusterRole.
                need(
                    "s::node",
                    vec![Permission::new("get", "v1", "Node", Some("data"))],
                ),
                need("s::all", vec![Permission::new("list", "v1", "Pod", None)]),
                need(
                    "s::ns",
                    vec![Permission::new("list", "v1", "Pod", Some("data"))],
                ),
                need(
                    "s::sts",
                    vec![
                        Permission::new("get", "apps/v1", "StatefulSet", Some("data")).named("pg"),
                    ],
                ),
            ],
            &account(),
            offline_resource,
        )
        .unwrap();
        assert_eq!(
            rule_text(&rbac.cluster_role.0.rules),
            [
                r#"[""] ["nodes"] [] ["get"]"#,
                r#"[""] ["persistentvolumes"] ["pv-1"] ["get"]"#,
                r#"[""] ["pods"] [] ["list"]"#,
                r#"["authorization.k8s.io"] ["selfsubjectaccessreviews"] [] ["create"]"#,
            ]
        );
        // `list pods` in data is already granted cluster-wide; the StatefulSet stays.
        assert_eq!(rbac.roles.len(), 1);
        assert_eq!(
            rule_text(&rbac.roles[0].0.rules),
            [r#"["apps"] ["statefulsets"] ["pg"] ["get"]"#]
        );
        assert_eq!(rbac.cluster_role.2, ["s::all", "s::node", "s::pv"]);
    }

    #[test]
    fn resources_sharing_verbs_share_a_rule_and_crds_are_marked() {
        let rbac = generate(
            &[need(
                "s::a",
                vec![
                    Permission::new("list", "postgresql.cnpg.io/v1", "Cluster", Some("docs")),
                    Permission::new("list", "postgresql.cnpg.io/v1", "Backup", Some("docs")),
                    Permission::new("list", "v1", "Service", Some("docs")),
                    Permission::new("list", "v1", "ConfigMap", Some("docs")),
                ],
            )],
            &account(),
            offline_resource,
        )
        .unwrap();
        assert_eq!(
            rule_text(&rbac.roles[0].0.rules),
            [
                r#"[""] ["configmaps", "services"] [] ["list"]"#,
                r#"["postgresql.cnpg.io"] ["backups", "clusters"] [] ["list"]"#,
            ]
        );
        assert_eq!(rbac.notes.len(), 2);
        assert!(rbac.notes[0].contains("GUESSED"), "{:?}", rbac.notes);
    }

    #[test]
    fn a_namespace_without_a_value_is_an_error_naming_the_check() {
        let stand_in = crate::text::runtime_marker("ns");
        let err = generate(
            &[need(
                "s::a",
                vec![Permission::new("list", "v1", "Pod", Some(&stand_in))],
            )],
            &account(),
            offline_resource,
        )
        .unwrap_err();
        assert!(err.to_string().contains("`s::a`: its namespace"), "{err}");
        assert!(err.to_string().contains("${ns}"), "{err}");
    }

    #[test]
    fn output_is_deterministic_yaml_with_labels() {
        let needs = [
            need(
                "s::b",
                vec![Permission::new("list", "v1", "Pod", Some("b"))],
            ),
            need(
                "s::a",
                vec![Permission::new("list", "v1", "Pod", Some("a"))],
            ),
        ];
        let one = yaml_documents(
            &generate(&needs, &account(), offline_resource)
                .unwrap()
                .documents(),
        );
        let mut reversed = needs.to_vec();
        reversed.reverse();
        let two = yaml_documents(
            &generate(&reversed, &account(), offline_resource)
                .unwrap()
                .documents(),
        );
        assert_eq!(one, two);
        assert!(
            one.contains("app.kubernetes.io/managed-by: attest"),
            "{one}"
        );
        assert!(one.find("namespace: a").unwrap() < one.find("namespace: b").unwrap());
    }
}
