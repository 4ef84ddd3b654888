//! `pg-ready`: the `pg_isready` answer (accepting, rejecting, no response) without the binary.

use schemars::JsonSchema;
use serde::Deserialize;

use super::ConnectionSpec;
use super::{millis, Kind, Verdict};
use crate::context::CheckContext;
use crate::pg::{connect_once, ConnectError};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PgReadyCheck {
    /// Where to ask; no password is needed, as with pg_isready.
    pub connection: ConnectionSpec,
    /// `accepting` (default), `rejecting` or `no-response`.
    #[serde(default)]
    pub expect: Readiness,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Readiness {
    #[default]
    Accepting,
    Rejecting,
    NoResponse,
}

impl Readiness {
    fn text(self) -> &'static str {
        match self {
            Readiness::Accepting => "accepting connections",
            Readiness::Rejecting => "rejecting connections",
            Readiness::NoResponse => "no response",
        }
    }
}

/// Like pg_isready: any answer from a running server counts as accepting, even a refused
/// password; only "the database system is starting up / shutting down" (57P03) is rejecting.
fn readiness(result: &Result<(), ConnectError>) -> Readiness {
    match result {
        Ok(()) => Readiness::Accepting,
        Err(ConnectError::Server { code, .. }) if code == "57P03" => Readiness::Rejecting,
        Err(ConnectError::Server { .. }) => Readiness::Accepting,
        Err(_) => Readiness::NoResponse,
    }
}

impl Kind for PgReadyCheck {
    const DESCRIPTION: &'static str =
        "The `pg_isready` answer without the binary: accepting, rejecting or no response.";
    fn connection(&self) -> Option<&ConnectionSpec> {
        Some(&self.connection)
    }

    async fn observe(&self, ctx: &CheckContext) -> Verdict {
        let mut target = match super::resolve_connection(&self.connection, ctx).await {
            Ok(target) => target,
            Err(fault) => return fault.into(),
        };
        // Without a password the client gives up before the server says anything; a dummy one
        // makes the server answer (with 28P01), which is all pg_isready wants to know.
        target
            .password
            .get_or_insert_with(|| "attest-pg-ready-probe".to_owned());
        let address = format!("{}:{}", target.host, target.port);
        let started = std::time::Instant::now();
        let result = connect_once(ctx.services.network.as_ref(), &target)
            .await
            .map(|_| ());
        let elapsed = started.elapsed();
        let state = readiness(&result);
        // A refused login still proves the server accepts connections; say so, not why.
        let detail = match (&result, state) {
            (Err(e), Readiness::NoResponse | Readiness::Rejecting) => format!(" ({e})"),
            _ => String::new(),
        };
        Verdict::judge(state == self.expect, format!("{address}: {}{detail}", state.text()))
            .expected(self.expect.text())
            .found(state.text())
            .hint_unless_passed("`pg_isready -h HOST -p PORT` gives the same answer; check the pod's readiness and logs")
            .measure("response_ms", millis(elapsed))
    }
}
