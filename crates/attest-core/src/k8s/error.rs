//! Kubernetes failures, told apart: a check fails (the cluster is not as expected), errors (it
//! could not look), or retries (the server asked it to), and the hint fits the cause.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeError {
    /// No kubeconfig, a bad context, unreadable credentials.
    Config { reason: String },
    /// 401: the credentials were refused.
    Unauthorized { what: String, message: String },
    /// 403: RBAC says no.
    Forbidden { what: String, message: String },
    /// 404 on a request that names a resource (the kind exists; the object does not).
    NotFound { what: String, message: String },
    /// The apiVersion/kind is not served: a CRD not installed, or a typo.
    UnknownKind { api_version: String, kind: String },
    /// 409.
    Conflict { what: String, message: String },
    /// 410: a watch or list continuation expired.
    Gone { what: String, message: String },
    /// 429: throttled (API priority and fairness, or an eviction blocked by a PDB).
    TooManyRequests { what: String, message: String },
    /// 5xx.
    Server {
        what: String,
        code: u16,
        message: String,
    },
    /// The request did not finish within the check's remaining time.
    Timeout { what: String },
    /// TLS: an untrusted or mismatched server certificate.
    Tls { what: String, message: String },
    /// The API server did not answer at all (connection refused, no route, DNS).
    Unreachable { what: String, message: String },
    /// Anything else the client reported.
    Other { what: String, message: String },
}

impl KubeError {
    pub fn from_kube(error: kube::Error, what: &str) -> KubeError {
        let what = what.to_owned();
        match error {
            kube::Error::Api(status) => {
                let message = status.message.clone();
                match status.code {
                    401 => KubeError::Unauthorized { what, message },
                    403 => KubeError::Forbidden { what, message },
                    404 => KubeError::NotFound { what, message },
                    409 => KubeError::Conflict { what, message },
                    410 => KubeError::Gone { what, message },
                    429 => KubeError::TooManyRequests { what, message },
                    code @ 500..=599 => KubeError::Server {
                        what,
                        code,
                        message,
                    },
                    code => KubeError::Other {
                        what,
                        message: format!("HTTP {code}: {message}"),
                    },
                }
            }
            kube::Error::Discovery(e) => KubeError::Other {
                what,
                message: e.to_string(),
            },
            other => {
                let message = error_chain(&other);
                let lower = message.to_lowercase();
                if lower.contains("certificate") || lower.contains("tls") {
                    KubeError::Tls { what, message }
                } else if lower.contains("connect")
                    || lower.contains("refused")
                    || lower.contains("dns")
                    || lower.contains("unreachable")
                {
                    KubeError::Unreachable { what, message }
                } else {
                    KubeError::Other { what, message }
                }
            }
        }
    }

    /// Worth another attempt of a polling check (the server may recover or stop throttling).
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            KubeError::TooManyRequests { .. }
                | KubeError::Server { .. }
                | KubeError::Timeout { .. }
                | KubeError::Unreachable { .. }
                | KubeError::Gone { .. }
        )
    }

    pub fn hint(&self) -> &'static str {
        match self {
            KubeError::Config { .. } => "pass --kubeconfig or set KUBECONFIG, and --context to pick the cluster; inside a pod, mount a ServiceAccount token",
            KubeError::Unauthorized { .. } => "the credentials were refused: is the token expired, or the kubeconfig for another cluster (--context)?",
            KubeError::Forbidden { .. } => "RBAC denies this: grant the Role rule the preflight names, or run with a context that has it",
            KubeError::NotFound { .. } => "nothing by that name: check the namespace (`kubectl get … -A`) and the name",
            KubeError::UnknownKind { .. } => "the API server does not serve this kind: is its CRD installed (`kubectl api-resources`), and is apiVersion right?",
            KubeError::Conflict { .. } => "the object changed meanwhile; a retry usually settles it",
            KubeError::Gone { .. } => "the list expired; a retry starts a fresh one",
            KubeError::TooManyRequests { .. } => "the API server is throttling (or a PodDisruptionBudget blocks an eviction); poll less often with `retry.interval`",
            KubeError::Server { .. } => "the API server failed; check its health (`kubectl get --raw /readyz`)",
            KubeError::Timeout { .. } => "the API server did not answer in time: is it overloaded, or the network slow? raise `timeout:`",
            KubeError::Tls { .. } => "the server certificate is not trusted: is the kubeconfig's certificate-authority for this cluster?",
            KubeError::Unreachable { .. } => "the API server is unreachable: check the kubeconfig's server URL, VPN and firewall",
            KubeError::Other { .. } => "see the message; `kubectl` with the same context may say more",
        }
    }
}

impl fmt::Display for KubeError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            KubeError::Config { reason } => {
                write!(f, "cannot configure the Kubernetes client: {reason}")
            }
            KubeError::Unauthorized { what, message } => {
                write!(f, "{what}: unauthorized (401): {message}")
            }
            KubeError::Forbidden { what, message } => {
                write!(f, "{what}: forbidden (403): {message}")
            }
            KubeError::NotFound { what, message } => {
                write!(f, "{what}: not found (404): {message}")
            }
            KubeError::UnknownKind { api_version, kind } => {
                write!(
                    f,
                    "the API server serves no kind `{kind}` in `{api_version}`"
                )
            }
            KubeError::Conflict { what, message } => write!(f, "{what}: conflict (409): {message}"),
            KubeError::Gone { what, message } => write!(f, "{what}: gone (410): {message}"),
            KubeError::TooManyRequests { what, message } => {
                write!(f, "{what}: too many requests (429): {message}")
            }
            KubeError::Server {
                what,
                code,
                message,
            } => write!(f, "{what}: server error ({code}): {message}"),
            KubeError::Timeout { what } => write!(f, "{what}: no answer in time"),
            KubeError::Tls { what, message } => write!(f, "{what}: TLS failed: {message}"),
            KubeError::Unreachable { what, message } => write!(f, "{what}: unreachable: {message}"),
            KubeError::Other { what, message } => write!(f, "{what}: {message}"),
        }
    }
}

impl std::error::Error for KubeError {}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    text
}

impl From<&KubeError> for crate::fault::Fault {
    fn from(error: &KubeError) -> crate::fault::Fault {
        crate::fault::Fault::new(error.to_string()).hint(error.hint())
    }
}
