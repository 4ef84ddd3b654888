//! Values kept in Kubernetes Secrets: a connection's password, a variable's value. Decoded here
//! and never shown: whoever reads one registers it with the redactor before using it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{KubeAccess, KubeClusters, KubeError};
use crate::checks::Permission;
use crate::load::{ExternalValues, Lookup, Unavailable};

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

/// The decoded data of a Secret; `None` when it does not exist.
pub async fn fetch(
    access: &KubeAccess,
    namespace: &str,
    name: &str,
    limit: Duration,
) -> Result<Option<BTreeMap<String, String>>, KubeError> {
    // One budget for connecting and reading.
    let deadline = std::time::Instant::now() + limit;
    let client = access.client(limit).await?;
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let what = format!("reading Secret {namespace}/{name}");
    let left = deadline
        .saturating_duration_since(std::time::Instant::now())
        .max(Duration::from_millis(50));
    let Some(secret) = access.call(left, &what, api.get_opt(name)).await? else {
        return Ok(None);
    };
    // `stringData` is write-only on a real server; kept for objects built elsewhere.
    let mut data: BTreeMap<String, String> = secret.string_data.unwrap_or_default();
    for (key, bytes) in secret.data.unwrap_or_default() {
        data.insert(key, String::from_utf8_lossy(&bytes.0).into_owned());
    }
    Ok(Some(data))
}

/// Why `secret` has no value, given what was found: the Secret or the key is missing. Names
/// the keys that exist (never their values), the usual cause being a typo.
pub fn why_missing(secret: &SecretRef, data: Option<&BTreeMap<String, String>>) -> String {
    match data {
        None => format!("Secret {}/{} does not exist", secret.namespace, secret.name),
        Some(data) => {
            let keys: Vec<&str> = data.keys().map(String::as_str).collect();
            format!(
                "Secret {}/{} has no key `{}` (its keys: {})",
                secret.namespace,
                secret.name,
                secret.key,
                if keys.is_empty() {
                    "none".to_owned()
                } else {
                    keys.join(", ")
                }
            )
        }
    }
}

/// The value of one key, for a connection's `password_secret`.
pub async fn value(
    access: &KubeAccess,
    secret: &SecretRef,
    limit: Duration,
) -> Result<String, String> {
    let data = fetch(access, &secret.namespace, &secret.name, limit)
        .await
        .map_err(|e| format!("{e} (hint: {})", e.hint()))?;
    data.as_ref()
        .and_then(|d| d.get(&secret.key).cloned())
        .ok_or_else(|| why_missing(secret, data.as_ref()))
}

/// Where a fetched Secret is kept: the context it was read through, its namespace and name.
type SecretKey = (Option<String>, String, String);
/// A Secret's decoded data (`None`: no such Secret), or why it could not be read.
type Fetched = Result<Option<BTreeMap<String, String>>, KubeError>;

/// Reads the Secrets that variables come from (`kubernetes_secret:`) for the loader, before
/// anything runs: each Secret once per run and context, however many variables and suites
/// use its keys.
pub struct SecretVariables {
    clusters: Arc<KubeClusters>,
    runtime: tokio::runtime::Handle,
    limit: Duration,
    /// Ctrl-C or SIGTERM: reads still under way stop at once.
    cancel: CancellationToken,
    /// One cell per Secret: a slow cluster holds up only the reads of its own Secrets.
    fetched: Mutex<HashMap<SecretKey, Arc<OnceLock<Fetched>>>>,
}

impl SecretVariables {
    /// `limit` bounds each read (the client's creation included).
    pub fn new(
        clusters: Arc<KubeClusters>,
        runtime: tokio::runtime::Handle,
        limit: Duration,
        cancel: CancellationToken,
    ) -> SecretVariables {
        SecretVariables {
            clusters,
            runtime,
            limit,
            cancel,
            fetched: Mutex::default(),
        }
    }
}

impl ExternalValues for SecretVariables {
    fn kubernetes_secret(&self, context: Option<&str>, secret: &SecretRef) -> Lookup {
        let access = self.clusters.access(context);
        if let Some(reason) = access.unavailable_reason() {
            return Lookup::Unavailable(Unavailable {
                message: format!("{} needs the Kubernetes API: {reason}", secret.describe()),
                hint: None,
                skip: true,
            });
        }
        let key = (
            access.context().map(str::to_owned),
            secret.namespace.clone(),
            secret.name.clone(),
        );
        let cell = self
            .fetched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone();
        // Two suites asking for one Secret make one request: the second waits for the first.
        let result = cell.get_or_init(|| {
            self.runtime.block_on(async {
                tokio::select! {
                    read = fetch(&access, &secret.namespace, &secret.name, self.limit) => read,
                    _ = self.cancel.cancelled() => Err(KubeError::Other {
                        what: format!("reading Secret {}/{}", secret.namespace, secret.name),
                        message: "interrupted".into(),
                    }),
                }
            })
        });
        match result {
            Ok(data) => match data.as_ref().and_then(|d| d.get(&secret.key)) {
                Some(value) => Lookup::Found(value.clone()),
                None => Lookup::Absent(why_missing(secret, data.as_ref())),
            },
            Err(e) => Lookup::Unavailable(Unavailable {
                message: format!("cannot read {}: {e}", secret.describe()),
                hint: Some(match e {
                    KubeError::Forbidden { .. } => format!(
                        "grant get on secrets in namespace {} with a Role rule {{apiGroups: [\"\"], resources: [\"secrets\"], resourceNames: [\"{}\"], verbs: [\"get\"]}}, or run with a context that has it",
                        secret.namespace, secret.name
                    ),
                    other => other.hint().to_owned(),
                }),
                skip: false,
            }),
        }
    }
}
