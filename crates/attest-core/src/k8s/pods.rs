//! Pods as checks see them: which pod a check means (a name, or a selector and the first
//! ready pod), what a command run in it printed, what it logged, what a workload's container
//! environment is made of.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams, ListParams, LogParams};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use super::{KubeAccess, KubeError};
use crate::checks::Permission;

/// Which pod: by name, or the running pods a label selector matches. Exactly one of the two,
/// checked when the suite loads.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(try_from = "PodRefFields")]
#[schemars(with = "PodRefFields")]
pub struct PodRef {
    pub namespace: String,
    pub pick: PodPick,
    /// The container (default: the pod's first).
    pub container: Option<String>,
}

/// How a [`PodRef`] picks its pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodPick {
    /// `name:` one pod.
    Name(String),
    /// `selector:` the running pods a label selector matches.
    Selector(String),
}

/// A pod reference as written.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PodRefFields {
    namespace: String,
    /// A pod by name.
    #[serde(default)]
    name: Option<String>,
    /// A label selector (`app.kubernetes.io/name=paperless-ngx`); the check uses the first
    /// running pod by name, or every matching pod where the kind says so. Not with `name`.
    #[serde(default)]
    selector: Option<String>,
    /// The container (default: the pod's first).
    #[serde(default)]
    container: Option<String>,
}

impl TryFrom<PodRefFields> for PodRef {
    type Error = String;
    fn try_from(fields: PodRefFields) -> Result<PodRef, String> {
        let pick = match (fields.name, fields.selector) {
            (Some(name), None) => PodPick::Name(name),
            (None, Some(selector)) => PodPick::Selector(selector),
            (None, None) => {
                return Err("expected `name:` (one pod) or `selector:` (the running pods with these labels), found neither".into())
            }
            (Some(_), Some(_)) => {
                return Err("expected `name:` (one pod) or `selector:` (the running pods with these labels), found both; keep one".into())
            }
        };
        Ok(PodRef {
            namespace: fields.namespace,
            pick,
            container: fields.container,
        })
    }
}

impl PodRef {
    pub fn describe(&self) -> String {
        let which = match &self.pick {
            PodPick::Name(pod) => format!("pod {}/{pod}", self.namespace),
            PodPick::Selector(selector) => format!("pods {selector} in {}", self.namespace),
        };
        match &self.container {
            Some(container) => format!("{which}, container {container}"),
            None => which,
        }
    }

    /// Finding the pod (get by name, list by selector) and `verbs` on its `subresource`; a
    /// named pod is the only object they need.
    pub fn permissions(&self, verbs: &[&str], subresource: &str) -> Vec<Permission> {
        let pod = |verb: &str| Permission::new(verb, "v1", "Pod", Some(&self.namespace));
        let on_pod = |permission: Permission| match &self.pick {
            PodPick::Name(name) => permission.named(name),
            PodPick::Selector(_) => permission,
        };
        let find = match &self.pick {
            PodPick::Name(_) => "get",
            PodPick::Selector(_) => "list",
        };
        let mut needed = vec![on_pod(pod(find))];
        needed.extend(
            verbs
                .iter()
                .map(|verb| on_pod(pod(verb).subresource(subresource))),
        );
        needed
    }

    /// Names of the pods meant: the named one, or those the selector matches that are
    /// running (all of them, sorted by name).
    pub async fn pods(
        &self,
        access: &KubeAccess,
        limit: Duration,
    ) -> Result<Vec<String>, PodError> {
        let pods = self.matching(access, limit).await?;
        Ok(pods.into_iter().filter_map(|p| p.metadata.name).collect())
    }

    /// The pods meant: the named one (whatever its phase), or the running pods the selector
    /// matches, sorted by name; never none.
    pub async fn matching(
        &self,
        access: &KubeAccess,
        limit: Duration,
    ) -> Result<Vec<Pod>, PodError> {
        let client = access.client(limit).await?;
        let api: Api<Pod> = Api::namespaced(client, &self.namespace);
        match &self.pick {
            PodPick::Name(name) => {
                let what = format!("reading pod {}/{name}", self.namespace);
                match access.call(limit, &what, api.get_opt(name)).await? {
                    Some(pod) => Ok(vec![pod]),
                    None => Err(PodError::NoPod(format!(
                        "no pod {name} in namespace {}",
                        self.namespace
                    ))),
                }
            }
            PodPick::Selector(selector) => {
                let what = format!("listing pods {selector} in {}", self.namespace);
                let list = access
                    .call(
                        limit,
                        &what,
                        api.list(&ListParams::default().labels(selector)),
                    )
                    .await?;
                let total = list.items.len();
                let mut running: Vec<Pod> = list
                    .items
                    .into_iter()
                    .filter(|p| {
                        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                            && p.metadata.deletion_timestamp.is_none()
                    })
                    .collect();
                running.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
                if running.is_empty() {
                    Err(PodError::NoPod(format!(
                        "no running pod matches {selector} in namespace {} ({total} pod(s) match, none running)",
                        self.namespace
                    )))
                } else {
                    Ok(running)
                }
            }
        }
    }

    /// Runs `command` in `pod`; returns how it ended, stdout and stderr.
    pub async fn exec(
        &self,
        access: &KubeAccess,
        pod: &str,
        command: &[String],
        limit: Duration,
    ) -> Result<(ExecEnd, String, String), PodError> {
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
        Ok((
            ExecEnd::from_status(status.as_ref()),
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

/// How a command run in a pod ended, as the exec's final API Status says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEnd {
    /// It exited with this code: `status: Success` is 0; a non-zero exit is a Failure whose
    /// `details.causes` hold `{reason: ExitCode, message: "N"}`.
    Exited(i32),
    /// The API gave no exit code, only this message (kwok reports a non-zero exit as an
    /// internal error; a broken connection sends no Status at all).
    Unknown(String),
}

impl ExecEnd {
    pub fn from_status(status: Option<&Status>) -> ExecEnd {
        let Some(status) = status else {
            return ExecEnd::Unknown("the API server sent no final status for the command".into());
        };
        if status.status.as_deref() == Some("Success") {
            return ExecEnd::Exited(0);
        }
        let code = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.reason.as_deref() == Some("ExitCode"))
            .and_then(|c| c.message.as_deref()?.trim().parse().ok());
        match code {
            Some(code) => ExecEnd::Exited(code),
            None => ExecEnd::Unknown(
                [status.message.as_deref(), status.reason.as_deref()]
                    .into_iter()
                    .flatten()
                    .find(|m| !m.trim().is_empty())
                    .unwrap_or("a failure without a message or an exit code")
                    .to_owned(),
            ),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};

    fn status(json: serde_json::Value) -> Status {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_exit_code_comes_from_the_api_status() {
        assert_eq!(
            ExecEnd::from_status(Some(&status(serde_json::json!({"status": "Success"})))),
            ExecEnd::Exited(0)
        );
        // What the kubelet sends for `exit 3`.
        let failed = Status {
            status: Some("Failure".into()),
            reason: Some("NonZeroExitCode".into()),
            message: Some("command terminated with non-zero exit code: exit status 3".into()),
            details: Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ExitCode".into()),
                    message: Some("3".into()),
                    ..StatusCause::default()
                }]),
                ..StatusDetails::default()
            }),
            ..Status::default()
        };
        assert_eq!(ExecEnd::from_status(Some(&failed)), ExecEnd::Exited(3));
        // What kwok sends: a message, no code.
        let kwok = status(
            serde_json::json!({"status": "Failure", "reason": "InternalError",
            "message": "Internal error occurred: error executing command in container: exit status 3"}),
        );
        assert_eq!(
            ExecEnd::from_status(Some(&kwok)),
            ExecEnd::Unknown(
                "Internal error occurred: error executing command in container: exit status 3"
                    .into()
            )
        );
        assert!(matches!(ExecEnd::from_status(None), ExecEnd::Unknown(_)));
    }
}
