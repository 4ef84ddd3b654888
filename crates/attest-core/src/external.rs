//! Values from outside the suite files, read before the run: the port the loader asks for a
//! variable's `kubernetes_secret`, answered by the Kubernetes layer.

use std::fmt;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::k8s::Permission;

/// Values the loader cannot read by itself, asked only when running and only for variables
/// nothing else sets: a variable's `kubernetes_secret`.
pub trait ExternalValues: Send + Sync {
    /// The value of a Secret's key, read through `context` (`None`: the run's cluster).
    fn kubernetes_secret(&self, context: Option<&str>, secret: &SecretRef) -> Lookup;
}

/// What an external source says about a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(String),
    /// Not there (no such Secret, or no such key): the default applies; without one, this
    /// says why there is no value.
    Absent(String),
    /// Could not look.
    Unavailable(Unavailable),
}

/// Why a variable has no value in this run. The checks using it are skipped or errors, saying
/// this; the rest of the run goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    pub message: String,
    pub hint: Option<String>,
    /// Skipped (nothing to reach, as without a cluster) rather than an error.
    pub skip: bool,
}

/// An [`ExternalValues`] source, in [`VarSources`].
#[derive(Clone)]
pub struct External(pub Arc<dyn ExternalValues>);

impl fmt::Debug for External {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("External(..)")
    }
}

/// A key of a Kubernetes Secret: `{namespace: data, name: postgres-postgresql, key:
/// postgres-password}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
    pub key: String,
}

impl SecretRef {
    /// `Secret data/postgres-postgresql key `postgres-password``.
    pub fn describe(&self) -> String {
        format!("Secret {}/{} key `{}`", self.namespace, self.name, self.key)
    }

    /// What reading it needs.
    pub fn permission(&self) -> Permission {
        Permission::new("get", "v1", "Secret", Some(&self.namespace)).named(&self.name)
    }
}
