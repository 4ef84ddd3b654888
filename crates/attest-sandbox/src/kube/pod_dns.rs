//! DNS for the real nodes' pods (kubelet's `clusterDNS`): the sandbox's DNS stand-in
//! ([`crate::dns_server`]) on port 53 of an address of the testbed's network namespace, its
//! `cluster.local` zone kept in step with the cluster's Services by reading them from the API
//! every second: `<service>.<namespace>.svc.cluster.local` answers the Service's ClusterIP, as
//! CoreDNS's `kubernetes` plugin does for ClusterIP Services. Not served (NXDOMAIN): headless
//! Services, pods' own names, SRV records. Runs in this process on a runtime of its own, so it
//! stops with the testbed (or this process) and leaves nothing to clean up.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::dns_server::{DnsServer, Records};

pub struct PodDns {
    /// Ends the thread serving DNS (dropping it does too).
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    addr: SocketAddr,
}

impl PodDns {
    /// Serves on `address`:53 and refreshes the records from the apiserver at `server` (its
    /// CA and the admin client certificate from kwokctl's `pki`). The first refresh is done
    /// before this returns, so the names of the Services that exist already resolve. A thread
    /// of its own with its own runtime: callable from anywhere, and stopped (sockets closed)
    /// when this is dropped.
    pub fn start(address: IpAddr, server: &str, pki: &Path) -> Result<PodDns, String> {
        let read = |name: &str| {
            std::fs::read(pki.join(name))
                .map_err(|e| format!("cannot read {}: {e}", pki.join(name).display()))
        };
        let ca = reqwest::Certificate::from_pem(&read("ca.crt")?)
            .map_err(|e| format!("the cluster CA: {e}"))?;
        let identity =
            reqwest::Identity::from_pem(&[read("admin.crt")?, read("admin.key")?].concat())
                .map_err(|e| format!("the admin certificate: {e}"))?;
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .identity(identity)
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        let addr = SocketAddr::new(address, 53);
        let url = format!("{}/api/v1/services", server.trim_end_matches('/'));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("attest-pod-dns".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("cannot start a runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let dns = match DnsServer::start_at(addr, &[]).await {
                        Ok(dns) => dns,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("cannot serve DNS on {addr}: {e}")));
                            return;
                        }
                    };
                    let records = dns.records();
                    let first = refresh(&client, &url, &records).await;
                    let failed = first.is_err();
                    let _ = ready_tx.send(first);
                    if failed {
                        return;
                    }
                    loop {
                        tokio::select! {
                            _ = &mut stopped => break,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                                // A failed read keeps the last records (the apiserver may be
                                // restarting).
                                let _ = refresh(&client, &url, &records).await;
                            }
                        }
                    }
                    dns.shutdown().await;
                });
            })
            .map_err(|e| format!("cannot start the pods' DNS thread: {e}"))?;
        let mut dns = PodDns {
            stop: Some(stop),
            thread: Some(thread),
            addr,
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(dns),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                dns.stop.take();
                Err("the pods' DNS thread ended at start".to_owned())
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for PodDns {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads the Services and replaces the zone's records with their ClusterIPs.
async fn refresh(client: &reqwest::Client, url: &str, records: &Records) -> Result<(), String> {
    let response = client
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| format!("cannot list the Services: {e}"))?;
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("cannot read the Services: {e}"))?;
    let list: Value =
        serde_json::from_slice(&body).map_err(|e| format!("the Services are not JSON: {e}"))?;
    records
        .set(&service_records(&list))
        .await
        .map_err(|e| format!("cannot update the pods' DNS: {e}"))
}

/// `<name>.<namespace>.svc.cluster.local` → ClusterIP of each Service that has one.
fn service_records(list: &Value) -> Vec<(String, IpAddr)> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|service| {
            let meta = &service["metadata"];
            let ip: IpAddr = service["spec"]["clusterIP"].as_str()?.parse().ok()?;
            Some((
                format!(
                    "{}.{}.svc.cluster.local",
                    meta["name"].as_str()?,
                    meta["namespace"].as_str()?
                ),
                ip,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_with_a_cluster_ip_get_their_name_headless_ones_none() {
        let list: Value = serde_json::from_str(
            r#"{"items":[
              {"metadata":{"name":"kubernetes","namespace":"default"},"spec":{"clusterIP":"100.66.0.1"}},
              {"metadata":{"name":"pg-hl","namespace":"data"},"spec":{"clusterIP":"None"}},
              {"metadata":{"name":"pg","namespace":"data"},"spec":{"clusterIP":"100.66.3.4"}}
            ]}"#,
        )
        .unwrap();
        assert_eq!(
            service_records(&list),
            vec![
                (
                    "kubernetes.default.svc.cluster.local".to_owned(),
                    "100.66.0.1".parse().unwrap()
                ),
                (
                    "pg.data.svc.cluster.local".to_owned(),
                    "100.66.3.4".parse().unwrap()
                ),
            ]
        );
    }
}
