//! Pods as checks see them: which pod a check means (a name, or a selector and the first
//! ready pod), what a command run in it printed, what it logged, what a workload's container
//! environment is made of.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, ListParams, LogParams};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use super::{KubeAccess, KubeError};
use crate::checks::Permission;

/// Which pod: by name, or the pods a label selector matches.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PodRef {
    pub namespace: String,
    /// A pod by name.
    #[serde(default)]
    pub name: Option<String>,
    /// A label selector (`app.kubernetes.io/name=paperless-ngx`); the check uses the first
    /// running pod by name, or every matching pod where the kind says so.
    #[serde(default)]
    pub selector: Option<String>,
    /// The container (default: the pod's first).
    #[serde(default)]
    pub container: Option<String>,
}

impl PodRef {
    pub fn describe(&self) -> String {
        let which = match (&self.name, &self.selector) {
            (Some(pod), _) => format!("pod {}/{pod}", self.namespace),
            (None, Some(selector)) => format!("pods {selector} in {}", self.namespace),
            (None, None) => format!("a pod in {}", self.namespace),
        };
        match &self.container {
            Some(container) => format!("{which}, container {container}"),
            None => which,
        }
    }

    /// Finding the pod (get by name, list by selector) and `verb` on its `subresource`.
    pub fn permissions(&self, verb: &str, subresource: &str) -> Vec<Permission> {
        let find = if self.name.is_some() { "get" } else { "list" };
        let pod = |verb: &str| Permission::new(verb, "v1", "Pod", Some(&self.namespace));
        vec![pod(find), pod(verb).subresource(subresource)]
    }

    /// Names of the pods meant: the named one, or those the selector matches that are
    /// running (all of them, sorted by name).
    pub async fn pods(
        &self,
        access: &KubeAccess,
        limit: Duration,
    ) -> Result<Vec<String>, PodError> {
        let client = access.client(limit).await?;
        let api: Api<Pod> = Api::namespaced(client, &self.namespace);
        match (&self.name, &self.selector) {
            (Some(name), _) => {
                let what = format!("reading pod {}/{name}", self.namespace);
                match access.call(limit, &what, api.get_opt(name)).await? {
                    Some(_) => Ok(vec![name.clone()]),
                    None => Err(PodError::NoPod(format!(
                        "no pod {name} in namespace {}",
                        self.namespace
                    ))),
                }
            }
            (None, Some(selector)) => {
                let what = format!("listing pods {selector} in {}", self.namespace);
                let list = access
                    .call(
                        limit,
                        &what,
                        api.list(&ListParams::default().labels(selector)),
                    )
                    .await?;
                let mut running: Vec<String> = list
                    .items
                    .iter()
                    .filter(|p| {
                        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                            && p.metadata.deletion_timestamp.is_none()
                    })
                    .filter_map(|p| p.metadata.name.clone())
                    .collect();
                running.sort();
                if running.is_empty() {
                    Err(PodError::NoPod(format!(
                        "no running pod matches {selector} in namespace {} ({} pod(s) match, none running)",
                        self.namespace,
                        list.items.len()
                    )))
                } else {
                    Ok(running)
                }
            }
            (None, None) => Err(PodError::NoPod("give `pod:` or `selector:`".into())),
        }
    }

    /// Runs `command` in `pod`; returns exit code, stdout and stderr.
    pub async fn exec(
        &self,
        access: &KubeAccess,
        pod: &str,
        command: &[String],
        limit: Duration,
    ) -> Result<(i32, String, String), PodError> {
        let client = access.client(limit).await?;
        let api: Api<Pod> = Api::namespaced(client, &self.namespace);
        let mut params = AttachParams::default()
            .stdout(true)
            .stderr(true)
            .stdin(false);
        if let Some(container) = &self.container {
            params = params.container(container);
        }
        let what = format!("exec in pod {}/{pod}", self.namespace);
        let mut process = access
            .call(limit, &what, api.exec(pod, command.to_vec(), &params))
            .await?;
        let status = process.take_status();
        let (mut out, mut err) = (process.stdout(), process.stderr());
        let run = async {
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            let read_out = async {
                if let Some(out) = out.as_mut() {
                    let _ = out.read_to_end(&mut stdout).await;
                }
            };
            let read_err = async {
                if let Some(err) = err.as_mut() {
                    let _ = err.read_to_end(&mut stderr).await;
                }
            };
            futures::join!(read_out, read_err);
            let status = match status {
                Some(status) => status.await,
                None => None,
            };
            (status, stdout, stderr)
        };
        let (status, stdout, stderr) = tokio::time::timeout(limit, run)
            .await
            .map_err(|_| KubeError::Timeout { what: what.clone() })?;
        let code = exit_code(status.as_ref());
        Ok((
            code,
            String::from_utf8_lossy(&stdout).into_owned(),
            String::from_utf8_lossy(&stderr).into_owned(),
        ))
    }

    /// The pod's log (of its current or previous container instance).
    pub async fn logs(
        &self,
        access: &KubeAccess,
        pod: &str,
        params: LogParams,
        limit: Duration,
    ) -> Result<String, PodError> {
        let client = access.client(limit).await?;
        let api: Api<Pod> = Api::namespaced(client, &self.namespace);
        let mut params = params;
        params.container = self.container.clone();
        let what = format!("reading the log of pod {}/{pod}", self.namespace);
        Ok(access.call(limit, &what, api.logs(pod, &params)).await?)
    }
}

/// The exit code in an exec's final status: 0 on Success, else the `ExitCode` cause.
fn exit_code(status: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>) -> i32 {
    let Some(status) = status else { return -1 };
    if status.status.as_deref() == Some("Success") {
        return 0;
    }
    status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| {
            causes
                .iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
        })
        .and_then(|c| c.message.as_deref()?.parse().ok())
        .unwrap_or(-1)
}

/// Why a pod check could not look.
#[derive(Debug, Clone)]
pub enum PodError {
    Api(KubeError),
    /// The pod (or any pod matching) does not exist or is not running.
    NoPod(String),
}

impl From<KubeError> for PodError {
    fn from(e: KubeError) -> Self {
        PodError::Api(e)
    }
}
