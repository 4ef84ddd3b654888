//! Kubernetes: the client and what it fetched ([`access`]), typed failures ([`error`]), and
//! judging objects ([`matching`], [`quantity`]). Checks judge; this layer observes.

pub mod access;
pub mod error;
pub mod matching;
pub mod pods;
pub mod portforward;
pub mod preflight;
pub mod quantity;

pub use access::{ClusterInfo, KubeAccess, KubeOptions, Selection};
pub use error::KubeError;
