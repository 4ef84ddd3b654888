//! Reaching PostgreSQL: connection settings as suites write them, resolved against runtime
//! variables and the standard PG* environment, dialled through the network seam ([`crate::net::Network`]) so checks
//! do not care whether the server is reached directly, through a port-forward or in a sandbox.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode as WireSslMode;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls};

pub use crate::k8s::secrets::SecretRef;
use crate::net::{NetError, Network, Route, Stream, Via};
use crate::url_safety;

mod pipeline;
mod pool;
pub use pipeline::{Answer, Pipeline};
pub use pool::{Lease, Sessions, DEFAULT_POOL_SIZE};

/// How a suite says where PostgreSQL is and who connects. Unset fields fall back to the URI,
/// then to the standard `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`,
/// `PGSSLROOTCERT`, `PGAPPNAME` environment variables, then to libpq's defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSpec {
    /// A libpq URI: `postgresql://user@host:5432/dbname?sslmode=require`.
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub user: Option<String>,
    /// Use a secret variable: `password: ${pg_password}`.
    #[serde(default)]
    pub password: Option<String>,
    /// File holding the password (a mounted Secret, a compose secrets file).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub dbname: Option<String>,
    #[serde(default)]
    pub sslmode: Option<SslMode>,
    /// PEM file of the CA for `verify-ca` and `verify-full`.
    #[serde(default)]
    pub sslrootcert: Option<PathBuf>,
    /// The password from a Kubernetes Secret key (read with the run's kubeconfig; redacted
    /// everywhere): `{namespace: data, name: postgres-postgresql, key: postgres-password}`.
    #[serde(default)]
    pub password_secret: Option<SecretRef>,
    /// Reach the server another way than directly: `{port-forward: {namespace: data, service:
    /// postgres-postgresql}}`. `host` stays the name TLS verifies.
    #[serde(default)]
    pub via: Option<Via>,
    #[serde(default)]
    pub application_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(text: &str) -> Result<SslMode, String> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                "sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
            ))
            }
        })
    }
}

/// Fully resolved connection settings.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// How the server is reached; direct TCP when `None`.
    pub via: Option<Via>,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    pub application_name: String,
}

impl Target {
    /// The route to the server.
    pub fn route(&self) -> Route {
        match &self.via {
            Some(via) => via.route(&self.host, self.port),
            None => Route::tcp(self.host.clone(), self.port),
        }
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}", self.describe())
    }
}

impl Target {
    /// `user@host:port/dbname`: never the password.
    pub fn describe(&self) -> String {
        format!("{}@{}:{}/{}", self.user, self.host, self.port, self.dbname)
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl ConnectionSpec {
    /// What reports show before the connection is resolved.
    pub fn label(&self) -> String {
        let host = self.host.clone().unwrap_or_else(|| "PGHOST".into());
        let port = self
            .port
            .map(|p| p.to_string())
            .unwrap_or_else(|| "PGPORT".into());
        let db = self.dbname.clone().unwrap_or_default();
        match (&self.uri, &self.user) {
            (Some(_), _) => "libpq URI".into(),
            (None, Some(user)) => format!("{user}@{host}:{port}/{db}"),
            (None, None) => format!("{host}:{port}/{db}"),
        }
    }

    /// What reaching the server needs from the Kubernetes API (a port-forward, a Secret).
    pub fn permissions(&self) -> Vec<crate::k8s::Permission> {
        let mut needed: Vec<_> = self.via.iter().flat_map(Via::permissions).collect();
        if let Some(secret) = &self.password_secret {
            needed.push(secret.permission());
        }
        needed
    }

    /// The target its fields give, once `expand` has put in the runtime variables; every
    /// password it finds is handed to `redactor` before anything can show it. A password
    /// from a Secret is the caller's: see `checks::resolve_connection`.
    pub fn resolve_fields(
        &self,
        expand: impl Fn(&str) -> Result<String, String>,
        redactor: &crate::redact::Redactor,
    ) -> Result<Target, String> {
        let expand = |v: &Option<String>| v.as_deref().map(&expand).transpose();
        let (uri, uri_sslmode, uri_sslrootcert) = match expand(&self.uri)? {
            Some(uri) => {
                let (rest, sslmode, sslrootcert) = split_tls_params(&uri);
                // A password with an unencoded `@`, `/` or `#` misparses (its tail would show as
                // the host): name the problem, never echo the URI.
                url_safety::check_user_info(&rest)
                    .and_then(|()| url_safety::check_secrets_whole(&rest, redactor))
                    .map_err(|e| {
                        format!("connection URI: {}", e.or_instead(URI_PASSWORD_INSTEAD))
                    })?;
                let user_info = url_safety::may_hold_user_info(&rest);
                let config =
                    rest.parse::<tokio_postgres::Config>()
                        .map_err(|e| match user_info {
                            true => {
                                format!("connection URI: {}", url_safety::describe_url_error(&rest))
                            }
                            false => format!("connection URI is not valid: {e}"),
                        })?;
                let sslmode = sslmode.map(|m| SslMode::parse(&m)).transpose()?;
                (Some(config), sslmode, sslrootcert.map(PathBuf::from))
            }
            None => (None, None, None),
        };
        let from_uri_host = uri.as_ref().and_then(|c| {
            c.get_hosts().first().map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
        });
        let host = expand(&self.host)?
            .or(from_uri_host)
            .or_else(|| env("PGHOST"))
            .unwrap_or_else(|| "localhost".into());
        let port = match self.port {
            Some(port) => port,
            None => match uri.as_ref().and_then(|c| c.get_ports().first().copied()) {
                Some(port) => port,
                None => match env("PGPORT") {
                    Some(p) => p
                        .parse()
                        .map_err(|_| format!("PGPORT `{p}` is not a port number"))?,
                    None => 5432,
                },
            },
        };
        let user = expand(&self.user)?
            .or_else(|| uri.as_ref().and_then(|c| c.get_user().map(str::to_owned)))
            .or_else(|| env("PGUSER"))
            .unwrap_or_else(|| "postgres".into());
        let password = match (
            expand(&self.password)?,
            &self.password_file,
            &self.password_env,
        ) {
            (Some(p), _, _) => Some(p),
            (None, Some(file), _) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| format!("cannot read password_file `{}`: {e}", file.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            ),
            (None, None, Some(var)) => {
                Some(std::env::var(var).map_err(|_| {
                    format!("password_env `{var}` is not set in attest's environment")
                })?)
            }
            (None, None, None) => uri
                .as_ref()
                .and_then(|c| c.get_password())
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .or_else(|| env("PGPASSWORD")),
        };
        let dbname = expand(&self.dbname)?
            .or_else(|| uri.as_ref().and_then(|c| c.get_dbname().map(str::to_owned)))
            .or_else(|| env("PGDATABASE"))
            .unwrap_or_else(|| user.clone());
        // Last, as libpq: the password file (PGPASSFILE or ~/.pgpass), unless a Secret gives one.
        let password = match (password, &self.password_secret) {
            (None, None) => crate::pgpass::lookup(&host, port, &dbname, &user),
            (password, _) => password,
        };
        if let Some(password) = &password {
            redactor.add(password);
        }
        let sslmode = match self.sslmode.or(uri_sslmode) {
            Some(mode) => mode,
            None => match env("PGSSLMODE") {
                Some(mode) => SslMode::parse(&mode)?,
                None => SslMode::Prefer,
            },
        };
        let sslrootcert = self
            .sslrootcert
            .clone()
            .or(uri_sslrootcert)
            .or_else(|| env("PGSSLROOTCERT").map(PathBuf::from));
        if matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) && sslrootcert.is_none() {
            return Err(format!(
                "sslmode {} needs `sslrootcert:` (the CA's PEM file)",
                if sslmode == SslMode::VerifyCa {
                    "verify-ca"
                } else {
                    "verify-full"
                }
            ));
        }
        let application_name = expand(&self.application_name)?
            .or_else(|| env("PGAPPNAME"))
            .unwrap_or_else(|| "attest".into());
        Ok(Target {
            host,
            port,
            via: None,
            user,
            password,
            dbname,
            sslmode,
            sslrootcert,
            application_name,
        })
    }
}

/// How a URI's password that cannot be percent-encoded is given instead.
pub const URI_PASSWORD_INSTEAD: &str =
    "leave the password out of the URI and give it as `password:` or `password_secret:`";

/// Takes `sslmode` and `sslrootcert` out of a URI's query: tokio-postgres knows neither
/// `verify-ca`/`verify-full` nor `sslrootcert`, which libpq URIs commonly carry.
fn split_tls_params(uri: &str) -> (String, Option<String>, Option<String>) {
    let Some((base, query)) = uri.split_once('?') else {
        return (uri.to_owned(), None, None);
    };
    let (mut sslmode, mut sslrootcert, mut kept) = (None, None, Vec::new());
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("sslmode", value)) => sslmode = Some(value.to_owned()),
            Some(("sslrootcert", value)) => sslrootcert = Some(value.to_owned()),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, sslmode, sslrootcert)
}

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

/// Drops a database (and its sessions) as `admin`; nothing happens if it is already gone.
/// Sessions tagged like `admin` (see [`Target::tagged`]) are stopped first, so a CREATE still
/// in flight cannot commit after the drop. Used by teardown steps, so it owns its arguments.
pub async fn drop_database(
    network: Arc<dyn Network>,
    admin: Target,
    name: String,
) -> Result<(), String> {
    let (session, _) = teardown_session(network.as_ref(), &admin, "postgres").await?;
    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(&name));
    session
        .client
        .batch_execute(&sql)
        .await
        .map_err(|e| server_error(&e))
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

/// The rustls connector tokio-postgres uses, for the target's host and sslmode.
pub(crate) type RustlsConnect =
    <tokio_postgres_rustls::MakeRustlsConnect as MakeTlsConnect<Wire>>::TlsConnect;

pub(crate) fn tls_connector(target: &Target) -> Result<RustlsConnect, ConnectError> {
    let mut make = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(target)?);
    <tokio_postgres_rustls::MakeRustlsConnect as MakeTlsConnect<Wire>>::make_tls_connect(
        &mut make,
        &target.host,
    )
    .map_err(|e| ConnectError::Other(format!("TLS setup failed: {e}")))
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

/// The first value of a query's first row, as text (simple protocol: no parameters, no types).
pub fn scalar<'a>(client: &'a Client, sql: &'a str) -> BoxFuture<'a, Option<String>> {
    Box::pin(async move {
        let messages = client.simple_query(sql).await.ok()?;
        messages.into_iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
    })
}

impl Target {
    /// The same target, its sessions marked with a name of their own, so teardown can find
    /// (and stop) a statement still running when the check was cancelled.
    pub fn tagged(&self) -> Target {
        let mut tagged = self.clone();
        tagged.application_name = unique_name("attest");
        tagged
    }
}

/// A session for cleaning up after `target`: in `dbname`, untagged, with every session tagged
/// like `target` already stopped. Returns the tag it stopped.
pub async fn teardown_session(
    network: &dyn Network,
    target: &Target,
    dbname: &str,
) -> Result<(Session, String), String> {
    let tag = target.application_name.clone();
    let mut cleaner = target.clone();
    cleaner.dbname = dbname.to_owned();
    cleaner.application_name = "attest-teardown".into();
    let session = connect(network, &cleaner)
        .await
        .map_err(|e| format!("cannot connect as {} to clean up: {e}", cleaner.describe()))?;
    if tag.starts_with("attest_") {
        terminate_tagged(&session.client, &tag).await?;
    }
    Ok((session, tag))
}

/// Stops every session carrying `application_name` and waits (up to 5 s) until they are gone:
/// a CREATE still in flight when a check was cancelled is rolled back instead of committing
/// after the teardown ran.
pub async fn terminate_tagged(client: &Client, application_name: &str) -> Result<(), String> {
    let sql = "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
               WHERE application_name = $1 AND pid <> pg_backend_pid()) t";
    client
        .query_one(sql, &[&application_name])
        .await
        .map_err(|e| server_error(&e))?;
    for _ in 0..50 {
        let left: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()",
                &[&application_name],
            )
            .await
            .map_err(|e| server_error(&e))?
            .get(0);
        if left == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "sessions `{application_name}` did not end within 5 s"
    ))
}

/// A server error as users read it: message and SQLSTATE.
pub fn server_error(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

/// The SQLSTATE of a server error, if the server sent one.
pub fn sqlstate(error: &tokio_postgres::Error) -> Option<&str> {
    error.as_db_error().map(|db| db.code().code())
}

/// A quoted identifier: `"paperless_user"`, safe whatever the name holds.
pub fn ident(name: &str) -> String {
    postgres_protocol::escape::escape_identifier(name)
}

/// A possibly schema-qualified name as a suite writes it (`documents`, `public.documents`,
/// `"My Schema"."odd.name"`), quoted part by part: the one way attest turns a table name into
/// SQL. A dot splits parts unless it is inside double quotes (`""` there is a quote); unquoted
/// parts are kept as written, case included, like every name attest quotes.
pub fn quote_qualified(name: &str) -> String {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                parts.last_mut().expect("never empty").push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(String::new()),
            c => parts.last_mut().expect("never empty").push(c),
        }
    }
    quote_parts(&parts)
}

/// Parts already split (`schema`, `table` as the catalog gives them), quoted and joined.
pub fn quote_parts<S: AsRef<str>>(parts: &[S]) -> String {
    parts
        .iter()
        .map(|part| ident(part.as_ref()))
        .collect::<Vec<_>>()
        .join(".")
}

/// A quoted literal for statements that take no parameters (CREATE ROLE … PASSWORD).
pub fn literal(value: &str) -> String {
    postgres_protocol::escape::escape_literal(value)
}

/// A name with a random suffix, so two runs never collide; within PostgreSQL's 63 bytes.
pub fn unique_name(base: &str) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    let suffix = Alphanumeric
        .sample_string(&mut rand::rng(), 6)
        .to_lowercase();
    // PostgreSQL truncates names to 63 bytes; cut first, on a character boundary, so the name
    // we later drop is the name that was created.
    let mut end = base.len().min(63 - 7);
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}_{suffix}", &base[..end])
}

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

fn tls_config(target: &Target) -> Result<rustls::ClientConfig, ConnectError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Other(format!("TLS setup failed: {e}")))?;
    let config = match target.sslmode {
        // libpq's `prefer` and `require` encrypt without checking who answers.
        SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let path = target.sslrootcert.as_ref().expect("checked when resolving");
            let pem = std::fs::read(path).map_err(|e| {
                ConnectError::Other(format!("cannot read sslrootcert `{}`: {e}", path.display()))
            })?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| {
                    ConnectError::Other(format!("sslrootcert `{}`: {e}", path.display()))
                })?;
                roots.add(cert).map_err(|e| {
                    ConnectError::Other(format!("sslrootcert `{}`: {e}", path.display()))
                })?;
            }
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| ConnectError::Other(format!("TLS setup failed: {e}")))?;
            let verifier: Arc<dyn ServerCertVerifier> = if target.sslmode == SslMode::VerifyCa {
                Arc::new(ChainOnly(webpki))
            } else {
                webpki
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        }
    };
    Ok(config)
}

/// `require`: any certificate, but the handshake signatures must still be sound.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to the CA; the host name may differ.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A strong random password, like `openssl rand -base64` in the stories, URL-safe.
pub fn generate_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

/// Finds a PostgreSQL program (`pg_dump`, `initdb`, ...), the one search used everywhere:
/// `PG_BINDIR` alone when set (a silent fallback would hide a typo), else the newest of
/// Debian's versioned folders (the real binaries, not the `pg_wrapper` links), else `PATH`.
pub fn find_program(name: &str) -> Result<PathBuf, String> {
    let package = match name {
        "pg_dump" | "pg_restore" | "psql" | "pg_isready" => "postgresql-client",
        _ => "postgresql",
    };
    let missing =
        || format!("`{name}` not found: install Debian's `{package}` package (or set PG_BINDIR)");
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        let path = Path::new(&dir).join(name);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "{} (looked in PG_BINDIR={})",
                missing(),
                Path::new(&dir).display()
            ))
        };
    }
    let newest_debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin").join(name)))
        })
        .filter(|(_, path)| path.is_file())
        .max()
        .map(|(_, path)| path);
    newest_debian
        .or_else(|| {
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .ok_or_else(missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::CheckContext;

    #[test]
    fn a_uri_whose_password_holds_an_at_sign_is_refused_without_echoing_it() {
        let ctx = CheckContext::for_test();
        let spec = ConnectionSpec {
            uri: Some("postgresql://app:p@ss-TAILSECRET@db.example:5432/app".into()),
            ..ConnectionSpec::default()
        };
        let error = futures::executor::block_on(crate::checks::resolve_connection(&spec, &ctx))
            .unwrap_err();
        assert!(error.message.contains("%40"), "{error}");
        assert!(
            !error.message.contains("TAILSECRET") && !error.message.contains("p@ss"),
            "{error}"
        );
    }

    #[test]
    fn uri_fills_what_fields_leave_unset() {
        let ctx = CheckContext::for_test();
        let spec = ConnectionSpec {
            uri: Some("postgresql://app:s3cret@db.example:5433/appdb?sslmode=require".into()),
            user: Some("override".into()),
            ..ConnectionSpec::default()
        };
        let target =
            futures::executor::block_on(crate::checks::resolve_connection(&spec, &ctx)).unwrap();
        assert_eq!(target.host, "db.example");
        assert_eq!(target.port, 5433);
        assert_eq!(target.user, "override");
        assert_eq!(target.password.as_deref(), Some("s3cret"));
        assert_eq!(target.dbname, "appdb");
        assert_eq!(target.sslmode, SslMode::Require);
        assert_eq!(target.describe(), "override@db.example:5433/appdb");
        // The password became a secret the moment it was resolved.
        assert_eq!(ctx.redactor.redact("pw=s3cret"), "pw=[REDACTED]");
        let spec = ConnectionSpec {
            uri: Some(
                "postgresql://h/db?sslmode=verify-full&sslrootcert=/ca.pem&connect_timeout=5"
                    .into(),
            ),
            ..ConnectionSpec::default()
        };
        let target =
            futures::executor::block_on(crate::checks::resolve_connection(&spec, &ctx)).unwrap();
        assert_eq!(target.sslmode, SslMode::VerifyFull);
        assert_eq!(target.sslrootcert, Some(PathBuf::from("/ca.pem")));
    }

    #[test]
    fn verify_modes_need_a_root_certificate() {
        let ctx = CheckContext::for_test();
        let spec = ConnectionSpec {
            host: Some("h".into()),
            sslmode: Some(SslMode::VerifyFull),
            ..ConnectionSpec::default()
        };
        assert!(
            futures::executor::block_on(crate::checks::resolve_connection(&spec, &ctx))
                .unwrap_err()
                .message
                .contains("sslrootcert")
        );
    }

    #[test]
    fn qualified_names_split_on_dots_outside_quotes() {
        assert_eq!(quote_qualified("documents"), r#""documents""#);
        assert_eq!(
            quote_qualified("public.Documents"),
            r#""public"."Documents""#
        );
        assert_eq!(
            quote_qualified(r#""My Schema"."odd.na""me""#),
            r#""My Schema"."odd.na""me""#
        );
        assert_eq!(quote_qualified("a.b.c"), r#""a"."b"."c""#);
        assert_eq!(
            quote_parts(&["public", "odd.name"]),
            r#""public"."odd.name""#
        );
    }

    #[test]
    fn unique_names_stay_within_postgres_limits() {
        let name = unique_name(&"x".repeat(100));
        assert!(name.len() <= 63, "{name}");
        let name = unique_name(&"ä".repeat(60));
        assert!(name.len() <= 63, "{name}");
        assert_ne!(unique_name("app"), unique_name("app"));
    }
}
