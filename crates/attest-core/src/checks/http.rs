//! `http`: request a URL and judge status, `Location` and body; redirects are not followed
//! unless asked, so "the web interface answers 302 to login" can be checked as such.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use percent_encoding::percent_decode_str;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

use super::{millis, Kind, Verdict};
use crate::context::CheckContext;
use crate::duration::format_duration;
use crate::fault::Fault;
use crate::matchers::{check_patterns, Pattern, ShowMatch};
use crate::net::{endpoint, Endpoint, LoopbackBridge, Route, Via};
use crate::redact::{Redactor, MASK};
use crate::text::clip;
use crate::url_safety;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    pub url: String,
    /// GET (default), HEAD, POST, ...
    #[serde(default = "get")]
    pub method: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Credentials sent as `Authorization: Basic`, for a password that cannot be
    /// percent-encoded into the URL (one from a Kubernetes Secret):
    /// `{username: app, password: "${app_password}"}`.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// Expected status code, or a list of acceptable ones (default: any 2xx).
    #[serde(default, deserialize_with = "one_or_many")]
    #[schemars(with = "Option<Vec<u16>>")]
    pub status: Vec<u16>,
    /// Pattern the `Location` header must match (for redirects).
    #[serde(default)]
    pub location: Option<Pattern>,
    /// Patterns the body must contain.
    #[serde(default)]
    pub body_contains: Vec<Pattern>,
    /// Patterns the body must not contain.
    #[serde(default)]
    pub body_excludes: Vec<Pattern>,
    /// Follow redirects (up to 10) before judging.
    #[serde(default)]
    pub follow_redirects: bool,
    /// Accept any TLS certificate (self-signed ingress certificates).
    #[serde(default)]
    pub insecure: bool,
    /// PEM file with CA certificates to trust in addition to the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Reach the URL's host another way than directly: `{port-forward: {namespace, service}}`.
    /// The URL keeps its host name (the Host header and TLS verification use it).
    #[serde(default)]
    pub via: Option<Via>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

/// How a refused URL's credentials can be given instead.
const CREDENTIALS_INSTEAD: &str =
    "leave them out of the URL and give them as `basic_auth: {username, password}`";

fn get() -> String {
    "GET".into()
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(u16),
        Many(Vec<u16>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(code) => vec![code],
        OneOrMany::Many(codes) => codes,
    })
}

/// Bytes of body kept for matching; a health page or login redirect is far smaller.
const BODY_LIMIT: usize = 1 << 20;

impl HttpCheck {
    /// A client whose connections to the URL's host follow its route: direct routes are
    /// dialled by reqwest itself; any other route through a loopback bridge, with the logical
    /// host name kept for TLS verification and the Host header.
    async fn client_for(
        &self,
        url: &reqwest::Url,
        ctx: &CheckContext,
    ) -> Result<(reqwest::Client, Option<Endpoint>), Fault> {
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Ok((self.client(None)?, None));
        };
        let route = match &self.via {
            Some(via) => via.route(host, port),
            None => Route::tcp(host, port),
        };
        // reqwest keeps the URL's port when told where a host resolves to, so a bridge for
        // it listens on that port (of some address in 127.0.0.0/8).
        let network = &ctx.services.network;
        let endpoint = if network.dialable(&route) {
            endpoint(network, &route).await
        } else {
            LoopbackBridge::start_on_port(network.clone(), route, port)
                .await
                .map(Endpoint::Bridged)
        }
        .map_err(|e| Fault::new(e.to_string()).hint(e.hint()))?;
        let bridge = endpoint.bridge_addr().map(|addr| (host.to_owned(), addr));
        Ok((self.client(bridge)?, Some(endpoint)))
    }

    fn client(&self, bridge: Option<(String, SocketAddr)>) -> Result<reqwest::Client, Fault> {
        let redirects = if self.follow_redirects {
            reqwest::redirect::Policy::limited(10)
        } else {
            reqwest::redirect::Policy::none()
        };
        let mut builder = reqwest::Client::builder()
            .redirect(redirects)
            .danger_accept_invalid_certs(self.insecure)
            .user_agent(concat!("attest/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                Fault::new(format!("cannot read ca_file `{}`: {e}", path.display()))
                    .hint("the path is read on the machine attest runs on (in a Job: a ConfigMap or Secret mounted there)")
            })?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Fault::new(format!("ca_file `{}` is not PEM: {e}", path.display())).hint(
                    "give the CA's certificate in PEM (`-----BEGIN CERTIFICATE-----`); `openssl x509 -inform der -in ca.der -out ca.pem` converts DER",
                )
            })? {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some((host, addr)) = bridge {
            builder = builder.resolve(&host, addr);
        }
        builder
            .build()
            .map_err(|e| Fault::new(format!("cannot build an HTTP client: {e}")))
    }

    /// The URL to request, or why not (never echoing a password): at load for a URL known
    /// then, else when the check runs.
    fn request_url(&self, raw: &str, redactor: &Redactor) -> Result<reqwest::Url, String> {
        let url = parse_url(raw, redactor)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "expected an `http://` or `https://` URL, found the scheme `{}`",
                url.scheme()
            ));
        }
        if self.basic_auth.is_some() && (!url.username().is_empty() || url.password().is_some()) {
            return Err(
                "the URL holds user info and `basic_auth` gives credentials too; give them once"
                    .to_owned(),
            );
        }
        Ok(url)
    }

    fn expected_status(&self) -> String {
        if self.status.is_empty() {
            "2xx".into()
        } else {
            self.status
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" or ")
        }
    }

    fn expectation(&self) -> String {
        let mut parts = vec![format!("status {}", self.expected_status())];
        if let Some(pattern) = &self.location {
            parts.push(format!("Location matching {pattern}"));
        }
        for pattern in &self.body_contains {
            parts.push(format!("body containing {pattern}"));
        }
        for pattern in &self.body_excludes {
            parts.push(format!("body without {pattern}"));
        }
        parts.join(", ")
    }
}

/// Why `raw` is not a URL. A URL with user info is not echoed: the parser may have cut the
/// password at an unencoded `/`, `#` or `@`, and a piece of a secret escapes redaction.
fn url_error(raw: &str, error: impl std::fmt::Display) -> String {
    if url_safety::may_hold_user_info(raw) {
        url_safety::describe_url_error(raw)
    } else {
        format!(
            "expected a URL such as `http://paperless.docs.svc/`: `{raw}` is not a valid URL: \
             {error}"
        )
    }
}

/// Parses a URL, refusing one whose password a parser would cut in pieces (redaction knows
/// only the whole): by its text, and by the secrets known by then.
fn parse_url(raw: &str, redactor: &Redactor) -> Result<reqwest::Url, String> {
    url_safety::check_user_info(raw)
        .and_then(|()| url_safety::check_secrets_whole(raw, redactor))
        .map_err(|e| e.or_instead(CREDENTIALS_INSTEAD).to_string())?;
    reqwest::Url::parse(raw).map_err(|e| url_error(raw, e))
}

/// The URL as messages show it: the password masked whether or not it was declared secret.
fn shown_url(url: &reqwest::Url) -> String {
    let text = url.as_str().to_owned();
    match url.password() {
        Some(password) => text.replacen(&format!(":{password}@"), &format!(":{MASK}@"), 1),
        None => text,
    }
}

/// A server may echo the `Authorization: Basic` header built from the URL's user info.
fn register_credentials(url: &reqwest::Url, redactor: &Redactor) {
    let decode = |text: &str| percent_decode_str(text).decode_utf8_lossy().into_owned();
    if let Some(password) = url.password() {
        redactor.add_credentials(&decode(url.username()), &decode(password));
    }
}

async fn read_body(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= BODY_LIMIT {
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// reqwest's top-level message is generic ("error sending request"); the cause says why.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

impl Kind for HttpCheck {
    const DESCRIPTION: &'static str = "Sends one request: status, `Location` and body patterns; redirects are not followed unless asked.";
    fn target(&self) -> String {
        match &self.via {
            Some(Via::PortForward(pf)) => format!(
                "{} (port-forward to {} in {})",
                self.url,
                pf.target.name(),
                pf.namespace
            ),
            None => self.url.clone(),
        }
    }

    fn permissions(&self) -> Vec<super::Permission> {
        self.via.iter().flat_map(Via::permissions).collect()
    }

    fn validate(&self) -> Vec<super::FieldProblem> {
        use super::FieldProblem;
        use crate::validate;
        let mut problems = Vec::new();
        // A URL from a value known only at run time is judged when the check runs.
        if !validate::is_deferred(&self.url) {
            if let Err(e) = self.request_url(&self.url, &Redactor::default()) {
                problems.push(FieldProblem::new("url", e));
            }
        }
        if reqwest::Method::from_bytes(self.method.as_bytes()).is_err() || self.method.is_empty() {
            problems.push(FieldProblem::new(
                "method",
                format!(
                    "expected an HTTP method such as GET, HEAD or POST, found `{}`",
                    self.method
                ),
            ));
        }
        for (i, status) in self.status.iter().enumerate() {
            if !(100..=599).contains(status) {
                problems.push(FieldProblem::new(
                    format!("status.{i}"),
                    format!("expected an HTTP status from 100 to 599, found `{status}`"),
                ));
            }
        }
        problems.extend(validate::patterns("location", self.location.iter(), false));
        problems.extend(validate::patterns(
            "body_contains",
            &self.body_contains,
            true,
        ));
        problems.extend(validate::patterns(
            "body_excludes",
            &self.body_excludes,
            true,
        ));
        problems
    }

    async fn observe(&self, ctx: &CheckContext) -> Verdict {
        let raw = match ctx.expand(&self.url) {
            Ok(raw) => raw,
            Err(e) => return Verdict::error(e),
        };
        let parsed = match self.request_url(&raw, &ctx.redactor) {
            Ok(parsed) => parsed,
            Err(e) => return Verdict::error(e),
        };
        register_credentials(&parsed, &ctx.redactor);
        let basic_auth = match &self.basic_auth {
            Some(auth) => match (ctx.expand(&auth.username), ctx.expand(&auth.password)) {
                (Ok(username), Ok(password)) => {
                    ctx.redactor.add_credentials(&username, &password);
                    Some((username, password))
                }
                (Err(e), _) | (_, Err(e)) => return Verdict::error(e),
            },
            None => None,
        };
        let url = shown_url(&parsed);
        // The endpoint (a bridge, when there is one) lives until the response is read.
        let (client, _endpoint) = match self.client_for(&parsed, ctx).await {
            Ok(client) => client,
            Err(fault) => return fault.into(),
        };
        let method = match reqwest::Method::from_bytes(self.method.to_uppercase().as_bytes()) {
            Ok(method) => method,
            Err(_) => return Verdict::error(format!("`{}` is not an HTTP method", self.method)),
        };
        // reqwest moves the user info into an `Authorization: Basic` header.
        let mut request = client.request(method.clone(), parsed);
        if let Some((username, password)) = basic_auth {
            request = request.basic_auth(username, Some(password));
        }
        for (name, value) in &self.headers {
            match ctx.expand(value) {
                Ok(value) => request = request.header(name, value),
                Err(e) => return Verdict::error(e),
            }
        }

        let started = Instant::now();
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                return Verdict::fail(format!("{method} {url} failed"))
                    .found(error_chain(&e.without_url()))
                    .hint("is the service up and the URL right? In a cluster, try `kubectl port-forward` and point the URL at localhost")
            }
        };
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_body(response).await;
        let elapsed = started.elapsed();

        let mut problems = Vec::new();
        let status_ok = if self.status.is_empty() {
            (200..300).contains(&status)
        } else {
            self.status.contains(&status)
        };
        if !status_ok {
            problems.push(format!(
                "status {status}, expected {}",
                self.expected_status()
            ));
        }
        if let Some(pattern) = &self.location {
            match &location {
                Some(value) if pattern.is_match(value) => {}
                Some(value) => {
                    problems.push(format!("Location `{value}` does not match {pattern}"))
                }
                None => problems.push(format!(
                    "no Location header; expected one matching {pattern}"
                )),
            }
        }
        problems.extend(
            check_patterns(
                &body,
                &self.body_contains,
                &self.body_excludes,
                ShowMatch::Line(&ctx.redactor),
            )
            .into_iter()
            .map(|p| format!("body: {p}")),
        );

        let mut found = format!("{status}");
        if let Some(location) = &location {
            found.push_str(&format!(" → {location}"));
        }
        let took = format_duration(elapsed);
        let verdict = if problems.is_empty() {
            Verdict::pass(format!("{method} {url} answered {found} in {took}"))
        } else {
            Verdict::fail(format!("{method} {url}: {}", problems.join("; ")))
                .expected(self.expectation())
                .found(format!(
                    "{found}; body starts `{}`",
                    clip(&ctx.redactor.redact(body.trim()), 160)
                ))
        };
        verdict
            .measure("status", f64::from(status))
            .measure("response_ms", millis(elapsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_url_masks_any_password() {
        let url = reqwest::Url::parse("http://app:lit%2Feral@host:8080/p?q=1").unwrap();
        assert_eq!(shown_url(&url), "http://app:[REDACTED]@host:8080/p?q=1");
        let url = reqwest::Url::parse("http://host/").unwrap();
        assert_eq!(shown_url(&url), "http://host/");
    }

    #[test]
    fn credentials_are_registered_decoded() {
        let redactor = Redactor::default();
        let url = reqwest::Url::parse("http://app:Pl4nted%2FS3cret@host/").unwrap();
        register_credentials(&url, &redactor);
        // base64("app:Pl4nted/S3cret"), as reqwest sends it.
        assert_eq!(
            redactor.redact("Basic YXBwOlBsNG50ZWQvUzNjcmV0"),
            "Basic [REDACTED]"
        );
    }

    /// A password with URL delimiters, and every piece a parser could cut it into.
    const CUT_PASSWORD: &str = "p@ss#w/rd<x>y-Long1";
    const PIECES: [&str; 5] = ["p@ss", "ss#w", "w/rd", "rd<x", "y-Long1"];

    fn check(yaml: &str) -> HttpCheck {
        serde_saphyr::from_str(yaml).expect("http spec")
    }

    fn assert_no_piece(text: &str) {
        for piece in PIECES.iter().chain([&"%3Cx%3E", &"ss%23"]) {
            assert!(!text.contains(piece), "`{piece}` in {text}");
        }
    }

    #[test]
    fn a_url_whose_password_a_parser_would_cut_is_refused_at_load_without_echo() {
        let check = check(&format!("url: \"http://app:{CUT_PASSWORD}@127.0.0.1:9/\""));
        let problems = check.validate();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "url");
        let message = &problems[0].message;
        assert_no_piece(message);
        assert!(
            message.contains("`#` as %23") && message.contains("basic_auth"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_url_known_only_at_run_time_is_refused_when_the_check_runs() {
        let ctx = CheckContext::for_test();
        ctx.vars.set("pw".into(), CUT_PASSWORD.into());
        ctx.redactor.add(CUT_PASSWORD);
        let check = check(&format!(
            "url: \"http://app:{}@127.0.0.1:9/\"",
            crate::text::runtime_marker("pw")
        ));
        assert!(check.validate().is_empty(), "judged at run time only");
        let verdict = check.observe(&ctx).await;
        assert_eq!(verdict.status, crate::outcome::Status::Error, "{verdict:?}");
        assert_no_piece(&format!("{verdict:?}"));
        assert!(
            verdict.summary.contains("`/` as %2F"),
            "{}",
            verdict.summary
        );
    }

    #[tokio::test]
    async fn a_secret_the_parser_would_read_as_port_and_path_is_refused() {
        let ctx = CheckContext::for_test();
        ctx.redactor.add("4242/Secr3tPass");
        let check = check("url: http://app:4242/Secr3tPass@127.0.0.1:9/");
        let verdict = check.observe(&ctx).await;
        assert_eq!(verdict.status, crate::outcome::Status::Error, "{verdict:?}");
        let shown = format!("{verdict:?}");
        assert!(
            !shown.contains("Secr3t") && !shown.contains("4242"),
            "{shown}"
        );
    }

    #[test]
    fn credentials_go_in_the_url_or_in_basic_auth_not_both() {
        let both =
            check("url: http://app:Secr3tPass@host/\nbasic_auth: {username: app, password: x}");
        let problems = both.validate();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(!problems[0].message.contains("Secr3t"), "{problems:?}");
        let ok = check("url: http://host/\nbasic_auth: {username: app, password: \"p@ss#w/rd\"}");
        assert!(ok.validate().is_empty());
    }

    #[test]
    fn unparsable_urls_with_user_info_are_not_echoed() {
        let raw = "http://app:Se/cr#et@host/";
        let message = url_error(raw, reqwest::Url::parse(raw).unwrap_err());
        assert!(
            !message.contains("cr") && message.contains("%2F"),
            "{message}"
        );
        let message = url_error("no-scheme", "relative URL without a base");
        assert!(message.contains("`no-scheme`"), "{message}");
    }
}
