//! The few statements attest runs as an administrator or for its own bookkeeping: dropping
//! what checks created, stopping their sessions first, reading one value; and server errors as
//! users read them.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_postgres::Client;

use super::connect::{connect, ConnectError, Session};
use super::quote::ident;
use super::target::Target;
use crate::net::Network;

/// Why cleaning up on a server failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The cleaner's own session could not be opened.
    #[error("cannot connect as {who} to clean up: {error}")]
    Connect {
        who: String,
        error: ConnectError,
        /// What to try next, fitted to where the server is.
        hint: &'static str,
    },
    /// The server refused a statement: its message and SQLSTATE.
    #[error("{0}")]
    Server(String),
    /// Sessions of a cancelled check were told to stop and did not.
    #[error("sessions `{0}` did not end within 5 s")]
    SessionsLinger(String),
}

impl AdminError {
    /// What to try next, when it is known.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            AdminError::Connect { hint, .. } => Some(hint),
            AdminError::Server(_) | AdminError::SessionsLinger(_) => None,
        }
    }
}

/// The hint travels with the message to the verdict.
impl From<AdminError> for crate::fault::Fault {
    fn from(error: AdminError) -> crate::fault::Fault {
        let fault = crate::fault::Fault::new(error.to_string());
        match error.hint() {
            Some(hint) => fault.hint(hint),
            None => fault,
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
) -> Result<(), AdminError> {
    let (session, _) = teardown_session(network.as_ref(), &admin, "postgres").await?;
    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(&name));
    session
        .client
        .batch_execute(&sql)
        .await
        .map_err(|e| AdminError::Server(server_error(&e)))
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

/// A session for cleaning up after `target`: in `dbname`, untagged, with every session tagged
/// like `target` already stopped. Returns the tag it stopped.
pub async fn teardown_session(
    network: &dyn Network,
    target: &Target,
    dbname: &str,
) -> Result<(Session, String), AdminError> {
    let tag = target.application_name.clone();
    let mut cleaner = target.clone();
    cleaner.dbname = dbname.to_owned();
    cleaner.application_name = "attest-teardown".into();
    let session = connect(network, &cleaner)
        .await
        .map_err(|error| AdminError::Connect {
            hint: error.hint_for(&cleaner),
            who: cleaner.describe(),
            error,
        })?;
    if tag.starts_with("attest_") {
        terminate_tagged(&session.client, &tag).await?;
    }
    Ok((session, tag))
}

/// Stops every session carrying `application_name` and waits (up to 5 s) until they are gone:
/// a CREATE still in flight when a check was cancelled is rolled back instead of committing
/// after the teardown ran.
pub async fn terminate_tagged(client: &Client, application_name: &str) -> Result<(), AdminError> {
    let sql = "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
               WHERE application_name = $1 AND pid <> pg_backend_pid()) t";
    client
        .query_one(sql, &[&application_name])
        .await
        .map_err(|e| AdminError::Server(server_error(&e)))?;
    for _ in 0..50 {
        let left: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()",
                &[&application_name],
            )
            .await
            .map_err(|e| AdminError::Server(server_error(&e)))?
            .get(0);
        if left == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(AdminError::SessionsLinger(application_name.to_owned()))
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
