//! `postgres`: connect and authenticate; expect success or a specific refusal; assert the
//! server version, superuser status and TLS of the session.

use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;

use super::ConnectionSpec;
use super::{millis, Kind, Verdict};
use crate::context::CheckContext;
use crate::duration::{format_duration, HumanDuration};
use crate::pg::{connect, scalar, ConnectError, Target};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresCheck {
    pub connection: ConnectionSpec,
    /// `ok` (default), `auth-fails` (28P01/28000), `db-missing` (3D000), `refused`, `unreachable`.
    #[serde(default)]
    pub expect: PgExpect,
    /// Glob on the server version, e.g. `15.*`.
    #[serde(default)]
    pub server_version: Option<String>,
    /// Whether the connected role must (or must not) be a superuser.
    #[serde(default)]
    pub superuser: Option<bool>,
    /// Whether the session must (or must not) use TLS.
    #[serde(default)]
    pub ssl: Option<bool>,
    /// Upper bound on connect + authentication time.
    #[serde(default)]
    pub max_connect_time: Option<HumanDuration>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PgExpect {
    #[default]
    Ok,
    AuthFails,
    DbMissing,
    Refused,
    Unreachable,
}

fn glob(pattern: &str) -> Regex {
    let escaped = regex::escape(pattern)
        .replace("\\*", ".*")
        .replace("\\?", ".");
    Regex::new(&format!("^{escaped}$")).expect("escaped glob is a valid regex")
}

fn matches_expectation(error: &ConnectError, expect: PgExpect) -> bool {
    match expect {
        PgExpect::Ok => false,
        PgExpect::AuthFails => matches!(error.sqlstate(), Some("28P01" | "28000")),
        PgExpect::DbMissing => error.sqlstate() == Some("3D000"),
        PgExpect::Refused => matches!(error, ConnectError::Refused(_)),
        PgExpect::Unreachable => matches!(error, ConnectError::Unreachable(_)),
    }
}

fn expect_text(expect: PgExpect) -> &'static str {
    match expect {
        PgExpect::Ok => "connected and authenticated",
        PgExpect::AuthFails => "authentication refused (SQLSTATE 28P01 or 28000)",
        PgExpect::DbMissing => "database does not exist (SQLSTATE 3D000)",
        PgExpect::Refused => "connection refused",
        PgExpect::Unreachable => "no answer",
    }
}

fn failure(target: &Target, error: &ConnectError, expect: PgExpect) -> Verdict {
    Verdict::fail(format!("{}: {error}", target.describe()))
        .expected(expect_text(expect))
        .found(error.to_string())
        .hint(error.hint_for(target))
}

impl Kind for PostgresCheck {
    const DESCRIPTION: &'static str = "Connects and authenticates (or expects a specific refusal); server version, superuser, TLS, connect time.";
    fn connection(&self) -> Option<&ConnectionSpec> {
        Some(&self.connection)
    }

    fn validate(&self) -> Vec<super::FieldProblem> {
        let mut problems = crate::validate::connection(&self.connection);
        problems.extend(crate::validate::positive(
            "max_connect_time",
            self.max_connect_time.as_ref(),
        ));
        problems
    }

    async fn observe(&self, ctx: &CheckContext) -> Verdict {
        let target = match super::resolve_connection(&self.connection, ctx).await {
            Ok(target) => target,
            Err(fault) => return fault.into(),
        };
        let who = target.describe();
        let result = connect(ctx.services.network.as_ref(), &target).await;
        let session = match (result, self.expect) {
            (Ok(session), PgExpect::Ok) => session,
            (Ok(_), expect) => {
                return Verdict::fail(format!("{who} connected and authenticated, but should not have"))
                    .expected(expect_text(expect))
                    .found("connection accepted")
                    .hint(match expect {
                        PgExpect::AuthFails => "the credentials work: rotate them, or check pg_hba.conf for `trust` lines",
                        PgExpect::DbMissing => "the database exists",
                        _ => "the server is reachable: check the Service type, NetworkPolicy or published ports",
                    })
            }
            (Err(e), expect) if matches_expectation(&e, expect) => {
                return Verdict::pass(format!("{who}: {} as expected ({e})", expect_text(expect)))
            }
            (Err(e), expect) => return failure(&target, &e, expect),
        };

        let mut problems = Vec::new();
        let version = scalar(&session.client, "SHOW server_version")
            .await
            .unwrap_or_default();
        let version = version.split_whitespace().next().unwrap_or("").to_owned();
        if let Some(pattern) = &self.server_version {
            if !glob(pattern).is_match(&version) {
                problems.push(format!("server version {version}, expected `{pattern}`"));
            }
        }
        let is_superuser = scalar(
            &session.client,
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
        )
        .await
        .as_deref()
            == Some("t");
        match self.superuser {
            Some(true) if !is_superuser => problems.push(format!("role `{}` is not a superuser", target.user)),
            Some(false) if is_superuser => problems.push(format!(
                "role `{}` is a superuser; an application role should not be (ALTER ROLE … NOSUPERUSER)",
                target.user
            )),
            _ => {}
        }
        match self.ssl {
            Some(true) if !session.tls => problems.push("the session is not encrypted".into()),
            Some(false) if session.tls => problems.push("the session is encrypted".into()),
            _ => {}
        }
        if let Some(limit) = self.max_connect_time {
            if session.connect_time > limit.0 {
                problems.push(format!(
                    "connect + auth took {}, over {limit}",
                    format_duration(session.connect_time)
                ));
            }
        }
        let facts = format!(
            "PostgreSQL {version}, {}, {}",
            if is_superuser {
                "superuser"
            } else {
                "not superuser"
            },
            if session.tls { "TLS" } else { "no TLS" }
        );
        let took = format_duration(session.connect_time);
        let verdict = if problems.is_empty() {
            Verdict::pass(format!("{who} authenticated in {took}: {facts}"))
        } else {
            Verdict::fail(format!("{who}: {}", problems.join("; "))).found(facts)
        };
        verdict.measure("connect_ms", millis(session.connect_time))
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn version_globs() {
        assert!(glob("15.*").is_match("15.18"));
        assert!(!glob("15.*").is_match("16.1"));
        assert!(glob("1?.2").is_match("15.2"));
    }
}
