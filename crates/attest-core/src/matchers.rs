//! Text matchers shared by check kinds: a literal substring, or `/regex/`.

use std::fmt;

use regex::Regex;
use schemars::JsonSchema;
use serde::{de, Deserialize, Deserializer};

use crate::redact::Redactor;

/// A pattern written in a suite: `text` matches as a substring, `/re/` as a regular expression.
#[derive(Clone, JsonSchema)]
#[schemars(with = "String")]
pub enum Pattern {
    Literal(String),
    Regex(Regex),
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        match text.strip_prefix('/').and_then(|t| t.strip_suffix('/')) {
            Some(re) if text.len() >= 2 => Regex::new(re)
                .map(Pattern::Regex)
                .map_err(|e| format!("invalid regular expression `{text}`: {e}")),
            _ => Ok(Pattern::Literal(text.to_owned())),
        }
    }

    pub fn is_match(&self, haystack: &str) -> bool {
        match self {
            Pattern::Literal(text) => haystack.contains(text.as_str()),
            Pattern::Regex(re) => re.is_match(haystack),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Pattern::Literal(text) => write!(f, "`{text}`"),
            Pattern::Regex(re) => write!(f, "`/{}/`", re.as_str()),
        }
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Pattern::parse(&String::deserialize(d)?).map_err(de::Error::custom)
    }
}

/// How a forbidden match is shown: the line itself (redacted before it is shortened, so no
/// part of a secret survives the cut), or only its number (for files that may hold secrets).
#[derive(Clone, Copy)]
pub enum ShowMatch<'r> {
    Line(&'r Redactor),
    LineNumber,
}

/// Checks `contains` (each must match) and `excludes` (none may match) against a text; returns
/// one line per problem, empty when all is well.
pub fn check_patterns(
    text: &str,
    contains: &[Pattern],
    excludes: &[Pattern],
    show: ShowMatch<'_>,
) -> Vec<String> {
    let missing = contains
        .iter()
        .filter(|p| !p.is_match(text))
        .map(|p| format!("{p} not found"));
    let present = excludes.iter().filter(|p| p.is_match(text)).map(move |p| {
        match text.lines().enumerate().find(|(_, line)| p.is_match(line)) {
            Some((index, line)) => match show {
                ShowMatch::Line(redactor) => {
                    format!("{p} found: `{}`", clip(&redactor.redact(line.trim()), 120))
                }
                ShowMatch::LineNumber => format!("{p} found on line {}", index + 1),
            },
            None => format!("{p} found"),
        }
    });
    missing.chain(present).collect()
}

/// Shortens text for a message, on a character boundary.
pub fn clip(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max_chars).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_regex_patterns() {
        let literal = Pattern::parse("Applying migrations").unwrap();
        assert!(literal.is_match("  Applying migrations... OK"));
        let re = Pattern::parse("/sqlite[0-9]?/").unwrap();
        assert!(re.is_match("found db.sqlite3"));
        assert!(!re.is_match("postgresql"));
        assert!(Pattern::parse("/(/")
            .unwrap_err()
            .contains("invalid regular expression"));
        // A lone slash is a literal, not an empty regex.
        assert!(matches!(Pattern::parse("/").unwrap(), Pattern::Literal(_)));
    }

    #[test]
    fn pattern_problems_name_what_was_wrong() {
        let text = "ok line\nERROR: sqlite locked\n";
        let problems = check_patterns(
            text,
            &[
                Pattern::parse("ok").unwrap(),
                Pattern::parse("migrated").unwrap(),
            ],
            &[Pattern::parse("/(?i)sqlite/").unwrap()],
            ShowMatch::Line(&Redactor::default()),
        );
        assert_eq!(problems.len(), 2);
        assert!(problems[0].contains("`migrated` not found"));
        assert!(problems[1].contains("ERROR: sqlite locked"));
        let numbered = check_patterns(
            text,
            &[],
            &[Pattern::parse("sqlite").unwrap()],
            ShowMatch::LineNumber,
        );
        assert_eq!(numbered, vec!["`sqlite` found on line 2".to_owned()]);
    }
}
