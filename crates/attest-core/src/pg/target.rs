//! A PostgreSQL server as attest dials it: fully resolved settings (where, who, which TLS
//! mode), never the suite's wording of them.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use super::names::unique_name;
use crate::net::{Route, Via};

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
    pub fn parse(text: &str) -> Result<SslMode, UnknownSslMode> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => return Err(UnknownSslMode(other.to_owned())),
        })
    }
}

/// An sslmode libpq does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sslmode `{0}` is not one of disable, prefer, require, verify-ca, verify-full")]
pub struct UnknownSslMode(pub String);

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

impl Target {
    /// The same target, its sessions marked with a name of their own, so teardown can find
    /// (and stop) a statement still running when the check was cancelled.
    pub fn tagged(&self) -> Target {
        let mut tagged = self.clone();
        tagged.application_name = unique_name("attest");
        tagged
    }
}
