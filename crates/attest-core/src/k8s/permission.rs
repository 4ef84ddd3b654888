//! What a check needs from the Kubernetes API, in RBAC's terms.

/// A permission a check needs, in Kubernetes' terms (`create pods/exec in apps`), so a
/// preflight can ask the API server before anything runs. Named by kind; the preflight finds
/// the resource's plural name through discovery.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    pub verb: String,
    /// `v1`, `apps/v1`, `postgresql.cnpg.io/v1`.
    pub api_version: String,
    pub kind: String,
    /// `exec`, `log`, `portforward`.
    pub subresource: Option<String>,
    /// Namespace, or `None` for cluster-scoped resources and all namespaces.
    pub namespace: Option<String>,
    /// The one object the verb is used on, when the check names it (`get` Secret
    /// `postgres-postgresql`, `create` pods/exec on `pg-0`): a Role may grant it by
    /// `resourceNames`. `None` for verbs on collections (`list`) and objects known only at run
    /// time.
    pub name: Option<String>,
}

impl Permission {
    pub fn new(verb: &str, api_version: &str, kind: &str, namespace: Option<&str>) -> Permission {
        Permission {
            verb: verb.into(),
            api_version: api_version.into(),
            kind: kind.into(),
            subresource: None,
            namespace: namespace.map(str::to_owned),
            name: None,
        }
    }
    pub fn subresource(mut self, name: &str) -> Permission {
        self.subresource = Some(name.into());
        self
    }
    /// Only on the object `name`; a name known only at run time (`${pod_name}`, registered by
    /// an earlier check) leaves the permission on every object.
    pub fn named(mut self, name: &str) -> Permission {
        if !crate::text::is_deferred(name) && !name.is_empty() {
            self.name = Some(name.into());
        }
        self
    }
}
