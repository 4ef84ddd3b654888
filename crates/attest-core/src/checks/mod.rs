//! Check kinds: one module each, behind the small [`Check`] trait, registered in one list.
//!
//! Adding a kind: write `checks/<kind>.rs` with a spec type that implements `Deserialize`,
//! `JsonSchema` and [`Kind`], then add one line to the `kinds!` list below.

use std::fmt;
use std::future::Future;

use futures::future::BoxFuture;

use crate::context::CheckContext;
use crate::outcome::{Evidence, Mismatch, Status};
use crate::safety::Safety;

pub mod command;
pub mod connection;
pub mod dns;
pub mod file;
pub mod http;
pub mod kube_object;
pub mod node_drain;
pub mod output;
pub mod pg_backup;
pub mod pg_crud;
pub mod pg_isolation;
pub mod pg_provision;
pub mod pg_ready;
pub mod pg_sentinel;
pub mod pod_delete;
pub mod pod_env;
pub mod pod_exec;
pub mod pod_logs;
pub mod postgres;
pub mod sql;
pub mod tcp;

pub use connection::ConnectionSpec;

/// A check as the runner sees it: object-safe, one per check in a suite. Every kind gets it
/// from the blanket implementation over [`Kind`]; nothing implements it by hand.
pub trait Check: Send + Sync + fmt::Debug {
    /// What the check talks to, for reports (`127.0.0.1:5432`, a URL, a path).
    fn target(&self) -> String;
    /// How much this check disturbs the environment (may depend on its fields).
    fn safety(&self) -> Safety;
    /// What the check needs to be allowed to do, for a preflight before anything runs.
    fn permissions(&self) -> Vec<Permission>;
    /// Problems with the check's fields that are known before anything runs.
    fn validate(&self) -> Vec<FieldProblem>;
    /// Observes and judges. Returns data; never prints.
    fn run<'a>(&'a self, ctx: &'a CheckContext) -> BoxFuture<'a, Verdict>;
    /// See [`Kind::query_ahead`].
    fn query_ahead(&self) -> Option<QueryAhead<'_>>;
}

/// A query a check will send, known before it runs: a run of such checks on one connection
/// is sent at once, pipelined on one session (see [`crate::pg::Pipeline`]).
#[derive(Debug, PartialEq)]
pub struct QueryAhead<'a> {
    pub connection: &'a connection::ConnectionSpec,
    pub query: &'a str,
}

/// One check kind: its fields (the `Deserialize` type), what it observes, and its facts.
pub trait Kind: Send + Sync + fmt::Debug {
    /// The least safety class of any check of this kind (for docs and the schema); a check may
    /// be more disruptive (see [`Kind::safety`]) and a suite may raise it, never lower it.
    const SAFETY: Safety = Safety::ReadOnly;
    /// One sentence for the schema's hover text and docs: what a check of this kind proves.
    const DESCRIPTION: &'static str;
    /// Values the kind hands to later checks when a check says `register: NAME`: each becomes
    /// the variable `NAME_<key>`; `true` marks it secret.
    const EXPORTS: &'static [(&'static str, bool)] = &[];

    /// The PostgreSQL connection a check of this kind uses, if any: it gives the defaults of
    /// [`Kind::target`], [`Kind::permissions`] and [`Kind::validate`].
    fn connection(&self) -> Option<&ConnectionSpec> {
        None
    }

    /// What the check talks to, for reports; by default the connection's label.
    fn target(&self) -> String {
        self.connection()
            .map(ConnectionSpec::label)
            .unwrap_or_default()
    }

    /// This check's safety class; by default the kind's.
    fn safety(&self) -> Safety {
        Self::SAFETY
    }

    /// Permissions this check needs (Kubernetes verbs and resources): by default what its
    /// connection needs (a port-forward, a Secret), else none.
    fn permissions(&self) -> Vec<Permission> {
        self.connection()
            .map(ConnectionSpec::permissions)
            .unwrap_or_default()
    }

    /// Problems with this check's fields that are known when the suite loads (a port of 0,
    /// a status of 999, a comparison that cannot be read), each naming its field, so the
    /// loader reports them at their line and column before anything runs. Values that come
    /// from variables are checked after interpolation. By default the connection's fields.
    fn validate(&self) -> Vec<FieldProblem> {
        self.connection()
            .map(crate::validate::connection)
            .unwrap_or_default()
    }

    /// Observes and judges. Returns data; never prints.
    fn observe(&self, ctx: &CheckContext) -> impl Future<Output = Verdict> + Send;

    /// The one query this check sends, if it is known before the check runs (no value an
    /// earlier check registers in it or its connection) and answering it changes nothing
    /// (the runner sends it ahead only for read-only checks). `None` by default.
    fn query_ahead(&self) -> Option<QueryAhead<'_>> {
        None
    }
}

pub use crate::validate::FieldProblem;

impl<K: Kind> Check for K {
    fn target(&self) -> String {
        Kind::target(self)
    }
    fn safety(&self) -> Safety {
        Kind::safety(self)
    }
    fn permissions(&self) -> Vec<Permission> {
        Kind::permissions(self)
    }
    fn validate(&self) -> Vec<FieldProblem> {
        Kind::validate(self)
    }
    fn run<'a>(&'a self, ctx: &'a CheckContext) -> BoxFuture<'a, Verdict> {
        Box::pin(self.observe(ctx))
    }
    fn query_ahead(&self) -> Option<QueryAhead<'_>> {
        Kind::query_ahead(self)
    }
}

pub use crate::k8s::Permission;

macro_rules! kinds {
    ($($name:literal => $ty:ty),* $(,)?) => {
        /// YAML names of all check kinds.
        pub const KIND_NAMES: &[&str] = &[$($name),*];

        /// Deserializes the value of a kind key into that kind's check.
        pub(crate) fn deserialize_kind<'de, D: serde::Deserializer<'de>>(
            name: &str,
            body: D,
        ) -> Result<Box<dyn Check>, D::Error> {
            match name {
                $($name => Ok(Box::new(<$ty as serde::Deserialize>::deserialize(body)?)),)*
                other => Err(serde::de::Error::custom(format!("unknown check kind `{other}`"))),
            }
        }

        /// The JSON Schema of each kind's fields.
        pub fn kind_schemas(
            generator: &mut schemars::SchemaGenerator,
        ) -> Vec<(&'static str, schemars::Schema)> {
            vec![$(($name, generator.subschema_for::<$ty>())),*]
        }

        /// A kind's one-sentence description.
        pub fn kind_description(name: &str) -> &'static str {
            match name {
                $($name => <$ty as Kind>::DESCRIPTION,)*
                _ => "",
            }
        }

        /// What a kind exports when registered.
        pub fn kind_exports(name: &str) -> &'static [(&'static str, bool)] {
            match name {
                $($name => <$ty as Kind>::EXPORTS,)*
                _ => &[],
            }
        }
    };
}

kinds! {
    "dns" => dns::DnsCheck,
    "tcp" => tcp::TcpCheck,
    "http" => http::HttpCheck,
    "file" => file::FileCheck,
    "command" => command::CommandCheck,
    "postgres" => postgres::PostgresCheck,
    "sql" => sql::SqlCheck,
    "pg-ready" => pg_ready::PgReadyCheck,
    "pg-provision" => pg_provision::PgProvisionCheck,
    "pg-crud" => pg_crud::PgCrudCheck,
    "pg-isolation" => pg_isolation::PgIsolationCheck,
    "pg-sentinel" => pg_sentinel::PgSentinelCheck,
    "pg-backup" => pg_backup::PgBackupCheck,
    "kube" => kube_object::KubeObjectCheck,
    "pod-exec" => pod_exec::PodExecCheck,
    "pod-logs" => pod_logs::PodLogsCheck,
    "pod-env" => pod_env::PodEnvCheck,
    "pod-delete" => pod_delete::PodDeleteCheck,
    "node-drain" => node_drain::NodeDrainCheck,
}

/// The registered name matching a key, if the key names a kind.
pub fn kind_name(key: &str) -> Option<&'static str> {
    KIND_NAMES.iter().copied().find(|name| *name == key)
}

/// A check's judgement: status, a sentence of evidence, and what backs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub status: Status,
    /// Evidence in words: "resolved to 10.43.0.12 in 0.4 ms", "p95 connect 140 ms exceeds 100 ms".
    pub summary: String,
    /// What backs it: expected and found, the object, mismatches, measurements, a hint.
    pub evidence: Evidence,
    /// Values for later checks (`register:`), by export key.
    pub exports: Vec<(&'static str, String)>,
}

impl Verdict {
    fn new(status: Status, summary: impl Into<String>) -> Self {
        Verdict {
            status,
            summary: summary.into(),
            evidence: Evidence::default(),
            exports: Vec::new(),
        }
    }
    pub fn pass(summary: impl Into<String>) -> Self {
        Self::new(Status::Passed, summary)
    }
    pub fn fail(summary: impl Into<String>) -> Self {
        Self::new(Status::Failed, summary)
    }
    /// The check could not be evaluated (bad configuration, a missing tool), as opposed to
    /// the environment not meeting the expectation.
    pub fn error(summary: impl Into<String>) -> Self {
        Self::new(Status::Error, summary)
    }
    /// Passes when `ok`, else fails, with the same evidence either way.
    pub fn judge(ok: bool, summary: impl Into<String>) -> Self {
        if ok {
            Self::pass(summary)
        } else {
            Self::fail(summary)
        }
    }
    pub fn expected(mut self, text: impl Into<String>) -> Self {
        self.evidence.expected = Some(text.into());
        self
    }
    pub fn found(mut self, text: impl Into<String>) -> Self {
        self.evidence.found = Some(text.into());
        self
    }
    pub fn hint(mut self, text: impl Into<String>) -> Self {
        self.evidence.hint = Some(text.into());
        self
    }
    /// Names the object the mismatches are about.
    pub fn subject(mut self, text: impl Into<String>) -> Self {
        self.evidence.subject = Some(text.into());
        self
    }
    /// Adds one field that did not meet its expectation.
    pub fn mismatch(
        mut self,
        path: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        self.evidence.mismatches.push(Mismatch {
            path: path.into(),
            expected: expected.into(),
            found: found.into(),
            subject: None,
        });
        self
    }
    /// Adds a hint only when the verdict is not a pass.
    pub fn hint_unless_passed(self, text: impl Into<String>) -> Self {
        if self.status == Status::Passed {
            self
        } else {
            self.hint(text)
        }
    }
    pub fn measure(mut self, key: impl Into<String>, value: f64) -> Self {
        self.evidence.measurements.insert(key.into(), value);
        self
    }
    pub fn export(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.exports.push((key, value.into()));
        self
    }
    pub fn passed(&self) -> bool {
        self.status == Status::Passed
    }
}

/// Resolves a check's connection into a [`crate::pg::Target`]: runtime variables, the URI, the
/// PG* environment and the password file as libpq reads them, and the password from a Secret
/// when `password_secret` names one (handed to the redactor before anything can show it).
pub async fn resolve_connection(
    spec: &ConnectionSpec,
    ctx: &CheckContext,
) -> Result<crate::pg::Target, crate::fault::Fault> {
    let from_secret = match &spec.password_secret {
        Some(secret) => {
            let secret = crate::k8s::secrets::SecretRef {
                namespace: ctx.expand(&secret.namespace)?,
                name: ctx.expand(&secret.name)?,
                key: ctx.expand(&secret.key)?,
            };
            let value =
                crate::k8s::secrets::value(&ctx.services.kube, &secret, ctx.remaining()).await?;
            ctx.redactor.add(&value);
            Some(value)
        }
        None => None,
    };
    let mut target = spec.resolve_fields(|text| ctx.expand(text), &ctx.redactor)?;
    if from_secret.is_some() {
        target.password = from_secret;
    }
    target.via = spec.via.clone();
    Ok(target)
}

/// Resolves a check's connection and opens a fresh session, tagged (see `Target::tagged`) so
/// its teardown can stop it, or says why it could not.
pub async fn open_session(
    spec: &ConnectionSpec,
    ctx: &CheckContext,
) -> Result<(crate::pg::Target, crate::pg::Session), Verdict> {
    let target = resolve_connection(spec, ctx)
        .await
        .map_err(Verdict::from)?
        .tagged();
    match crate::pg::connect(ctx.services.network.as_ref(), &target).await {
        Ok(session) => Ok((target, session)),
        Err(e) => Err(cannot_connect(&target, &e)),
    }
}

/// The verdict when a PostgreSQL check cannot even open its session.
pub fn cannot_connect(target: &crate::pg::Target, error: &crate::pg::ConnectError) -> Verdict {
    Verdict::fail(format!("cannot connect as {}: {error}", target.describe()))
        .found(error.to_string())
        .hint(error.hint_for(target))
}

/// Milliseconds as a measurement value, rounded to microseconds.
pub fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// A check that could not be evaluated: an `error` verdict, with the hint when there is one.
impl From<crate::fault::Fault> for Verdict {
    fn from(fault: crate::fault::Fault) -> Verdict {
        let verdict = Verdict::error(fault.message);
        match fault.hint {
            Some(hint) => verdict.hint(hint),
            None => verdict,
        }
    }
}
