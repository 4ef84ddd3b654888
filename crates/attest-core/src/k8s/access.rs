//! The Kubernetes client and what it fetched: created on first use (a run with no Kubernetes
//! checks never reads a kubeconfig), discovery fetched once per run, every request counted
//! and bounded by the caller's remaining time, errors typed so checks can tell a missing
//! permission from a missing object from an unreachable server.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use tokio::sync::OnceCell;

use super::error::KubeError;

/// Which cluster to talk to.
#[derive(Debug, Clone, Default)]
pub struct KubeOptions {
    /// A kubeconfig file; `None` means `KUBECONFIG`, `~/.kube/config`, then in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// A context of that kubeconfig; `None` means its current context.
    pub context: Option<String>,
    /// The context is a suite's default, not the user's choice: in a pod, where there is no
    /// kubeconfig to find it in, the pod's own ServiceAccount is used instead.
    pub suite_default: bool,
}

impl KubeOptions {
    /// The namespace the context (the named one, else the kubeconfig's current one) sets, read
    /// from the kubeconfig alone (no request); `None` when it sets none or no kubeconfig can
    /// be read (connecting says why).
    pub fn context_namespace(&self) -> Option<String> {
        let kubeconfig = match &self.kubeconfig {
            Some(path) => kube::config::Kubeconfig::read_from(path).ok()?,
            None => kube::config::Kubeconfig::read().ok()?,
        };
        let name = self
            .context
            .clone()
            .or_else(|| kubeconfig.current_context.clone())?;
        kubeconfig
            .contexts
            .into_iter()
            .find(|c| c.name == name)?
            .context?
            .namespace
            .filter(|n| !n.is_empty())
    }
}

/// What the environment fingerprint says about the cluster used.
#[derive(Debug, Clone, Default)]
pub struct ClusterInfo {
    pub context: String,
    pub server: String,
    pub version: String,
}

/// A lazily created client, shared by every check of a run, with the run's discovery cache.
pub struct KubeAccess {
    options: KubeOptions,
    client: OnceCell<Result<(kube::Client, ClusterInfo), KubeError>>,
    kinds: tokio::sync::Mutex<HashMap<(String, String), (ApiResource, ApiCapabilities)>>,
    requests: AtomicU64,
    /// The same client without kube's retry of 429/503/504: for evictions, whose 429 (a
    /// PodDisruptionBudget) the check itself must see, retry and report.
    unretried: std::sync::OnceLock<kube::Client>,
    /// Objects fetched in the last moments, so checks on one object within one attempt
    /// window share a request (never across attempts of a polling check: see [`SHARE_FOR`]).
    recent: Mutex<HashMap<String, (std::time::Instant, Vec<serde_json::Value>)>>,
    /// Why no cluster may be used in this run (checks needing one are skipped).
    unavailable: Option<String>,
}

/// How long a fetched list is shared with other checks asking the same question. Shorter
/// than any sensible retry interval, so a polling check always sees a fresh object.
const SHARE_FOR: Duration = Duration::from_millis(250);

/// What to fetch: a kind, where, and which objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Selection {
    pub api_version: String,
    pub kind: String,
    /// `None` for cluster-scoped kinds, or all namespaces.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
}

impl Selection {
    /// `v1/PersistentVolumeClaim data/data-postgres-postgresql-0`, or with the selector.
    pub fn describe(&self) -> String {
        let mut text = format!("{}/{}", self.api_version, self.kind);
        let place = match (&self.namespace, &self.name) {
            (Some(ns), Some(name)) => format!(" {ns}/{name}"),
            (None, Some(name)) => format!(" {name}"),
            (Some(ns), None) => format!(" in {ns}"),
            (None, None) => " in all namespaces".to_owned(),
        };
        text.push_str(&place);
        if let Some(labels) = &self.label_selector {
            text.push_str(&format!(" with labels {labels}"));
        }
        if let Some(fields) = &self.field_selector {
            text.push_str(&format!(" with fields {fields}"));
        }
        text
    }

    fn group_version(&self) -> (String, String) {
        match self.api_version.split_once('/') {
            Some((group, version)) => (group.to_owned(), version.to_owned()),
            None => (String::new(), self.api_version.clone()),
        }
    }
}

impl KubeAccess {
    pub fn new(options: KubeOptions) -> KubeAccess {
        KubeAccess {
            options,
            client: OnceCell::new(),
            kinds: Default::default(),
            requests: AtomicU64::new(0),
            unretried: std::sync::OnceLock::new(),
            recent: Mutex::default(),
            unavailable: None,
        }
    }

    /// Marks the cluster as unavailable for this run, with the reason reports give.
    pub fn unavailable(mut self, reason: Option<String>) -> KubeAccess {
        self.unavailable = reason;
        self
    }

    /// Why Kubernetes checks are skipped in this run, if they are.
    pub fn unavailable_reason(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    /// The kubeconfig context asked for; `None` is the kubeconfig's current one.
    pub fn context(&self) -> Option<&str> {
        self.options.context.as_deref()
    }

    /// Whether a client was ever asked for.
    pub fn used(&self) -> bool {
        self.client.initialized()
    }

    /// API requests made so far (discovery included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The cluster, once a client exists.
    pub fn cluster(&self) -> Option<ClusterInfo> {
        match self.client.get() {
            Some(Ok((_, info))) => Some(info.clone()),
            _ => None,
        }
    }

    /// Counts one request and bounds it by `limit`.
    pub async fn call<T>(
        &self,
        limit: Duration,
        what: &str,
        request: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, KubeError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(limit, request).await {
            Ok(result) => result.map_err(|e| KubeError::from_kube(e, what)),
            Err(_) => Err(KubeError::Timeout {
                what: what.to_owned(),
            }),
        }
    }

    /// The client, created on first use within `limit`.
    pub async fn client(&self, limit: Duration) -> Result<kube::Client, KubeError> {
        let created = self
            .client
            .get_or_init(|| async {
                match tokio::time::timeout(limit, self.create()).await {
                    Ok(result) => result,
                    Err(_) => Err(KubeError::Timeout {
                        what: "connecting to the API server".into(),
                    }),
                }
            })
            .await;
        created
            .as_ref()
            .map(|(c, _)| c.clone())
            .map_err(Clone::clone)
    }

    /// The client without kube's own retries (see `unretried`), created on first use.
    pub async fn unretried_client(&self, limit: Duration) -> Result<kube::Client, KubeError> {
        let client = self.client(limit).await?;
        Ok(self.unretried.get().cloned().unwrap_or(client))
    }

    async fn create(&self) -> Result<(kube::Client, ClusterInfo), KubeError> {
        let config_error = |e: &dyn std::fmt::Display| KubeError::Config {
            reason: e.to_string(),
        };
        let options = kube::config::KubeConfigOptions {
            context: self.options.context.clone(),
            ..Default::default()
        };
        // An explicit file, else KUBECONFIG (merged) or ~/.kube/config, else the pod's
        // ServiceAccount: as kubectl and the client libraries do, naming what was used.
        let kubeconfig = match &self.options.kubeconfig {
            Some(path) => {
                kube::config::Kubeconfig::read_from(path).map_err(|e| KubeError::Config {
                    reason: format!("{}: {e}", path.display()),
                })?
            }
            None => match kube::config::Kubeconfig::read() {
                Ok(kubeconfig) => kubeconfig,
                Err(e) if self.options.context.is_some() && !self.options.suite_default => {
                    return Err(KubeError::Config {
                        reason: format!(
                            "context `{}` needs a kubeconfig, and none could be read: {e}",
                            self.options.context.as_deref().unwrap_or_default()
                        ),
                    })
                }
                Err(no_kubeconfig) => match kube::Config::incluster() {
                    Ok(config) => {
                        let namespace = config.default_namespace.clone();
                        let mut context = format!("in-cluster (ServiceAccount in {namespace})");
                        if let Some(named) = &self.options.context {
                            context.push_str(&format!(
                                "; the suite's context `{named}` needs a kubeconfig"
                            ));
                        }
                        return self.connect(config, context).await;
                    }
                    Err(not_in_pod) => {
                        return Err(KubeError::Config {
                            reason: format!(
                                "no kubeconfig ({no_kubeconfig}) and not in a pod ({not_in_pod})"
                            ),
                        })
                    }
                },
            },
        };
        if let Some(wanted) = &options.context {
            let names: Vec<&str> = kubeconfig
                .contexts
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            if !names.contains(&wanted.as_str()) {
                let whose = match self.options.suite_default {
                    true => "; the suite names it (`kubernetes: {context: …}`): run with `--context NAME` to use another",
                    false => "",
                };
                return Err(KubeError::Config {
                    reason: format!(
                        "the kubeconfig has no context `{wanted}` (its contexts: {}){whose}",
                        names.join(", ")
                    ),
                });
            }
        }
        let context = options
            .context
            .clone()
            .or_else(|| kubeconfig.current_context.clone())
            .unwrap_or_default();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| config_error(&e))?;
        self.connect(config, context).await
    }

    /// A client for `config`, and what the fingerprint says of it (one request: the version).
    async fn connect(
        &self,
        config: kube::Config,
        context: String,
    ) -> Result<(kube::Client, ClusterInfo), KubeError> {
        let config_error = |e: &dyn std::fmt::Display| KubeError::Config {
            reason: e.to_string(),
        };
        let server = config.cluster_url.to_string();
        let mut plain = config.clone();
        plain.default_retry = false;
        let unretried = kube::Client::try_from(plain).map_err(|e| config_error(&e))?;
        let _ = self.unretried.set(unretried);
        let client = kube::Client::try_from(config).map_err(|e| config_error(&e))?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let version =
            match tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await {
                Ok(Ok(info)) => info.git_version,
                Ok(Err(e)) => return Err(KubeError::from_kube(e, "reading the server version")),
                Err(_) => {
                    return Err(KubeError::Timeout {
                        what: format!("reaching the API server at {server}"),
                    })
                }
            };
        Ok((
            client,
            ClusterInfo {
                context,
                server,
                version,
            },
        ))
    }

    /// The API resource of a kind, discovered once per run.
    pub async fn resource(
        &self,
        selection: &Selection,
        limit: Duration,
    ) -> Result<(ApiResource, ApiCapabilities), KubeError> {
        let (group, version) = selection.group_version();
        let key = (selection.api_version.clone(), selection.kind.clone());
        let mut kinds = self.kinds.lock().await;
        if let Some(found) = kinds.get(&key) {
            return Ok(found.clone());
        }
        let client = self.client(limit).await?;
        let gvk = kube::api::GroupVersionKind::gvk(&group, &version, &selection.kind);
        let what = format!("discovering {}/{}", selection.api_version, selection.kind);
        let found = self
            .call(limit, &what, kube::discovery::pinned_kind(&client, &gvk))
            .await
            .map_err(|e| match e {
                KubeError::NotFound { .. } | KubeError::Other { .. } => KubeError::UnknownKind {
                    api_version: selection.api_version.clone(),
                    kind: selection.kind.clone(),
                },
                other => other,
            })?;
        kinds.insert(key, found.clone());
        Ok(found)
    }

    /// The objects a selection names, as JSON; shared for [`SHARE_FOR`] with identical asks.
    pub async fn objects(
        &self,
        selection: &Selection,
        limit: Duration,
    ) -> Result<Vec<serde_json::Value>, KubeError> {
        let key = format!("{selection:?}");
        if let Some((at, objects)) = self
            .recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            if at.elapsed() < SHARE_FOR {
                return Ok(objects.clone());
            }
        }
        let (resource, caps) = self.resource(selection, limit).await?;
        let client = self.client(limit).await?;
        let api: Api<DynamicObject> = match (&caps.scope, &selection.namespace) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client, ns, &resource),
            _ => Api::all_with(client, &resource),
        };
        let what = format!("reading {}", selection.describe());
        let objects = match &selection.name {
            Some(name) => self
                .call(limit, &what, api.get_opt(name))
                .await?
                .into_iter()
                .collect::<Vec<_>>(),
            None => {
                let mut params = ListParams::default();
                if let Some(labels) = &selection.label_selector {
                    params = params.labels(labels);
                }
                if let Some(fields) = &selection.field_selector {
                    params = params.fields(fields);
                }
                self.call(limit, &what, api.list(&params)).await?.items
            }
        };
        let values: Vec<serde_json::Value> = objects
            .into_iter()
            .map(|mut object| {
                // A DynamicObject keeps apiVersion/kind in `types`; put them back for matching.
                if object.types.is_none() {
                    object.types = Some(kube::api::TypeMeta {
                        api_version: selection.api_version.clone(),
                        kind: selection.kind.clone(),
                    });
                }
                serde_json::to_value(object).unwrap_or_default()
            })
            .collect();
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (std::time::Instant::now(), values.clone()));
        Ok(values)
    }
}

/// The clusters a run talks to, one client per kubeconfig context used. `--context` names one
/// for the whole run; otherwise a suite's `kubernetes: {context: …}` picks its own, and suites
/// without one share the kubeconfig's current context.
pub struct KubeClusters {
    options: KubeOptions,
    unavailable: Option<String>,
    /// In order of first use, for the environment fingerprint.
    accesses: Mutex<Vec<Arc<KubeAccess>>>,
    /// The kubeconfig's current context, read when a suite first names one.
    current: std::sync::OnceLock<Option<String>>,
}

impl KubeClusters {
    /// `unavailable`: why no cluster may be used in this run (its checks are skipped).
    pub fn new(options: KubeOptions, unavailable: Option<String>) -> KubeClusters {
        KubeClusters {
            options,
            unavailable,
            accesses: Mutex::default(),
            current: Default::default(),
        }
    }

    /// Clusters whose default is `access` (a run's context, or a test's own client).
    pub fn around(access: Arc<KubeAccess>) -> KubeClusters {
        KubeClusters {
            options: access.options.clone(),
            unavailable: access.unavailable.clone(),
            accesses: Mutex::new(vec![access]),
            current: Default::default(),
        }
    }

    /// The client for a suite: the run's `--context` if given, else the suite's own, else
    /// the kubeconfig's current context. Created on first use, then shared.
    pub fn access(&self, suite_context: Option<&str>) -> Arc<KubeAccess> {
        let suite_context = suite_context
            .filter(|_| self.options.context.is_none())
            // A suite naming the current context shares the default client.
            .filter(|named| self.current_context().as_deref() != Some(named));
        let (context, suite_default) = match suite_context {
            Some(named) => (Some(named.to_owned()), true),
            None => (self.options.context.clone(), false),
        };
        let mut accesses = self.accesses.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = accesses.iter().find(|a| a.options.context == context) {
            return found.clone();
        }
        let access = Arc::new(
            KubeAccess::new(KubeOptions {
                kubeconfig: self.options.kubeconfig.clone(),
                context,
                suite_default,
            })
            .unavailable(self.unavailable.clone()),
        );
        accesses.push(access.clone());
        access
    }

    /// The current context of the run's kubeconfig, if one can be read.
    fn current_context(&self) -> Option<String> {
        self.current
            .get_or_init(|| {
                let kubeconfig = match &self.options.kubeconfig {
                    Some(path) => kube::config::Kubeconfig::read_from(path),
                    None => kube::config::Kubeconfig::read(),
                };
                kubeconfig.ok()?.current_context
            })
            .clone()
    }

    /// Every client asked for so far, in order.
    pub fn all(&self) -> Vec<Arc<KubeAccess>> {
        self.accesses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Default for KubeAccess {
    fn default() -> Self {
        KubeAccess::new(KubeOptions::default())
    }
}
