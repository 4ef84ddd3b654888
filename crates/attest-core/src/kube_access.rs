//! The Kubernetes client, created on first use: a run with no Kubernetes checks never reads a
//! kubeconfig. Where the kubeconfig and context come from is decided by the caller (flags,
//! `KUBECONFIG`, the default path, or in-cluster configuration).

use std::path::PathBuf;

use tokio::sync::OnceCell;

/// Which cluster to talk to.
#[derive(Debug, Clone, Default)]
pub struct KubeOptions {
    /// A kubeconfig file; `None` means `KUBECONFIG`, `~/.kube/config`, then in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// A context of that kubeconfig; `None` means its current context.
    pub context: Option<String>,
}

/// Why no client could be made.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot configure the Kubernetes client: {reason}")]
pub struct KubeConfigError {
    pub reason: String,
}

impl KubeConfigError {
    pub fn hint(&self) -> &'static str {
        "pass --kubeconfig or set KUBECONFIG, and --context to pick the cluster; inside a pod, mount a ServiceAccount token"
    }
}

/// A lazily created client, shared by every check of a run.
pub struct KubeAccess {
    options: KubeOptions,
    client: OnceCell<Result<kube::Client, KubeConfigError>>,
}

impl KubeAccess {
    pub fn new(options: KubeOptions) -> KubeAccess {
        KubeAccess {
            options,
            client: OnceCell::new(),
        }
    }

    /// Whether a client was ever asked for (the fingerprint only mentions clusters it used).
    pub fn used(&self) -> bool {
        self.client.initialized()
    }

    pub async fn client(&self) -> Result<kube::Client, KubeConfigError> {
        self.client
            .get_or_init(|| async { self.create().await })
            .await
            .clone()
    }

    async fn create(&self) -> Result<kube::Client, KubeConfigError> {
        let error = |e: &dyn std::fmt::Display| KubeConfigError {
            reason: e.to_string(),
        };
        let options = kube::config::KubeConfigOptions {
            context: self.options.context.clone(),
            ..Default::default()
        };
        let config = match &self.options.kubeconfig {
            Some(path) => {
                let kubeconfig =
                    kube::config::Kubeconfig::read_from(path).map_err(|e| KubeConfigError {
                        reason: format!("{}: {e}", path.display()),
                    })?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| error(&e))?
            }
            None if self.options.context.is_some() => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| error(&e))?,
            None => kube::Config::infer().await.map_err(|e| error(&e))?,
        };
        kube::Client::try_from(config).map_err(|e| error(&e))
    }
}

impl Default for KubeAccess {
    fn default() -> Self {
        KubeAccess::new(KubeOptions::default())
    }
}
