//! A check's PostgreSQL connection as suites write it, and its resolution into a
//! [`crate::pg::Target`]: runtime variables, a libpq URI, the standard PG* environment, the
//! password file (a password from a Kubernetes Secret is read by
//! [`crate::checks::resolve_connection`]). pg then only dials.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::fault::Fault;
use crate::k8s::secrets::SecretRef;
use crate::net::Via;
use crate::pg::target::{SslMode, Target};
use crate::url_safety;

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

    /// Whether a field holds a value an earlier check registers (`${app_password}`), known
    /// only once that check has run. Every field's text is looked at, through `Debug`: a
    /// field added later cannot be forgotten here.
    pub fn has_runtime_values(&self) -> bool {
        crate::text::is_deferred(&format!("{self:?}"))
    }

    /// The target its fields give, once `expand` has put in the runtime variables; every
    /// password it finds is handed to `redactor` before anything can show it. A password
    /// from a Secret is the caller's: see [`crate::checks::resolve_connection`].
    pub fn resolve_fields(
        &self,
        expand: impl Fn(&str) -> Result<String, String>,
        redactor: &crate::redact::Redactor,
    ) -> Result<Target, Fault> {
        let expand = |v: &Option<String>| v.as_deref().map(&expand).transpose().map_err(Fault::new);
        let (uri, uri_sslmode, uri_sslrootcert) = match expand(&self.uri)? {
            Some(uri) => {
                let (rest, sslmode, sslrootcert) = split_tls_params(&uri);
                // A password with an unencoded `@`, `/` or `#` misparses (its tail would show as
                // the host): name the problem, never echo the URI.
                url_safety::check_user_info(&rest)
                    .and_then(|()| url_safety::check_secrets_whole(&rest, redactor))
                    .map_err(|e| {
                        Fault::new(format!("connection URI: {}", e.or_instead(URI_PASSWORD_INSTEAD)))
                            .hint("percent-encode `@`, `/`, `#` and `:` in the user and password, or give them as `user:` and `password:`")
                    })?;
                let user_info = url_safety::may_hold_user_info(&rest);
                let config =
                    rest.parse::<tokio_postgres::Config>()
                        .map_err(|e| {
                            let message = match user_info {
                                true => format!(
                                    "connection URI: {}",
                                    url_safety::describe_url_error(&rest)
                                ),
                                false => format!("connection URI is not valid: {e}"),
                            };
                            Fault::new(message).hint("write it as libpq does: `postgresql://user@host:5432/dbname?sslmode=require`")
                        })?;
                let sslmode = sslmode
                    .map(|m| SslMode::parse(&m))
                    .transpose()
                    .map_err(|e| Fault::new(e.to_string()))?;
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
                    Some(p) => p.parse().map_err(|_| {
                        Fault::new(format!("PGPORT `{p}` is not a port number"))
                            .hint("unset PGPORT, or give the connection a `port:`")
                    })?,
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
                    .map_err(|e| {
                        Fault::new(format!("cannot read password_file `{}`: {e}", file.display()))
                            .hint("the path is read on the machine attest runs on (in a Job: a Secret mounted there); or use `password_secret:` to read the Secret through the API")
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            ),
            (None, None, Some(var)) => {
                Some(std::env::var(var).map_err(|_| {
                    Fault::new(format!(
                        "password_env `{var}` is not set in attest's environment"
                    ))
                    .hint(format!("export {var} before running attest, or use a secret variable (`--set`, `--vars`, `kubernetes_secret:`)"))
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
                Some(mode) => SslMode::parse(&mode).map_err(|e| {
                    Fault::new(format!("PGSSLMODE: {e}"))
                        .hint("unset PGSSLMODE, or give the connection an `sslmode:`")
                })?,
                None => SslMode::Prefer,
            },
        };
        let sslrootcert = self
            .sslrootcert
            .clone()
            .or(uri_sslrootcert)
            .or_else(|| env("PGSSLROOTCERT").map(PathBuf::from));
        if matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) && sslrootcert.is_none() {
            return Err(Fault::new(format!(
                "sslmode {} needs `sslrootcert:` (the CA's PEM file)",
                if sslmode == SslMode::VerifyCa {
                    "verify-ca"
                } else {
                    "verify-full"
                }
            ))
            .hint("give `sslrootcert:` (or PGSSLROOTCERT) the CA that signed the server's certificate; `sslmode: require` encrypts without verifying"));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::resolve_connection;
    use crate::context::CheckContext;

    #[test]
    fn a_uri_whose_password_holds_an_at_sign_is_refused_without_echoing_it() {
        let ctx = CheckContext::for_test();
        let spec = ConnectionSpec {
            uri: Some("postgresql://app:p@ss-TAILSECRET@db.example:5432/app".into()),
            ..ConnectionSpec::default()
        };
        let error = futures::executor::block_on(resolve_connection(&spec, &ctx)).unwrap_err();
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
        let target = futures::executor::block_on(resolve_connection(&spec, &ctx)).unwrap();
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
        let target = futures::executor::block_on(resolve_connection(&spec, &ctx)).unwrap();
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
        assert!(futures::executor::block_on(resolve_connection(&spec, &ctx))
            .unwrap_err()
            .message
            .contains("sslrootcert"));
    }

    #[test]
    fn a_connection_that_cannot_resolve_says_how_to_fix_it() {
        let ctx = CheckContext::for_test();
        let spec = ConnectionSpec {
            host: Some("h".into()),
            password_env: Some("ATTEST_TEST_NEVER_SET_PW".into()),
            ..ConnectionSpec::default()
        };
        let fault = futures::executor::block_on(resolve_connection(&spec, &ctx)).unwrap_err();
        assert_eq!(
            fault.message,
            "password_env `ATTEST_TEST_NEVER_SET_PW` is not set in attest's environment"
        );
        assert!(
            fault
                .hint
                .as_deref()
                .is_some_and(|h| h.starts_with("export ATTEST_TEST_NEVER_SET_PW before")),
            "{fault:?}"
        );
        let spec = ConnectionSpec {
            host: Some("h".into()),
            password_file: Some("/nonexistent/attest/pw".into()),
            ..ConnectionSpec::default()
        };
        let fault = futures::executor::block_on(resolve_connection(&spec, &ctx)).unwrap_err();
        assert!(
            fault.message.starts_with("cannot read password_file"),
            "{fault:?}"
        );
        assert!(fault.hint.is_some_and(|h| h.contains("password_secret:")));
    }
}
