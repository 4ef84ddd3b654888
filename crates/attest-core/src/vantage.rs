//! Where a check is measured from. Some criteria are about what an application pod sees (story
//! 5.5: DNS, latency and authentication *from the apps namespace*); a check can say so
//! (`from: { namespace: apps }`), and its result says whether this run measured it from
//! there, from a pod elsewhere, or from outside the cluster (through a port-forward or not).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `from:` on a check: the namespace of the pod its criterion is about.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vantage {
    /// The namespace an application pod would run in (`apps`); run attest there with
    /// `attest job --namespace apps`.
    pub namespace: String,
}

/// Where this attest process runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// In a pod: what the Job's downward API (or the ServiceAccount mount) says.
    Pod {
        namespace: String,
        pod: Option<String>,
        node: Option<String>,
    },
    /// On a machine outside the cluster.
    Outside { host: String },
}

/// The downward-API variables `attest job` sets on its container.
pub const POD_NAMESPACE_ENV: &str = "ATTEST_POD_NAMESPACE";
pub const POD_NAME_ENV: &str = "ATTEST_POD_NAME";
pub const NODE_NAME_ENV: &str = "ATTEST_NODE_NAME";

const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

impl Place {
    /// This process's place: in a pod (kubelet's `KUBERNETES_SERVICE_HOST` is set), the Job's
    /// downward-API variables, else the mounted ServiceAccount's namespace and the pod's host
    /// name; else outside, by host name.
    pub fn capture() -> Place {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        // kubelet sets KUBERNETES_SERVICE_HOST in every container: without it, attest is not
        // in a pod, whatever else the environment claims.
        let in_pod = var("KUBERNETES_SERVICE_HOST").is_some();
        let namespace = var(POD_NAMESPACE_ENV).filter(|_| in_pod).or_else(|| {
            in_pod.then_some(())?;
            let text = std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE).ok()?;
            Some(text.trim().to_owned()).filter(|n| !n.is_empty())
        });
        match namespace {
            Some(namespace) => Place::Pod {
                namespace,
                pod: var(POD_NAME_ENV).or_else(|| var("HOSTNAME")),
                node: var(NODE_NAME_ENV),
            },
            None => Place::Outside {
                host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_owned())
                    .unwrap_or_else(|_| "unknown".into()),
            },
        }
    }

    /// How a check with `from:` was measured here; `via` is the port-forward it went
    /// through, if any.
    pub fn judge(&self, wanted: &Vantage, via: Option<&str>) -> VantageNote {
        let holds = matches!(self, Place::Pod { namespace, .. } if *namespace == wanted.namespace);
        let path = match (self, via) {
            (_, Some(via)) => format!("through a port-forward to {via} "),
            _ => String::new(),
        };
        let measured_from = match self {
            Place::Outside { host } => {
                format!("{path}from outside the cluster (host `{host}`)")
            }
            Place::Pod { .. } => format!("{path}from {self}"),
        };
        VantageNote {
            namespace: wanted.namespace.clone(),
            measured_from,
            holds: holds && via.is_none(),
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Place::Outside { host } => write!(f, "host `{host}`, outside the cluster"),
            Place::Pod {
                namespace,
                pod,
                node,
            } => {
                match pod {
                    Some(pod) => write!(f, "pod `{pod}` in namespace `{namespace}`")?,
                    None => write!(f, "a pod in namespace `{namespace}`")?,
                }
                match node {
                    Some(node) => write!(f, " on node `{node}`"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// A check's `from:` against where it ran: part of its outcome and of every report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VantageNote {
    /// The namespace the criterion is about.
    pub namespace: String,
    /// Where it was measured from, in words.
    pub measured_from: String,
    /// Measured from a pod in that namespace, without a port-forward.
    pub holds: bool,
}

impl VantageNote {
    /// Host and pod names pass the run's one redaction point like every other text.
    pub fn redacted(self, redactor: &crate::redact::Redactor) -> VantageNote {
        VantageNote {
            namespace: redactor.redact(&self.namespace),
            measured_from: redactor.redact(&self.measured_from),
            holds: self.holds,
        }
    }
}

impl fmt::Display for VantageNote {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.holds {
            true => write!(
                f,
                "measured {}, as the criterion asks",
                self.measured_from
            ),
            false => write!(
                f,
                "measured {}, not from a pod in namespace `{}` as the criterion asks (run it there with `attest job --namespace {}`)",
                self.measured_from, self.namespace, self.namespace
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apps() -> Vantage {
        Vantage {
            namespace: "apps".into(),
        }
    }

    #[test]
    fn a_pod_in_the_namespace_holds() {
        let place = Place::Pod {
            namespace: "apps".into(),
            pod: Some("attest-x1".into()),
            node: Some("k3s-real-01".into()),
        };
        let note = place.judge(&apps(), None);
        assert!(note.holds);
        assert_eq!(
            note.to_string(),
            "measured from pod `attest-x1` in namespace `apps` on node `k3s-real-01`, as the criterion asks"
        );
    }

    #[test]
    fn outside_or_elsewhere_or_through_a_port_forward_does_not() {
        let outside = Place::Outside {
            host: "laptop".into(),
        };
        let note = outside.judge(&apps(), Some("data/service postgres-postgresql"));
        assert!(!note.holds);
        assert_eq!(
            note.to_string(),
            "measured through a port-forward to data/service postgres-postgresql from outside the cluster (host `laptop`), not from a pod in namespace `apps` as the criterion asks (run it there with `attest job --namespace apps`)"
        );
        let elsewhere = Place::Pod {
            namespace: "data".into(),
            pod: None,
            node: None,
        };
        let note = elsewhere.judge(&apps(), None);
        assert!(!note.holds);
        assert!(note.measured_from.contains("a pod in namespace `data`"));
        // In the right namespace, a port-forward still measures another path.
        let inside = Place::Pod {
            namespace: "apps".into(),
            pod: None,
            node: None,
        };
        assert!(!inside.judge(&apps(), Some("data/service pg")).holds);
    }
}
