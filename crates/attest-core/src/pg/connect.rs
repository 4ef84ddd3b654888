//! Opening a session: the stream from the network seam, the startup exchange (TLS,
//! authentication) on the run's runtime, a full server waited out, and why an attempt failed.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode as WireSslMode;
use tokio_postgres::tls::TlsConnect;
use tokio_postgres::{Client, NoTls};

use super::target::{SslMode, Target};
use super::tls::tls_connector;
use crate::net::{NetError, Network, Stream};

/// Why a connection attempt failed, in the terms the `postgres` kind expects.
#[derive(Debug)]
pub enum ConnectError {
    /// Nothing listens (connection refused).
    Refused(String),
    /// No answer or no route.
    Unreachable(String),
    /// The server answered with an error: SQLSTATE and message.
    Server { code: String, message: String },
    /// TLS or protocol trouble, certificate problems included.
    Other(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            ConnectError::Refused(m) | ConnectError::Unreachable(m) | ConnectError::Other(m) => {
                f.write_str(m)
            }
            ConnectError::Server { code, message } => write!(f, "{message} (SQLSTATE {code})"),
        }
    }
}

impl ConnectError {
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            ConnectError::Server { code, .. } => Some(code),
            _ => None,
        }
    }

    /// What to try next, fitted to where the server is: Kubernetes hints only for a cluster
    /// Service name or a port-forward, a docker-compose or bare host gets its own.
    pub fn hint_for(&self, target: &Target) -> &'static str {
        let in_cluster = target.via.is_some()
            || target.host.ends_with(".svc")
            || target.host.contains(".svc.")
            || target.host.ends_with(".cluster.local");
        match (self.sqlstate(), in_cluster) {
            (Some("28P01"), false) => "wrong password or unknown role: compare `password`/`password_file`/`PGPASSWORD` (or the ~/.pgpass line for this host) with the server's, e.g. POSTGRES_PASSWORD in the compose file",
            (None, false) if matches!(self, ConnectError::Refused(_)) => "nothing listens there: is the server (container) running and the port published?",
            _ => self.hint(),
        }
    }

    /// What to try next, for the people reading the failure.
    pub fn hint(&self) -> &'static str {
        match self.sqlstate() {
            Some("28P01") => "wrong password or unknown role: compare with the Secret (`kubectl get secret … -o jsonpath='{.data.postgres-password}' | base64 -d`)",
            Some("28000") => "the role may not log in, or pg_hba.conf has no line for this host/user/database",
            Some("3D000") => "the database does not exist: create it (`CREATE DATABASE …`) or fix `dbname`",
            Some("57P03") => "the server is starting up or shutting down; retry with `retry:`",
            Some(_) => "the server refused the session; its message says why",
            None => match self {
                ConnectError::Refused(_) => "nothing listens there: is the pod running and the Service pointing at it?",
                ConnectError::Unreachable(_) => "no route or no answer: check DNS, NetworkPolicy and the port-forward",
                _ => "check sslmode and sslrootcert against the server's TLS settings",
            },
        }
    }
}

/// An open session and what it took to open it.
pub struct Session {
    pub client: Client,
    /// The attempt that succeeded: waiting out a full server (SQLSTATE 53300) is not counted.
    pub connect_time: Duration,
    pub tls: bool,
    /// The task driving the connection; it ends once the client is dropped and the server has
    /// answered what was in flight.
    pub(crate) driver: JoinHandle<()>,
}

/// How long [`connect`] keeps knocking while the server has no free connection slot
/// (SQLSTATE 53300); the check's own timeout usually ends it first.
const FULL_SERVER_PATIENCE: Duration = Duration::from_secs(30);

/// Connects and authenticates. A server with every connection slot taken (SQLSTATE 53300)
/// is asked again, backing off (20 ms doubling to 1 s, with jitter), until it lets us in or
/// [`FULL_SERVER_PATIENCE`] runs out: a busy moment must not fail a check. The caller's timeout
/// bounds the whole exchange.
///
/// Boxed on purpose: it pins down the future's lifetimes, which rustc otherwise fails to prove
/// `Send` for inside the checks' own futures (rust-lang/rust#102211).
pub fn connect<'a>(
    network: &'a dyn Network,
    target: &'a Target,
) -> BoxFuture<'a, Result<Session, ConnectError>> {
    Box::pin(async move {
        let started = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            match connect_inner(network, target).await {
                Err(e) if e.sqlstate() == Some(TOO_MANY_CONNECTIONS) => {
                    let jittered = pause.mul_f64(rand::random_range(0.5..1.5));
                    if started.elapsed() + jittered >= FULL_SERVER_PATIENCE {
                        return Err(e);
                    }
                    tokio::time::sleep(jittered).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    })
}

/// SQLSTATE 53300: every connection slot is taken.
pub const TOO_MANY_CONNECTIONS: &str = "53300";

/// One attempt, whatever the server answers: for probes that want to know that a full server
/// is up (`pg-ready`).
pub fn connect_once<'a>(
    network: &'a dyn Network,
    target: &'a Target,
) -> BoxFuture<'a, Result<Session, ConnectError>> {
    Box::pin(connect_inner(network, target))
}

/// A stream to the target's server through the network seam.
pub(crate) async fn open_stream(
    network: &dyn Network,
    target: &Target,
) -> Result<Box<dyn Stream>, ConnectError> {
    network.connect(&target.route()).await.map_err(|e| match e {
        NetError::Refused { .. } => ConnectError::Refused(e.to_string()),
        _ => ConnectError::Unreachable(e.to_string()),
    })
}

async fn connect_inner(network: &dyn Network, target: &Target) -> Result<Session, ConnectError> {
    let started = Instant::now();
    let stream = Wire(open_stream(network, target).await?);
    let mut config = tokio_postgres::Config::new();
    config
        .user(&target.user)
        .dbname(&target.dbname)
        .application_name(&target.application_name)
        .ssl_mode(match target.sslmode {
            SslMode::Disable => WireSslMode::Disable,
            SslMode::Prefer => WireSslMode::Prefer,
            _ => WireSslMode::Require,
        });
    if let Some(password) = &target.password {
        config.password(password);
    }
    let (client, driver, tls) = if target.sslmode == SslMode::Disable {
        let (client, driver) = handshake(config, stream, NoTls).await?;
        (client, driver, false)
    } else {
        // Under `prefer` the server may say no to TLS: tokio-postgres only starts the TLS
        // handshake once the server said yes, so the connector records whether it was asked.
        let used = Arc::new(AtomicBool::new(false));
        let tls = Recorded {
            inner: tls_connector(target)?,
            used: used.clone(),
        };
        let (client, driver) = handshake(config, stream, tls).await?;
        (client, driver, used.load(Ordering::Relaxed))
    };
    Ok(Session {
        client,
        connect_time: started.elapsed(),
        tls,
        driver,
    })
}

/// The stream under a session, as a named type. With `Box<dyn Stream>` itself in the TLS
/// bounds, rustc loses the trait object's `'static` and cannot prove the handshake `Send`
/// (rust-lang/rust#102211): that is why TLS sessions once ran on threads of their own.
pub(crate) struct Wire(pub(crate) Box<dyn Stream>);

impl AsyncRead for Wire {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

/// Runs the startup exchange (TLS, authentication) on a task of its own, then drives the
/// connection on another, both on the run's runtime.
async fn handshake<T>(
    config: tokio_postgres::Config,
    stream: Wire,
    tls: T,
) -> Result<(Client, JoinHandle<()>), ConnectError>
where
    T: TlsConnect<Wire> + Send + 'static,
    T::Stream: Send + 'static,
    T::Future: Send,
{
    tokio::spawn(async move {
        let (client, connection) = config.connect_raw(stream, tls).await?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok::<_, tokio_postgres::Error>((client, driver))
    })
    .await
    .map_err(|e| ConnectError::Other(format!("connection task failed: {e}")))?
    .map_err(classify)
}

/// A TLS connector that notes whether the server agreed to TLS (tokio-postgres calls
/// `connect` only after the server answered `S` to the SSLRequest).
struct Recorded<T> {
    inner: T,
    used: Arc<AtomicBool>,
}

impl<S, T: TlsConnect<S>> TlsConnect<S> for Recorded<T> {
    type Stream = T::Stream;
    type Error = T::Error;
    type Future = T::Future;

    fn connect(self, stream: S) -> Self::Future {
        self.used.store(true, Ordering::Relaxed);
        self.inner.connect(stream)
    }
}

/// A connection error as the `postgres` kind reads it: the server's SQLSTATE and message
/// when it sent one, else the whole chain of causes.
fn classify(error: tokio_postgres::Error) -> ConnectError {
    if let Some(db) = error.as_db_error() {
        return ConnectError::Server {
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
        };
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    ConnectError::Other(text)
}
