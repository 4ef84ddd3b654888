//! Field checks the kinds share in their [`crate::checks::Kind::validate`]: ports, durations,
//! DNS names, patterns, PostgreSQL connections. Each returns problems naming the field, in the
//! words "expected …, found …".

use crate::checks::connection::{ConnectionSpec, URI_PASSWORD_INSTEAD};
use crate::duration::HumanDuration;
use crate::matchers::Pattern;

/// A problem with one field of a check, found at load by [`crate::checks::Kind::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// Path of the field in the kind's map: `port`, `latency.1`, `connection.port`; empty for
    /// the kind as a whole.
    pub field: String,
    /// What was expected and what was found.
    pub message: String,
}

impl FieldProblem {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldProblem {
            field: field.into(),
            message: message.into(),
        }
    }
}

pub use crate::text::is_deferred;

/// A name Kubernetes accepts for a namespace or ServiceAccount, and as a label value (an
/// RFC 1123 label).
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

pub fn port(field: &str, port: u16) -> Option<FieldProblem> {
    (port == 0).then(|| FieldProblem::new(field, "expected a port from 1 to 65535, found `0`"))
}

/// A duration that must be above zero.
pub fn positive(field: &str, duration: Option<&HumanDuration>) -> Option<FieldProblem> {
    duration
        .filter(|d| d.0.is_zero())
        .map(|_| FieldProblem::new(field, "expected a duration above zero, found `0s`"))
}

pub fn count(field: &str, value: u64, min: u64, max: u64) -> Option<FieldProblem> {
    (!(min..=max).contains(&value)).then(|| {
        FieldProblem::new(
            field,
            format!("expected a number from {min} to {max}, found `{value}`"),
        )
    })
}

/// A host name or address: an IP address, or a DNS name without empty labels.
pub fn host(field: &str, host: &str) -> Option<FieldProblem> {
    if is_deferred(host) {
        return None;
    }
    if host.trim().is_empty() {
        return Some(FieldProblem::new(
            field,
            "expected a host name or address, found empty text",
        ));
    }
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('/') {
        return None;
    }
    dns_name(field, host)
}

/// A DNS name: labels of 1 to 63 characters separated by single dots (one trailing dot
/// allowed), 253 characters at most, no spaces.
pub fn dns_name(field: &str, name: &str) -> Option<FieldProblem> {
    if is_deferred(name) {
        return None;
    }
    let problem = |what: String| {
        Some(FieldProblem::new(
            field,
            format!(
                "expected a DNS name such as `db.data.svc.cluster.local`, found `{name}` ({what})"
            ),
        ))
    };
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() {
        return problem("it is empty".into());
    }
    if trimmed.len() > 253 {
        return problem(format!("{} characters; at most 253", trimmed.len()));
    }
    for label in trimmed.split('.') {
        if label.is_empty() {
            return problem("an empty label: two dots in a row, or a leading dot".into());
        }
        if label.len() > 63 {
            return problem(format!(
                "the label `{label}` has {} characters; at most 63",
                label.len()
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| c.is_whitespace() || "/\\:@,;\"'".contains(*c))
        {
            return problem(format!("the character `{c}` cannot be part of a name"));
        }
    }
    None
}

/// Patterns that were meant as regular expressions but read as literal text: `/x/q` (flags
/// after the closing slash) matches the text `/x/q`, never what was meant.
pub fn patterns<'p>(
    field: &str,
    patterns: impl IntoIterator<Item = &'p Pattern>,
    indexed: bool,
) -> Vec<FieldProblem> {
    patterns
        .into_iter()
        .enumerate()
        .filter_map(|(i, pattern)| {
            let Pattern::Literal(text) = pattern else {
                return None;
            };
            let path = if indexed { format!("{field}.{i}") } else { field.to_owned() };
            crate::matchers::literal_looks_like_regex(text).map(|flags| {
                FieldProblem::new(
                    path,
                    format!(
                        "expected `/regex/` (flags go inside, e.g. `/(?i)text/`) or literal text, found `{text}`: the `{flags}` after the closing `/` makes it literal text"
                    ),
                )
            })
        })
        .collect()
}

/// A PostgreSQL connection: port, host, URI scheme, sslmode needs.
pub fn connection(spec: &ConnectionSpec) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    if let Some(p) = spec.port.and_then(|p| port("connection.port", p)) {
        problems.push(p);
    }
    if let Some(h) = spec
        .host
        .as_deref()
        .and_then(|h| host("connection.host", h))
    {
        problems.push(h);
    }
    if let Some(uri) = spec.uri.as_deref().filter(|u| !is_deferred(u)) {
        if !(uri.starts_with("postgresql://") || uri.starts_with("postgres://")) {
            let scheme = uri
                .split("://")
                .next()
                .filter(|s| *s != uri)
                .unwrap_or("no scheme");
            problems.push(FieldProblem::new(
                "connection.uri",
                format!("expected a URI starting with `postgresql://`, found `{scheme}`"),
            ));
        }
        if let Err(e) = crate::url_safety::check_user_info(uri) {
            problems.push(FieldProblem::new(
                "connection.uri",
                e.or_instead(URI_PASSWORD_INSTEAD).to_string(),
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_empty_labels_are_refused() {
        assert!(dns_name("name", "db..svc").is_some());
        assert!(dns_name("name", ".db").is_some());
        assert!(dns_name("name", "db.svc.").is_none());
        assert!(host("host", "10.0.0.1").is_none());
    }

    #[test]
    fn regex_flags_after_the_slash_are_caught() {
        let p = Pattern::parse("/x/q").unwrap();
        assert_eq!(patterns("contains", [&p], true).len(), 1);
        let ok = Pattern::parse("/var/db").unwrap();
        assert!(patterns("contains", [&ok], true).is_empty());
    }
}
