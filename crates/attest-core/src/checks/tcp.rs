//! `tcp`: connect to host:port N times; connect-time statistics and thresholds, or an expected
//! refusal ("5432 is not exposed").

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{de, Deserialize, Deserializer};

use super::{millis, Kind, Verdict};
use crate::context::CheckContext;
use crate::duration::{format_duration, parse_duration, HumanDuration};
use crate::net::{NetError, Route, Via};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpCheck {
    pub host: String,
    pub port: u16,
    /// How many connections to open, one after another (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// `open` (default), `refused` (a closed port answers) or `unreachable` (nothing answers).
    #[serde(default)]
    pub expect: TcpExpect,
    /// Thresholds on connect time, e.g. `p95 < 100ms`, `max <= 250ms`.
    #[serde(default)]
    pub latency: Vec<LatencyThreshold>,
    /// How long one connection attempt may take (default 3s).
    #[serde(default)]
    pub connect_timeout: Option<HumanDuration>,
    /// Reach the port another way than directly: `{port-forward: {namespace, service}}`.
    #[serde(default)]
    pub via: Option<Via>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TcpExpect {
    #[default]
    Open,
    Refused,
    Unreachable,
}

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_COUNT: u32 = 10_000;

/// `p95 < 100ms`: a statistic of the connect times, compared with a duration.
#[derive(Debug, Clone, Copy, PartialEq, JsonSchema)]
#[schemars(with = "String")]
pub struct LatencyThreshold {
    pub stat: Stat,
    pub inclusive: bool,
    pub limit: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Min,
    P50,
    P95,
    P99,
    Max,
    Mean,
}

impl Stat {
    fn name(self) -> &'static str {
        match self {
            Stat::Min => "min",
            Stat::P50 => "p50",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
            Stat::Max => "max",
            Stat::Mean => "mean",
        }
    }
}

impl FromStr for LatencyThreshold {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let usage = || {
            format!("threshold `{text}` should look like `p95 < 100ms` (min, p50, p95, p99, max or mean; `<` or `<=`)")
        };
        let (stat, rest) = text.trim().split_once(' ').ok_or_else(usage)?;
        let stat = match stat {
            "min" => Stat::Min,
            "p50" | "median" => Stat::P50,
            "p95" => Stat::P95,
            "p99" => Stat::P99,
            "max" => Stat::Max,
            "mean" | "avg" => Stat::Mean,
            _ => return Err(usage()),
        };
        let rest = rest.trim_start();
        let (inclusive, limit) = if let Some(limit) = rest.strip_prefix("<=") {
            (true, limit)
        } else if let Some(limit) = rest.strip_prefix('<') {
            (false, limit)
        } else {
            return Err(usage());
        };
        let limit = parse_duration(limit)?;
        Ok(LatencyThreshold {
            stat,
            inclusive,
            limit,
        })
    }
}

impl<'de> Deserialize<'de> for LatencyThreshold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

impl fmt::Display for LatencyThreshold {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let op = if self.inclusive { "<=" } else { "<" };
        write!(
            f,
            "{} {op} {}",
            self.stat.name(),
            format_duration(self.limit)
        )
    }
}

/// Connect-time statistics over a series of connections.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    sorted: Vec<Duration>,
}

impl Stats {
    pub fn new(mut samples: Vec<Duration>) -> Stats {
        samples.sort();
        Stats { sorted: samples }
    }
    /// Nearest-rank percentile.
    fn percentile(&self, p: f64) -> Duration {
        let rank = ((p / 100.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }
    pub fn get(&self, stat: Stat) -> Duration {
        match stat {
            Stat::Min => self.sorted[0],
            Stat::Max => self.sorted[self.sorted.len() - 1],
            Stat::P50 => self.percentile(50.0),
            Stat::P95 => self.percentile(95.0),
            Stat::P99 => self.percentile(99.0),
            Stat::Mean => self.sorted.iter().sum::<Duration>() / self.sorted.len() as u32,
        }
    }
}

impl TcpCheck {
    fn connect_timeout(&self) -> Duration {
        self.connect_timeout
            .map(|d| d.0)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
    }

    async fn resolve(&self) -> Result<SocketAddr, Verdict> {
        let mut addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                Verdict::fail(format!("cannot resolve `{}`", self.host))
                    .found(e.to_string())
                    .hint("check the host name; cluster-internal names only resolve inside the cluster or through the sandbox")
            })?;
        addrs
            .next()
            .ok_or_else(|| Verdict::fail(format!("`{}` resolved to no address", self.host)))
    }

    fn judge_latency(&self, addr: String, stats: Stats) -> Verdict {
        let fmt = |s: Stat| format_duration(stats.get(s));
        let spread = format!(
            "min {}, p50 {}, p95 {}, max {}",
            fmt(Stat::Min),
            fmt(Stat::P50),
            fmt(Stat::P95),
            fmt(Stat::Max)
        );
        let broken: Vec<String> = self
            .latency
            .iter()
            .filter(|t| {
                let value = stats.get(t.stat);
                if t.inclusive {
                    value > t.limit
                } else {
                    value >= t.limit
                }
            })
            .map(|t| format!("{} {} breaks `{t}`", t.stat.name(), fmt(t.stat)))
            .collect();
        let thresholds = self
            .latency
            .iter()
            .map(|t| format!("threshold {t}"))
            .collect::<Vec<_>>()
            .join(", ");
        let summary = if broken.is_empty() {
            let mut text = format!("{} connects to {addr}: {spread}", self.count);
            if !thresholds.is_empty() {
                text.push_str(&format!("; {thresholds}"));
            }
            text
        } else {
            format!("connect time to {addr} too high: {}", broken.join("; "))
        };
        let mut verdict = Verdict::judge(broken.is_empty(), summary)
            .measure("connects", f64::from(self.count))
            .measure("min_ms", millis(stats.get(Stat::Min)))
            .measure("p50_ms", millis(stats.get(Stat::P50)))
            .measure("p95_ms", millis(stats.get(Stat::P95)))
            .measure("max_ms", millis(stats.get(Stat::Max)));
        if !broken.is_empty() {
            verdict = verdict
                .expected(thresholds)
                .found(spread)
                .hint("connect time covers the TCP handshake only; high values point at the network path (CNI, kube-proxy, NodePort hops) rather than PostgreSQL");
        }
        verdict
    }
}

fn expect_word(expect: TcpExpect) -> &'static str {
    match expect {
        TcpExpect::Open => "accepted",
        TcpExpect::Refused => "refused",
        TcpExpect::Unreachable => "unanswered (unreachable)",
    }
}

impl Kind for TcpCheck {
    const DESCRIPTION: &'static str = "Connects to host:port N times: connect-time statistics against thresholds, or an expected refusal.";
    fn target(&self) -> String {
        match self.via.as_ref().map(|v| v.route(&self.host, self.port)) {
            Some(route) => format!("{}:{} ({route})", self.host, self.port),
            None => format!("{}:{}", self.host, self.port),
        }
    }

    fn permissions(&self) -> Vec<super::Permission> {
        self.via.iter().flat_map(Via::permissions).collect()
    }

    fn validate(&self) -> Vec<super::FieldProblem> {
        use crate::validate;
        let mut problems: Vec<_> = validate::host("host", &self.host).into_iter().collect();
        problems.extend(validate::port("port", self.port));
        problems.extend(validate::count(
            "count",
            self.count.into(),
            1,
            MAX_COUNT.into(),
        ));
        problems.extend(validate::positive(
            "connect_timeout",
            self.connect_timeout.as_ref(),
        ));
        if self.expect != TcpExpect::Open && !self.latency.is_empty() {
            problems.push(super::FieldProblem::new(
                "latency",
                format!("expected no latency thresholds with `expect: {}` (only open connections are timed), found {}", expect_word(self.expect), self.latency.len()),
            ));
        }
        problems
    }

    async fn observe(&self, ctx: &CheckContext) -> Verdict {
        if self.count == 0 || self.count > MAX_COUNT {
            return Verdict::error(format!("count must be between 1 and {MAX_COUNT}"));
        }
        let (addr, route) = match &self.via {
            // The name is resolved inside the cluster, never here.
            Some(via) => {
                let route = via.route(&self.host, self.port);
                (route.to_string(), route)
            }
            None => match self.resolve().await {
                Ok(addr) => (
                    addr.to_string(),
                    Route::tcp(addr.ip().to_string(), addr.port()),
                ),
                Err(verdict) => return verdict,
            },
        };
        let network = &ctx.services.network;
        let mut samples = Vec::with_capacity(self.count as usize);
        for attempt in 1..=self.count {
            let started = Instant::now();
            let result =
                tokio::time::timeout(self.connect_timeout(), network.connect(&route)).await;
            let elapsed = started.elapsed();
            match (result, self.expect) {
                (Ok(Ok(_stream)), TcpExpect::Open) => samples.push(elapsed),
                (Ok(Ok(_)), expect) => {
                    return Verdict::fail(format!("{addr} accepted a connection"))
                        .expected(format!("connection {}", expect_word(expect)))
                        .found("the port is open")
                        .hint("the port is exposed; check the Service type, NetworkPolicy or published ports");
                }
                (Ok(Err(e)), TcpExpect::Refused) if e.is_refused() => {
                    return Verdict::pass(format!("{addr} refused the connection, as expected"))
                }
                (Err(_), TcpExpect::Unreachable) => {
                    return Verdict::pass(format!(
                        "{addr} did not answer within {}, as expected",
                        format_duration(self.connect_timeout())
                    ))
                }
                (
                    Ok(Err(e @ NetError::Unreachable { no_route: true, .. })),
                    TcpExpect::Unreachable,
                ) => return Verdict::pass(format!("{addr} is unreachable ({e}), as expected")),
                (outcome, expect) => {
                    let found = match outcome {
                        Ok(Err(e)) => format!("connection failed: {e}"),
                        Err(_) => format!(
                            "no answer within {}",
                            format_duration(self.connect_timeout())
                        ),
                        Ok(Ok(_)) => unreachable!("open connections are handled above"),
                    };
                    return Verdict::fail(format!("connect #{attempt} to {addr} failed"))
                        .expected(format!("connection {}", expect_word(expect)))
                        .found(found)
                        .hint("is the service running and listening on that port? `kubectl get endpoints` shows whether a Service has ready pods");
                }
            }
        }
        let mut verdict = self.judge_latency(addr, Stats::new(samples));
        if let Some(note) = route.path_note() {
            verdict.summary.push_str(&format!("; {note}"));
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_and_reject_nonsense() {
        let t: LatencyThreshold = "p95 < 100ms".parse().unwrap();
        assert_eq!(t.stat, Stat::P95);
        assert!(!t.inclusive);
        assert_eq!(t.limit, Duration::from_millis(100));
        assert!("max<=1s".parse::<LatencyThreshold>().is_err());
        assert!("p42 < 1s"
            .parse::<LatencyThreshold>()
            .unwrap_err()
            .contains("p95 < 100ms"));
        assert!("p95 > 1s".parse::<LatencyThreshold>().is_err());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let stats = Stats::new((1..=100).map(Duration::from_millis).collect());
        assert_eq!(stats.get(Stat::Min), Duration::from_millis(1));
        assert_eq!(stats.get(Stat::P50), Duration::from_millis(50));
        assert_eq!(stats.get(Stat::P95), Duration::from_millis(95));
        assert_eq!(stats.get(Stat::Max), Duration::from_millis(100));
        let single = Stats::new(vec![Duration::from_millis(7)]);
        assert_eq!(single.get(Stat::P95), Duration::from_millis(7));
    }
}
