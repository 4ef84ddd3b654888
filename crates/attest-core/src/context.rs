//! What a running check may use: runtime variables, teardown registration and cancellation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::k8s::{KubeAccess, KubeClusters};
use crate::net::{ClusterNetwork, Network};
use crate::pg::Sessions;
use crate::redact::Redactor;

/// Values registered by checks during a run, shared by the checks of one suite.
#[derive(Default)]
pub struct RuntimeVars {
    values: Mutex<HashMap<String, String>>,
}

impl RuntimeVars {
    pub fn set(&self, name: String, value: String) {
        self.values
            .lock()
            .expect("runtime vars")
            .insert(name, value);
    }
    fn get(&self, name: &str) -> Option<String> {
        self.values.lock().expect("runtime vars").get(name).cloned()
    }
}

/// A cleanup step registered by a check; run in reverse order when the suite ends, whatever
/// happened (failure, timeout, Ctrl-C).
pub struct TeardownStep {
    pub label: String,
    pub action: BoxFuture<'static, Result<(), String>>,
}

#[derive(Default)]
pub struct TeardownStack {
    steps: Mutex<Vec<TeardownStep>>,
}

impl TeardownStack {
    pub fn push(&self, step: TeardownStep) {
        self.steps.lock().expect("teardown stack").push(step);
    }
    /// Takes all steps, last registered first.
    pub fn drain(&self) -> Vec<TeardownStep> {
        let mut steps = std::mem::take(&mut *self.steps.lock().expect("teardown stack"));
        steps.reverse();
        steps
    }
}

/// Handed to every check while it runs.
#[derive(Clone)]
pub struct CheckContext {
    /// This run's id, written into the marker of everything the run creates.
    pub run_id: Arc<str>,
    pub suite_id: String,
    pub check_id: String,
    pub vars: Arc<RuntimeVars>,
    pub teardown: Arc<TeardownStack>,
    pub cancel: CancellationToken,
    pub redactor: Redactor,
    pub services: Services,
    /// When the check's time runs out; every request it makes is bounded by what is left.
    pub deadline: std::time::Instant,
    /// The check's query, sent ahead with its neighbours' (see [`crate::pg::Pipeline`]).
    pub ahead: Option<Ahead>,
}

/// Where a check's query was sent ahead: its pipeline, and its place in it.
#[derive(Clone)]
pub struct Ahead {
    pub pipeline: Arc<crate::pg::Pipeline>,
    pub position: usize,
}

/// What every check of a run shares, passed in through the run configuration so that tests
/// can inject their own.
#[derive(Clone)]
pub struct Services {
    /// How every kind reaches its target.
    pub network: Arc<dyn Network>,
    /// Query-only PostgreSQL sessions shared by the whole run.
    pub sessions: Arc<Sessions>,
    /// The Kubernetes client of this suite's cluster, created on first use.
    pub kube: Arc<KubeAccess>,
    /// Every cluster of the run, for suites that name their own context.
    pub clusters: Arc<KubeClusters>,
}

impl Services {
    /// Direct TCP, port-forwards through `kube`, fresh sessions.
    pub fn with_kube(kube: Arc<KubeAccess>) -> Services {
        Services::with_clusters(Arc::new(KubeClusters::around(kube)))
    }

    /// Direct TCP, port-forwards through the default cluster of `clusters`, fresh sessions.
    pub fn with_clusters(clusters: Arc<KubeClusters>) -> Services {
        let kube = clusters.access(None);
        Services {
            network: Arc::new(ClusterNetwork {
                kube: kube.clone(),
                forward_timeout: std::time::Duration::from_secs(15),
            }),
            sessions: Arc::default(),
            kube,
            clusters,
        }
    }

    /// The same services for a suite that names its cluster (`kubernetes: {context: …}`):
    /// its client, and port-forwards through it; sessions stay shared.
    pub fn for_context(&self, context: Option<&str>) -> Services {
        let kube = self.clusters.access(context);
        if Arc::ptr_eq(&kube, &self.kube) {
            return self.clone();
        }
        Services {
            network: self
                .network
                .with_cluster(kube.clone())
                .unwrap_or_else(|| self.network.clone()),
            sessions: self.sessions.clone(),
            kube,
            clusters: self.clusters.clone(),
        }
    }
}

impl Default for Services {
    fn default() -> Self {
        Services::with_kube(Arc::default())
    }
}

impl CheckContext {
    /// Replaces runtime-variable markers in `text` with the values registered so far.
    pub fn expand(&self, text: &str) -> Result<String, String> {
        crate::text::replace_markers(text, |name| {
            let name = name.ok_or("malformed runtime variable marker")?;
            self.vars.get(name).ok_or_else(|| {
                format!(
                    "variable `{name}` is set by an earlier check's `register:`, which has not run or did not pass"
                )
            })
        })
    }

    /// The `COMMENT` text that marks an object this check creates as attest's, so that
    /// `attest cleanup` can find it after a run that could not clean up (SIGKILL, power cut).
    pub fn marker(&self) -> String {
        crate::cleanup::marker(&self.run_id, &self.suite_id, &self.check_id)
    }

    /// Time left before the check's deadline (at least a moment, so a last request can fail
    /// with its own message instead of the runner's timeout).
    pub fn remaining(&self) -> std::time::Duration {
        self.deadline
            .saturating_duration_since(std::time::Instant::now())
            .max(std::time::Duration::from_millis(50))
    }

    /// Registers a cleanup step for the end of the suite.
    pub fn on_teardown(
        &self,
        label: impl Into<String>,
        action: impl std::future::Future<Output = Result<(), String>> + Send + 'static,
    ) {
        self.teardown.push(TeardownStep {
            label: label.into(),
            action: Box::pin(action),
        });
    }

    /// A context outside any run (resolving a connection for `attest cleanup`).
    pub fn standalone(redactor: Redactor) -> CheckContext {
        CheckContext {
            redactor,
            ..CheckContext::for_test()
        }
    }

    /// A context for unit tests of a single check.
    pub fn for_test() -> CheckContext {
        CheckContext {
            run_id: "test".into(),
            suite_id: "test".into(),
            check_id: "check".into(),
            vars: Arc::default(),
            teardown: Arc::default(),
            cancel: CancellationToken::new(),
            redactor: Redactor::default(),
            services: Services::default(),
            deadline: std::time::Instant::now() + std::time::Duration::from_secs(30),
            ahead: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{display_markers, runtime_marker};

    #[test]
    fn expand_replaces_registered_values_and_names_missing_ones() {
        let ctx = CheckContext::for_test();
        ctx.vars.set("app_user".into(), "paperless_user".into());
        let text = format!("user={} db=x", runtime_marker("app_user"));
        assert_eq!(ctx.expand(&text).unwrap(), "user=paperless_user db=x");
        let err = ctx.expand(&runtime_marker("app_password")).unwrap_err();
        assert!(err.contains("`app_password`"), "{err}");
        assert_eq!(display_markers(&text), "user=${app_user} db=x");
    }
}
