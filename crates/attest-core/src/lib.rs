//! attest-core: acceptance criteria for self-hosted PostgreSQL deployments, as data.
//!
//! Data flows one way: suite files ([`suite`], [`load`]) → plan and execution ([`runner`],
//! [`checks`]) → outcomes ([`outcome`]) → reporters ([`report`]).

pub mod checks;
pub mod cleanup;
pub mod context;
pub mod duration;
pub mod evidence;
pub mod exit;
pub mod external;
pub mod fault;
pub mod field_path;
pub mod interpolate;
pub mod k8s;
pub mod load;
pub mod matchers;
pub mod net;
pub mod node_de;
pub mod outcome;
pub mod pg;
pub mod pgpass;
pub mod progress;
pub mod redact;
pub mod report;
pub mod rollup;
pub mod runner;
pub mod safety;
pub mod schema;
pub mod story;
pub mod stream;
pub mod suite;
pub mod text;
pub mod url_safety;
pub mod validate;
pub mod vantage;
pub mod watchdog;
pub mod yaml;
