//! Reaching PostgreSQL: dialled through the network seam ([`crate::net::Network`]) so checks
//! do not care whether the server is reached directly, through a port-forward or in a sandbox;
//! the protocol, TLS, quoting and the few administrative statements attest runs. Resolving a
//! suite's connection settings into a [`Target`] is the checks' (see
//! [`crate::checks::connection`]): pg only dials, speaks the protocol and quotes.

mod admin;
mod connect;
mod names;
mod pipeline;
mod pool;
mod programs;
mod quote;
pub(crate) mod target;
mod tls;

pub use admin::{
    drop_database, scalar, server_error, sqlstate, teardown_session, terminate_tagged, AdminError,
};
pub use connect::{connect, connect_once, ConnectError, Session, TOO_MANY_CONNECTIONS};
pub use names::{generate_password, unique_name};
pub use pipeline::{Answer, Pipeline};
pub use pool::{Lease, Sessions, DEFAULT_POOL_SIZE};
pub use programs::{find_program, ProgramNotFound};
pub use quote::{ident, literal, quote_parts, quote_qualified};
pub use target::{SslMode, Target, UnknownSslMode};
