//! `dns`: a name resolves (or does not), optionally against a given nameserver, uncached.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::Name;
use hickory_resolver::Resolver;
use schemars::JsonSchema;
use serde::{de, Deserialize, Deserializer};

use super::{millis, Kind, Verdict};
use crate::context::CheckContext;
use crate::duration::{format_duration, HumanDuration};
use crate::fault::Fault;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsCheck {
    /// The name to resolve, e.g. `postgres-postgresql.data.svc.cluster.local`.
    pub name: String,
    /// Which addresses to ask for: `a`, `aaaa` or `any` (default).
    #[serde(default)]
    pub record: RecordType,
    /// Nameserver as `ip` or `ip:port`; empty or absent means the system resolver.
    #[serde(default, deserialize_with = "nameserver")]
    #[schemars(with = "Option<String>")]
    pub nameserver: Option<SocketAddr>,
    /// Search domains tried for names with fewer dots than `ndots` (1).
    #[serde(default)]
    pub search: Vec<String>,
    /// `resolves` (default) or `nxdomain` (the name must not exist).
    #[serde(default)]
    pub expect: DnsExpect,
    /// Addresses the answer must include.
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
    /// Fails when the lookup takes longer than this.
    #[serde(default)]
    pub max_time: Option<HumanDuration>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordType {
    A,
    Aaaa,
    #[default]
    Any,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DnsExpect {
    #[default]
    Resolves,
    Nxdomain,
}

/// How long one query waits for an answer; the check's own timeout bounds the whole lookup.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

fn nameserver<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    parse_nameserver(&text).map_err(de::Error::custom)
}

fn parse_nameserver(text: &str) -> Result<Option<SocketAddr>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(Some(addr));
    }
    text.parse::<IpAddr>()
        .map(|ip| Some(SocketAddr::new(ip, 53)))
        .map_err(|_| format!("nameserver `{text}` is not `ip` or `ip:port` (e.g. `10.43.0.10:53`)"))
}

impl DnsCheck {
    fn resolver(&self) -> Result<Resolver<TokioRuntimeProvider>, Fault> {
        let (mut config, mut opts) = match self.nameserver {
            Some(addr) => {
                let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                    .into_iter()
                    .map(|mut c| {
                        c.port = addr.port();
                        c
                    })
                    .collect();
                let server = NameServerConfig::new(addr.ip(), true, connections);
                (
                    ResolverConfig::from_name_servers(vec![server]),
                    ResolverOpts::default(),
                )
            }
            None => hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| {
                    Fault::new(format!(
                        "cannot read the system resolver configuration: {e}"
                    ))
                    .hint("give the check a `nameserver:` (`ip` or `ip:port`, e.g. the cluster DNS Service `10.43.0.10:53`)")
                })?,
        };
        for domain in &self.search {
            let name = Name::from_ascii(domain).map_err(|e| {
                Fault::new(format!("search domain `{domain}` is not a valid name: {e}"))
            })?;
            config.add_search(name);
        }
        // Every poll must ask the server again: no cache, no hosts file, one try per attempt.
        opts.cache_size = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.attempts = 0;
        opts.timeout = QUERY_TIMEOUT;
        opts.ip_strategy = match self.record {
            RecordType::A => LookupIpStrategy::Ipv4Only,
            RecordType::Aaaa => LookupIpStrategy::Ipv6Only,
            RecordType::Any => LookupIpStrategy::Ipv4AndIpv6,
        };
        Resolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| Fault::new(format!("cannot build a resolver: {e}")))
    }

    fn server_label(&self) -> String {
        self.nameserver
            .map(|a| a.to_string())
            .unwrap_or_else(|| "the system resolver".into())
    }
}

fn join(addrs: &[IpAddr]) -> String {
    if addrs.is_empty() {
        return "no addresses".into();
    }
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Kind for DnsCheck {
    const DESCRIPTION: &'static str = "Resolves a name (or expects NXDOMAIN), uncached, optionally against one nameserver; reports lookup time.";
    fn target(&self) -> String {
        format!("{} via {}", self.name, self.server_label())
    }

    fn validate(&self) -> Vec<super::FieldProblem> {
        use crate::validate;
        let mut problems: Vec<_> = validate::dns_name("name", &self.name).into_iter().collect();
        for (i, domain) in self.search.iter().enumerate() {
            problems.extend(validate::dns_name(&format!("search.{i}"), domain));
        }
        problems.extend(validate::positive("max_time", self.max_time.as_ref()));
        problems
    }

    async fn observe(&self, _ctx: &CheckContext) -> Verdict {
        let resolver = match self.resolver() {
            Ok(resolver) => resolver,
            Err(fault) => return fault.into(),
        };
        let started = Instant::now();
        let answer = resolver.lookup_ip(self.name.as_str()).await;
        let elapsed = started.elapsed();
        let took = format_duration(elapsed);
        let server = self.server_label();

        let verdict = match (answer, self.expect) {
            (Ok(lookup), DnsExpect::Resolves) => {
                let found: Vec<IpAddr> = lookup.iter().collect();
                let listed = join(&found);
                let missing: Vec<IpAddr> = self
                    .addresses
                    .iter()
                    .copied()
                    .filter(|a| !found.contains(a))
                    .collect();
                if missing.is_empty() {
                    Verdict::pass(format!("`{}` resolved to {listed} in {took}", self.name))
                } else {
                    Verdict::fail(format!(
                        "`{}` resolved, but not to {}",
                        self.name,
                        join(&missing)
                    ))
                    .expected(format!("addresses including {}", join(&self.addresses)))
                    .found(listed)
                    .hint("the Service may have been recreated with a new ClusterIP; check `kubectl get svc`")
                }
            }
            (Ok(lookup), DnsExpect::Nxdomain) => {
                let found: Vec<IpAddr> = lookup.iter().collect();
                Verdict::fail(format!("`{}` exists but should not", self.name))
                    .expected("NXDOMAIN")
                    .found(join(&found))
            }
            (Err(e), DnsExpect::Nxdomain) if e.is_nx_domain() => Verdict::pass(format!(
                "`{}` does not exist (NXDOMAIN from {server}) in {took}",
                self.name
            )),
            (Err(e), expect) => {
                let found = if e.is_nx_domain() {
                    "NXDOMAIN: the name does not exist".to_owned()
                } else if e.is_no_records_found() {
                    "the name exists but has no address records of that type".to_owned()
                } else {
                    format!("no answer: {e}")
                };
                let verdict =
                    Verdict::fail(format!("`{}` did not resolve via {server}", self.name))
                        .expected(match expect {
                            DnsExpect::Resolves => "an address".to_owned(),
                            DnsExpect::Nxdomain => "NXDOMAIN".to_owned(),
                        })
                        .found(found);
                if e.is_nx_domain() {
                    verdict.hint("check the Service name and namespace: `<service>.<namespace>.svc.cluster.local`")
                } else {
                    verdict.hint(format!(
                        "is the nameserver {server} reachable and serving this zone?"
                    ))
                }
            }
        };
        let verdict = verdict.measure("lookup_ms", millis(elapsed));
        match self.max_time {
            Some(limit) if verdict.passed() && elapsed > limit.0 => {
                Verdict::fail(format!("lookup took {took}, over the limit of {limit}"))
                    .expected(format!("lookup within {limit}"))
                    .found(took)
                    .measure("lookup_ms", millis(elapsed))
            }
            _ => verdict,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_accepts_ip_and_ip_port_and_empty() {
        assert_eq!(parse_nameserver("").unwrap(), None);
        assert_eq!(
            parse_nameserver("127.0.0.1:5353").unwrap(),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(
            parse_nameserver("10.43.0.10").unwrap(),
            Some("10.43.0.10:53".parse().unwrap())
        );
        assert!(parse_nameserver("kube-dns")
            .unwrap_err()
            .contains("ip:port"));
    }
}
