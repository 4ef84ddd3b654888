//! Kubernetes: the client and what it fetched ([`access`]), typed failures ([`error`]), and
//! judging objects ([`matching`], [`quantity`]). Checks judge; this layer observes.

pub mod access;
pub mod disruption;
pub mod error;
pub mod job;
pub mod launch;
pub mod matching;
pub mod permission;
pub mod pods;
pub mod portforward;
pub mod preflight;
pub mod quantity;
pub mod rbac;
pub mod secrets;

pub use access::{ClusterInfo, KubeAccess, KubeClusters, KubeOptions, Selection};
pub use error::KubeError;
pub use permission::Permission;
