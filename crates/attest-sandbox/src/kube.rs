//! The local Kubernetes testbed: real upstream kube-apiserver, etcd, kube-controller-manager
//! and kube-scheduler started by kwokctl's `binary` runtime, kwok simulating the nodes and
//! their pods, and the stories' cluster (fixtures/kubernetes/) applied on top. Everything
//! binds 127.0.0.1 (with real nodes, which run only in a network namespace of the testbed's
//! own, the apiserver listens on that namespace's addresses, for their pods); the pods' exec, logs and port-forward are served by kwok from per-pod
//! folders, log files and tunnels to the throwaway PostgreSQL (see fixtures/kubernetes/kwok.yaml).
//!
//! [`KubeTestbed::start`] is the one entry point; dropping the testbed (or [`KubeTestbed::stop`],
//! or [`stop_all`] from a signal handler) deletes the cluster and its temporary folder.

mod accounts;
mod binaries;
mod cleanup;
mod fixtures;
mod kwok;
pub mod nodes;
mod pod_dns;
mod postgres;
mod ready;
mod render;
mod testbed;
mod util;

pub use accounts::ServiceAccount;
pub use binaries::{
    bin_dir, build, build_command, explain, go_present, locate, locate_from, missing_in,
    workspace_root, Binaries, BINARIES,
};
pub use cleanup::{processes_in, stop_all};
pub use postgres::PostgresTarget;
pub use testbed::{KubeOptions, KubeTestbed, LOOPBACK_POD_CIDR};
// For the real nodes' module, which names them as `super::…`.
use util::{free_ports, tail};
