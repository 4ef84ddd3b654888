//! Port-forward routes: a Service (resolved to a ready pod behind it, and the Service port to
//! the pod's target port) or a pod and a port, tunnelled through the API server the way
//! `kubectl port-forward` does. Nothing dials a pod or Service address.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};

use super::{KubeAccess, KubeError};
use crate::stream::Stream;

/// What a port-forward route points at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ForwardTarget {
    Service(String),
    Pod(String),
}

impl ForwardTarget {
    /// The Service's or pod's name.
    pub fn name(&self) -> &str {
        match self {
            ForwardTarget::Service(name) | ForwardTarget::Pod(name) => name,
        }
    }
}

/// Opens one stream to `port` of the target, within `limit`.
pub async fn open(
    access: &KubeAccess,
    namespace: &str,
    target: &ForwardTarget,
    port: u16,
    limit: Duration,
) -> Result<Box<dyn Stream>, KubeError> {
    let (pod, pod_port) = match target {
        ForwardTarget::Pod(name) => (name.clone(), port),
        ForwardTarget::Service(name) => {
            behind_service(access, namespace, name, port, limit).await?
        }
    };
    let client = access.client(limit).await?;
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let what = format!("port-forward to pod {namespace}/{pod}:{pod_port}");
    let mut forwarder = access
        .call(limit, &what, pods.portforward(&pod, &[pod_port]))
        .await?;
    let stream = forwarder
        .take_stream(pod_port)
        .ok_or_else(|| KubeError::Other {
            what: what.clone(),
            message: "the API server gave no stream for the port".into(),
        })?;
    // The forwarder task ends when the stream is closed; errors surface on the stream.
    tokio::spawn(async move {
        let _ = forwarder.join().await;
    });
    Ok(Box::new(stream))
}

/// A ready pod behind a Service and the pod port its `port` maps to.
async fn behind_service(
    access: &KubeAccess,
    namespace: &str,
    service: &str,
    port: u16,
    limit: Duration,
) -> Result<(String, u16), KubeError> {
    let client = access.client(limit).await?;
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let what = format!("reading Service {namespace}/{service}");
    let svc = access
        .call(limit, &what, services.get_opt(service))
        .await?
        .ok_or_else(|| KubeError::NotFound {
            what: what.clone(),
            message: format!("no Service {service} in namespace {namespace}"),
        })?;
    let spec = svc.spec.unwrap_or_default();
    let service_port = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.port == i32::from(port))
        .ok_or_else(|| KubeError::NotFound {
            what: what.clone(),
            message: format!("Service {service} has no port {port}"),
        })?;
    let selector = spec.selector.unwrap_or_default();
    if selector.is_empty() {
        return Err(KubeError::Other {
            what,
            message: "the Service has no selector (its endpoints are managed by hand)".into(),
        });
    }
    let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let what = format!("listing the pods behind Service {namespace}/{service}");
    let list = access
        .call(
            limit,
            &what,
            pods.list(&ListParams::default().labels(&labels.join(","))),
        )
        .await?;
    let ready = |pod: &Pod| {
        pod.metadata.deletion_timestamp.is_none()
            && pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    let mut candidates: Vec<&Pod> = list.items.iter().filter(|p| ready(p)).collect();
    candidates.sort_by_key(|p| p.metadata.name.clone());
    let pod = candidates.first().ok_or_else(|| KubeError::NotFound {
        what: what.clone(),
        message: format!(
            "no ready pod behind Service {service} ({} pod(s) selected)",
            list.items.len()
        ),
    })?;
    let target_port = match &service_port.target_port {
        None => port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => *n as u16,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name)) => pod
            .spec
            .as_ref()
            .into_iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port as u16)
            .ok_or_else(|| KubeError::NotFound {
                what: what.clone(),
                message: format!("no container port named {name} in the pod"),
            })?,
    };
    Ok((pod.metadata.name.clone().unwrap_or_default(), target_port))
}
