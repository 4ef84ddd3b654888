//! How checks reach their targets: every kind goes through a [`Route`] and one [`Network`]
//! seam, so a target can be a plain `host:port` today and a Kubernetes Service or pod port
//! through a port-forward next, without any check changing. Programs attest runs (pg_dump,
//! pg_restore) and clients that dial for themselves (HTTP) get a [`LoopbackBridge`]: a
//! listener on 127.0.0.1 that carries each connection along the route.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use crate::k8s::portforward::ForwardTarget;
use crate::k8s::KubeAccess;
pub use crate::stream::Stream;

/// Where a check's traffic goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Route {
    /// A host name or address and a port, dialled directly.
    Tcp { host: String, port: u16 },
    /// Through the Kubernetes API server to a Service (a ready pod behind it) or a pod, as
    /// `kubectl port-forward` does. `host` stays the logical name TLS verifies.
    PortForward {
        host: String,
        namespace: String,
        target: ForwardTarget,
        port: u16,
    },
}

impl Route {
    pub fn tcp(host: impl Into<String>, port: u16) -> Route {
        Route::Tcp {
            host: host.into(),
            port,
        }
    }

    /// The host name TLS verifies against: the logical name, whatever the path.
    pub fn logical_host(&self) -> &str {
        match self {
            Route::Tcp { host, .. } | Route::PortForward { host, .. } => host,
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Route::Tcp { port, .. } | Route::PortForward { port, .. } => *port,
        }
    }

    /// How the traffic travels, for reports: a port-forward measures a different path than
    /// in-cluster traffic.
    pub fn path_note(&self) -> Option<String> {
        match self {
            Route::Tcp { .. } => None,
            Route::PortForward { .. } => Some(format!(
                "reached through a port-forward ({self}): timings include the API server hop, not the in-cluster path"
            )),
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Route::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Route::Tcp { host, port } => write!(f, "{host}:{port}"),
            Route::PortForward {
                namespace,
                target,
                port,
                ..
            } => match target {
                ForwardTarget::Service(name) => {
                    write!(f, "port-forward svc/{name}:{port} in {namespace}")
                }
                ForwardTarget::Pod(name) => {
                    write!(f, "port-forward pod/{name}:{port} in {namespace}")
                }
            },
        }
    }
}

/// How a suite says a target is reached when not directly: `via: {port-forward: {namespace:
/// data, service: postgres-postgresql}}` (or `pod: NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum Via {
    PortForward(PortForwardSpec),
}

/// A port-forward's destination: a Service or a pod, exactly one, checked when the suite
/// loads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize, schemars::JsonSchema)]
#[serde(try_from = "PortForwardFields")]
#[schemars(with = "PortForwardFields")]
pub struct PortForwardSpec {
    pub namespace: String,
    pub target: ForwardTarget,
}

/// `port-forward:` as written.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct PortForwardFields {
    namespace: String,
    /// A Service: the port-forward goes to a ready pod behind it. Not with `pod`.
    #[serde(default)]
    service: Option<String>,
    /// A pod by name. Not with `service`.
    #[serde(default)]
    pod: Option<String>,
}

impl TryFrom<PortForwardFields> for PortForwardSpec {
    type Error = String;
    fn try_from(fields: PortForwardFields) -> Result<PortForwardSpec, String> {
        let target = match (fields.service, fields.pod) {
            (Some(service), None) => ForwardTarget::Service(service),
            (None, Some(pod)) => ForwardTarget::Pod(pod),
            (service, _) => return Err(format!(
                "expected `port-forward` to name a `service:` (a ready pod behind it) or a `pod:`, found {}",
                if service.is_some() {
                    "both; keep one"
                } else {
                    "neither"
                }
            )),
        };
        Ok(PortForwardSpec {
            namespace: fields.namespace,
            target,
        })
    }
}

impl Via {
    /// The route to `host:port` this way; `host` stays the name TLS verifies.
    pub fn route(&self, host: &str, port: u16) -> Route {
        let Via::PortForward(spec) = self;
        Route::PortForward {
            host: host.to_owned(),
            namespace: spec.namespace.clone(),
            target: spec.target.clone(),
            port,
        }
    }

    /// What the port-forward needs to be allowed to do.
    pub fn permissions(&self) -> Vec<crate::k8s::Permission> {
        use crate::k8s::Permission;
        let Via::PortForward(spec) = self;
        let ns = Some(spec.namespace.as_str());
        // A WebSocket GET: `get` on pods/portforward, and `create` as for exec.
        let forward =
            |verb: &str| Permission::new(verb, "v1", "Pod", ns).subresource("portforward");
        match &spec.target {
            ForwardTarget::Pod(pod) => {
                vec![forward("get").named(pod), forward("create").named(pod)]
            }
            // The pod behind the Service is picked at run time.
            ForwardTarget::Service(service) => vec![
                forward("get"),
                forward("create"),
                Permission::new("get", "v1", "Service", ns).named(service),
                Permission::new("list", "v1", "Pod", ns),
            ],
        }
    }
}

/// Why a route could not be opened. Kinds turn these into verdicts; the hint says what to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// The name did not resolve.
    Resolve { host: String, reason: String },
    /// Something answered and refused: nothing listens on that port.
    Refused { route: String, reason: String },
    /// No answer, no route, or a reset before the connection was made. `no_route` when the
    /// network said so (host or network unreachable) rather than failing otherwise.
    Unreachable {
        route: String,
        reason: String,
        no_route: bool,
    },
    /// A local problem: cannot bind the bridge, out of file descriptors.
    Local { reason: String },
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            NetError::Resolve { host, reason } => write!(f, "cannot resolve `{host}`: {reason}"),
            NetError::Refused { route, reason } => write!(f, "cannot reach {route}: {reason}"),
            NetError::Unreachable { route, reason, .. } => {
                write!(f, "cannot reach {route}: {reason}")
            }
            NetError::Local { reason } => f.write_str(reason),
        }
    }
}

impl std::error::Error for NetError {}

impl NetError {
    /// Classifies an I/O error from connecting along `route`.
    pub fn from_io(route: &Route, error: &std::io::Error) -> NetError {
        match error.kind() {
            std::io::ErrorKind::ConnectionRefused => NetError::Refused {
                route: route.to_string(),
                reason: error.to_string(),
            },
            kind => NetError::Unreachable {
                route: route.to_string(),
                reason: error.to_string(),
                no_route: matches!(
                    kind,
                    std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable
                ),
            },
        }
    }

    /// What to try next.
    pub fn hint(&self) -> &'static str {
        match self {
            NetError::Resolve { .. } => {
                "check the name (from outside the cluster, `*.svc.cluster.local` needs a port-forward or the cluster DNS)"
            }
            NetError::Refused { .. } => {
                "nothing listens there: is the pod running and the Service pointing at it?"
            }
            NetError::Unreachable { .. } => {
                "no route or no answer: check DNS, NetworkPolicy, firewalls and the port-forward"
            }
            NetError::Local { .. } => "a problem on the machine running attest",
        }
    }

    pub fn is_refused(&self) -> bool {
        matches!(self, NetError::Refused { .. })
    }
}

/// The seam between checks and the network.
pub trait Network: Send + Sync {
    /// Opens a byte stream along `route`.
    fn connect(&self, route: &Route) -> BoxFuture<'static, Result<Box<dyn Stream>, NetError>>;

    /// Whether other programs can dial `route` as written (`host:port`); otherwise they get a
    /// [`LoopbackBridge`].
    fn dialable(&self, route: &Route) -> bool;

    /// This network with port-forwards through another cluster's client (a suite's own
    /// context); `None` when it makes no port-forwards. Required, so that no network forwards
    /// through the run's default cluster for a suite that names another.
    fn with_cluster(&self, kube: Arc<KubeAccess>) -> Option<Arc<dyn Network>>;

    /// Where `route` really leads, as a key: the same route through two clusters' clients
    /// reaches two servers.
    fn destination(&self, route: &Route) -> String {
        route.to_string()
    }
}

/// Plain TCP, names resolved by the system resolver; port-forward routes through the
/// Kubernetes API server (the client is created only when such a route is used).
pub struct DirectNetwork;

/// Direct TCP plus port-forwards through the run's Kubernetes client.
pub struct ClusterNetwork {
    pub kube: Arc<KubeAccess>,
    /// How long opening one port-forward may take.
    pub forward_timeout: std::time::Duration,
}

impl Network for ClusterNetwork {
    fn connect(&self, route: &Route) -> BoxFuture<'static, Result<Box<dyn Stream>, NetError>> {
        match route {
            Route::Tcp { .. } => DirectNetwork.connect(route),
            Route::PortForward {
                namespace,
                target,
                port,
                ..
            } => {
                let (kube, limit) = (self.kube.clone(), self.forward_timeout);
                let (namespace, target, port) = (namespace.clone(), target.clone(), *port);
                let shown = route.to_string();
                Box::pin(async move {
                    crate::k8s::portforward::open(&kube, &namespace, &target, port, limit)
                        .await
                        .map_err(|e| NetError::Unreachable {
                            route: shown,
                            reason: format!("{e} (hint: {})", e.hint()),
                            no_route: false,
                        })
                })
            }
        }
    }

    fn dialable(&self, route: &Route) -> bool {
        matches!(route, Route::Tcp { .. })
    }

    fn with_cluster(&self, kube: Arc<KubeAccess>) -> Option<Arc<dyn Network>> {
        Some(Arc::new(ClusterNetwork {
            kube,
            forward_timeout: self.forward_timeout,
        }))
    }

    fn destination(&self, route: &Route) -> String {
        match (route, self.kube.context()) {
            (Route::PortForward { .. }, Some(context)) => format!("{route} (context {context})"),
            _ => route.to_string(),
        }
    }
}

impl Network for DirectNetwork {
    fn connect(&self, route: &Route) -> BoxFuture<'static, Result<Box<dyn Stream>, NetError>> {
        let route = route.clone();
        Box::pin(async move {
            let Route::Tcp { host, port } = &route else {
                return Err(NetError::Local {
                    reason: format!("{route}: a port-forward needs the Kubernetes client"),
                });
            };
            let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(|e| NetError::from_io(&route, &e))?;
            stream.set_nodelay(true).map_err(|e| NetError::Local {
                reason: e.to_string(),
            })?;
            Ok(Box::new(stream) as Box<dyn Stream>)
        })
    }

    fn with_cluster(&self, _kube: Arc<KubeAccess>) -> Option<Arc<dyn Network>> {
        None
    }

    fn dialable(&self, route: &Route) -> bool {
        matches!(route, Route::Tcp { .. })
    }
}

/// Where another program should connect to reach a route.
pub enum Endpoint {
    /// The route itself: `host:port`.
    Direct { host: String, port: u16 },
    /// A loopback listener carrying connections along the route; lives as long as this value.
    Bridged(LoopbackBridge),
}

impl Endpoint {
    /// Host and port to hand to a program (`-h`/`-p`, a URL).
    pub fn host_port(&self) -> (String, u16) {
        match self {
            Endpoint::Direct { host, port } => (host.clone(), *port),
            Endpoint::Bridged(bridge) => (bridge.addr.ip().to_string(), bridge.addr.port()),
        }
    }

    /// The local address when bridged, so TLS can keep verifying the logical name
    /// (libpq `hostaddr`, an HTTP client's resolve override).
    pub fn bridge_addr(&self) -> Option<SocketAddr> {
        match self {
            Endpoint::Direct { .. } => None,
            Endpoint::Bridged(bridge) => Some(bridge.addr),
        }
    }
}

/// An endpoint for `route` that another program can dial.
pub async fn endpoint(network: &Arc<dyn Network>, route: &Route) -> Result<Endpoint, NetError> {
    if let (true, Route::Tcp { host, port }) = (network.dialable(route), route) {
        return Ok(Endpoint::Direct {
            host: host.clone(),
            port: *port,
        });
    }
    LoopbackBridge::start(network.clone(), route.clone())
        .await
        .map(Endpoint::Bridged)
}

/// A listener on 127.0.0.1 that opens the route for every connection it accepts and copies
/// bytes both ways. Stops accepting when dropped.
pub struct LoopbackBridge {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl LoopbackBridge {
    pub async fn start(
        network: Arc<dyn Network>,
        route: Route,
    ) -> Result<LoopbackBridge, NetError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| NetError::Local {
                reason: format!("cannot open a loopback bridge: {e}"),
            })?;
        Self::serve(listener, network, route)
    }

    /// A bridge listening on `port` of some address in 127.0.0.0/8, for clients that keep the
    /// URL's port and only let us choose the address (an HTTP client's resolve override).
    pub async fn start_on_port(
        network: Arc<dyn Network>,
        route: Route,
        port: u16,
    ) -> Result<LoopbackBridge, NetError> {
        let mut last = None;
        for _ in 0..32 {
            let ip = std::net::Ipv4Addr::new(
                127,
                rand::random_range(1..=254),
                rand::random(),
                rand::random_range(1..=254),
            );
            match TcpListener::bind((ip, port)).await {
                Ok(listener) => return Self::serve(listener, network, route),
                Err(e) => last = Some(e),
            }
        }
        Err(NetError::Local {
            reason: format!(
                "cannot open a loopback bridge on port {port}: {}",
                last.map(|e| e.to_string()).unwrap_or_default()
            ),
        })
    }

    fn serve(
        listener: TcpListener,
        network: Arc<dyn Network>,
        route: Route,
    ) -> Result<LoopbackBridge, NetError> {
        let addr = listener.local_addr().map_err(|e| NetError::Local {
            reason: e.to_string(),
        })?;
        let task = tokio::spawn(async move {
            while let Ok((mut local, _)) = listener.accept().await {
                let network = network.clone();
                let route = route.clone();
                tokio::spawn(async move {
                    // A failed connect closes the local side; the program reports it.
                    if let Ok(mut remote) = network.connect(&route).await {
                        let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
                    }
                });
            }
        });
        Ok(LoopbackBridge { addr, task })
    }
}

impl Drop for LoopbackBridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A network that sends every route to one loopback address, as a port-forward would.
    struct Redirect(SocketAddr);

    impl Network for Redirect {
        fn connect(&self, _route: &Route) -> BoxFuture<'static, Result<Box<dyn Stream>, NetError>> {
            let addr = self.0;
            Box::pin(async move {
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| NetError::from_io(&Route::tcp("redirect", addr.port()), &e))?;
                Ok(Box::new(stream) as Box<dyn Stream>)
            })
        }
        fn dialable(&self, _route: &Route) -> bool {
            false
        }
        fn with_cluster(&self, _kube: Arc<KubeAccess>) -> Option<Arc<dyn Network>> {
            None
        }
    }

    #[tokio::test]
    async fn a_bridge_carries_bytes_along_an_injected_route() {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = server.accept().await.unwrap();
            let mut buf = [0u8; 4];
            socket.read_exact(&mut buf).await.unwrap();
            socket
                .write_all(&buf.map(|b| b.to_ascii_uppercase()))
                .await
                .unwrap();
        });
        let network: Arc<dyn Network> = Arc::new(Redirect(server_addr));
        let route = Route::tcp("postgres-postgresql.data.svc.cluster.local", 5432);
        let endpoint = endpoint(&network, &route).await.unwrap();
        let bridge = endpoint.bridge_addr().expect("not dialable, so bridged");
        assert!(bridge.ip().is_loopback());
        let mut client = tokio::net::TcpStream::connect(bridge).await.unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut reply = [0u8; 4];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"PING");
    }

    #[tokio::test]
    async fn direct_routes_are_handed_out_as_written_and_refusals_are_typed() {
        let network: Arc<dyn Network> = Arc::new(DirectNetwork);
        let route = Route::tcp("127.0.0.1", 5432);
        assert_eq!(
            endpoint(&network, &route).await.unwrap().host_port(),
            ("127.0.0.1".to_owned(), 5432)
        );
        // A port nothing listens on: bind, learn the port, close.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let error = network
            .connect(&Route::tcp("127.0.0.1", port))
            .await
            .err()
            .expect("refused");
        assert!(error.is_refused(), "{error}");
        let text = error.to_string();
        assert!(
            text.starts_with(&format!(
                "cannot reach 127.0.0.1:{port}: Connection refused"
            )),
            "{text}"
        );
    }
}
