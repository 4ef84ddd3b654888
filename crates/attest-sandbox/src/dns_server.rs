//! In-process DNS server answering cluster service names (`*.svc.cluster.local`) on loopback
//! (or, for the real nodes' pods, on an address of the testbed's namespace: kube/pod_dns.rs).

use std::{
    io,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use hickory_server::{
    proto::rr::{rdata::SOA, LowerName, Name, RData, Record, RecordSet, RecordType, RrKey},
    store::in_memory::InMemoryZoneHandler,
    zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType},
    Server,
};
use tokio::net::{TcpListener, UdpSocket};

const ZONE: &str = "cluster.local.";
/// Short TTL: the sandbox's records are fixed for its lifetime, but clients should not hold on to them.
const TTL: u32 = 5;

/// A running DNS server; stopped by [`DnsServer::shutdown`] or on drop.
pub struct DnsServer {
    // Dropping `Server` drops its `JoinSet`, which aborts the listener tasks.
    server: Server<Catalog>,
    addr: SocketAddr,
    zone: Arc<InMemoryZoneHandler>,
}

/// The `cluster.local` records of a running [`DnsServer`], to replace while it serves.
#[derive(Clone)]
pub struct Records {
    zone: Arc<InMemoryZoneHandler>,
}

impl Records {
    /// Replaces every A/AAAA record of the zone with `records` (same form as for
    /// [`DnsServer::start`]), at once: a query sees the old set or the new one.
    pub async fn set(&self, records: &[(String, IpAddr)]) -> io::Result<()> {
        let origin = Name::from_ascii(ZONE).map_err(|e| invalid(e.to_string()))?;
        let mut sets: std::collections::BTreeMap<RrKey, RecordSet> = Default::default();
        for (name, ip) in records {
            let fqdn = in_zone(&origin, name)?;
            let record = Record::from_rdata(fqdn.clone(), TTL, RData::from(*ip));
            let key = RrKey::new(LowerName::new(&fqdn), record.record_type());
            sets.entry(key)
                .or_insert_with(|| RecordSet::with_ttl(fqdn, record.record_type(), TTL))
                .insert(record, 1);
        }
        let mut map = self.zone.records_mut().await;
        map.retain(|key, _| key.record_type == RecordType::SOA);
        map.extend(sets.into_iter().map(|(k, v)| (k, Arc::new(v))));
        Ok(())
    }
}

impl DnsServer {
    /// Starts serving on 127.0.0.1 with an OS-chosen port, UDP and TCP on the same port.
    /// `records`: fully-qualified names (with or without trailing dot) under `cluster.local`
    /// mapped to addresses (A for IPv4, AAAA for IPv6).
    pub async fn start(records: &[(String, IpAddr)]) -> io::Result<DnsServer> {
        let (udp, tcp) = bind_pair().await?;
        DnsServer::serve(udp, tcp, records)
    }

    /// As [`DnsServer::start`], on `addr` exactly (UDP and TCP).
    pub async fn start_at(addr: SocketAddr, records: &[(String, IpAddr)]) -> io::Result<DnsServer> {
        let udp = UdpSocket::bind(addr).await?;
        let tcp = TcpListener::bind(addr).await?;
        DnsServer::serve(udp, tcp, records)
    }

    fn serve(
        udp: UdpSocket,
        tcp: TcpListener,
        records: &[(String, IpAddr)],
    ) -> io::Result<DnsServer> {
        let (catalog, zone) = catalog(records)?;
        let addr = udp.local_addr()?;
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 32);
        Ok(DnsServer { server, addr, zone })
    }

    /// The zone's records, to replace while the server runs.
    pub fn records(&self) -> Records {
        Records {
            zone: self.zone.clone(),
        }
    }

    /// The loopback address served, UDP and TCP alike.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server (also done on Drop); must not hang.
    pub async fn shutdown(mut self) {
        // The listener loops watch the shutdown token and drop their per-connection tasks on
        // exit, so this finishes promptly; their "socket closed" errors are of no interest.
        let _ = self.server.shutdown_gracefully().await;
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// `name` as a fully qualified name inside `origin`, or an error.
fn in_zone(origin: &Name, name: &str) -> io::Result<Name> {
    let mut fqdn = Name::from_ascii(name).map_err(|e| invalid(format!("{name}: {e}")))?;
    fqdn.set_fqdn(true);
    if !origin.zone_of(&fqdn) {
        return Err(invalid(format!("{name} is not under {ZONE}")));
    }
    Ok(fqdn)
}

/// Builds the authoritative `cluster.local.` zone holding `records`.
fn catalog(records: &[(String, IpAddr)]) -> io::Result<(Catalog, Arc<InMemoryZoneHandler>)> {
    let origin = Name::from_ascii(ZONE).map_err(|e| invalid(e.to_string()))?;
    let mut zone: InMemoryZoneHandler =
        InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);

    // Without an SOA the zone is not authoritative and unknown names would not be NXDOMAIN.
    let serial = 1;
    let soa = SOA::new(
        Name::from_ascii("ns.dns.cluster.local.").map_err(|e| invalid(e.to_string()))?,
        Name::from_ascii("hostmaster.cluster.local.").map_err(|e| invalid(e.to_string()))?,
        serial,
        3600,
        600,
        86400,
        TTL,
    );
    zone.upsert_mut(
        Record::from_rdata(origin.clone(), TTL, RData::SOA(soa)),
        serial,
    );

    for (name, ip) in records {
        let fqdn = in_zone(&origin, name)?;
        if !zone.upsert_mut(Record::from_rdata(fqdn, TTL, RData::from(*ip)), serial) {
            return Err(invalid(format!("cannot add {name} to {ZONE}")));
        }
    }

    let mut catalog = Catalog::new();
    let zone = Arc::new(zone);
    let handler: Arc<dyn ZoneHandler> = zone.clone();
    catalog.upsert(LowerName::new(&origin), vec![handler]);
    // An empty root zone: names outside `cluster.local` get NXDOMAIN, as CoreDNS answers for
    // names that do not exist anywhere, instead of REFUSED.
    let root = Name::root();
    let mut outside: InMemoryZoneHandler =
        InMemoryZoneHandler::empty(root.clone(), ZoneType::Primary, AxfrPolicy::Deny);
    let root_soa = SOA::new(
        Name::from_ascii("ns.dns.cluster.local.").map_err(|e| invalid(e.to_string()))?,
        Name::from_ascii("hostmaster.cluster.local.").map_err(|e| invalid(e.to_string()))?,
        serial,
        3600,
        600,
        86400,
        TTL,
    );
    outside.upsert_mut(
        Record::from_rdata(root.clone(), TTL, RData::SOA(root_soa)),
        serial,
    );
    let outside: Arc<dyn ZoneHandler> = Arc::new(outside);
    catalog.upsert(LowerName::new(&root), vec![outside]);
    Ok((catalog, zone))
}

/// Binds UDP and TCP on the same loopback port; the OS picks the TCP port, which may
/// already be taken for UDP, so retry a few times.
async fn bind_pair() -> io::Result<(UdpSocket, TcpListener)> {
    let mut last_err = None;
    for _ in 0..16 {
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        match UdpSocket::bind(tcp.local_addr()?).await {
            Ok(udp) => return Ok((udp, tcp)),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no free port")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::{
        config::{LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts},
        net::runtime::TokioRuntimeProvider,
        Resolver,
    };

    fn resolver(addr: SocketAddr) -> Resolver<TokioRuntimeProvider> {
        let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
        for conn in &mut ns.connections {
            conn.port = addr.port();
        }
        let mut opts = ResolverOpts::default();
        opts.cache_size = 0;
        opts.attempts = 0;
        opts.timeout = Duration::from_secs(1);
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ip_strategy = LookupIpStrategy::Ipv4Only;
        Resolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![ns]),
            TokioRuntimeProvider::default(),
        )
        .with_options(opts)
        .build()
        .expect("resolver")
    }

    fn records() -> Vec<(String, IpAddr)> {
        vec![
            (
                "pg-rw.db.svc.cluster.local".into(),
                "127.0.0.1".parse().unwrap(),
            ),
            ("pg-ro.db.svc.cluster.local.".into(), "::1".parse().unwrap()),
        ]
    }

    #[tokio::test]
    async fn record_resolves_to_its_address() {
        let server = DnsServer::start(&records()).await.unwrap();
        let resolver = resolver(server.addr());
        let ips = resolver
            .lookup_ip("pg-rw.db.svc.cluster.local.")
            .await
            .unwrap();
        assert_eq!(
            ips.iter().collect::<Vec<_>>(),
            vec![IpAddr::from(Ipv4Addr::LOCALHOST)]
        );
        // IPv6 addresses are served as AAAA.
        let aaaa = resolver
            .ipv6_lookup("pg-ro.db.svc.cluster.local.")
            .await
            .unwrap();
        assert!(matches!(&aaaa.answers()[0].data, RData::AAAA(a) if a.0.is_loopback()));
        server.shutdown().await;
    }

    #[tokio::test]
    async fn records_replaced_while_serving_answer_at_once() {
        let server = DnsServer::start(&records()).await.unwrap();
        let resolver = resolver(server.addr());
        let new = [(
            "svc.ns.svc.cluster.local".to_string(),
            "100.66.0.7".parse::<IpAddr>().unwrap(),
        )];
        server.records().set(&new).await.unwrap();
        let ips = resolver
            .lookup_ip("svc.ns.svc.cluster.local.")
            .await
            .unwrap();
        assert_eq!(ips.iter().collect::<Vec<_>>(), vec![new[0].1]);
        // The old names are gone, and names outside the zone are refused.
        let err = resolver
            .lookup_ip("pg-rw.db.svc.cluster.local.")
            .await
            .unwrap_err();
        assert!(err.is_nx_domain(), "{err:?}");
        let bad = [("example.com".to_string(), new[0].1)];
        assert!(server.records().set(&bad).await.is_err());
        server.shutdown().await;
    }

    #[tokio::test]
    async fn unknown_name_in_zone_is_nxdomain() {
        let server = DnsServer::start(&records()).await.unwrap();
        let err = resolver(server.addr())
            .lookup_ip("missing.db.svc.cluster.local.")
            .await
            .unwrap_err();
        assert!(err.is_nx_domain(), "{err:?}");
    }

    #[tokio::test]
    async fn unknown_name_outside_the_zone_is_nxdomain_as_coredns_answers() {
        let server = DnsServer::start(&records()).await.unwrap();
        let err = resolver(server.addr())
            .lookup_ip("nothing-here.example.invalid.")
            .await
            .unwrap_err();
        assert!(err.is_nx_domain(), "{err:?}");
    }

    #[tokio::test]
    async fn names_outside_the_zone_are_rejected() {
        let bad = [("example.com".to_string(), IpAddr::from(Ipv4Addr::LOCALHOST))];
        assert!(DnsServer::start(&bad).await.is_err());
    }

    async fn assert_query_fails(addr: SocketAddr) {
        let resolver = resolver(addr);
        let lookup = resolver.lookup_ip("pg-rw.db.svc.cluster.local.");
        let result = tokio::time::timeout(Duration::from_secs(5), lookup)
            .await
            .expect("lookup should fail within its own timeout");
        assert!(result.is_err());
    }

    #[tokio::test]
    async fn query_fails_after_shutdown() {
        let server = DnsServer::start(&records()).await.unwrap();
        let addr = server.addr();
        server.shutdown().await;
        assert_query_fails(addr).await;
    }

    #[tokio::test]
    async fn query_fails_after_drop() {
        let server = DnsServer::start(&records()).await.unwrap();
        let addr = server.addr();
        drop(server);
        assert_query_fails(addr).await;
    }
}
