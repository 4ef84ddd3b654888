//! URLs that may hold a password (http `url:`, libpq URI), judged without echoing them.
//!
//! A password with an unencoded `@`, `/`, `#`, `?`, … is cut in pieces by a URL parser: one
//! piece becomes the password, another the host, the path or the fragment, and is shown, often
//! percent-encoded. No piece is a whole secret, so redaction, which knows the secret's value,
//! cannot catch it. Such a URL is refused before it is parsed ([`check_user_info`]), and a URL
//! that does not parse is described without any part of it ([`describe_url_error`]).

use std::fmt;

use crate::redact::Redactor;

/// Whether `raw` seems to carry user info (`scheme://user:password@host`): an `@` after the
/// scheme. Errs on the side of yes, since it decides whether the URL may be shown.
pub fn may_hold_user_info(raw: &str) -> bool {
    after_scheme(raw).contains('@')
}

/// A URL whose user info holds characters a parser cuts it at, or cannot read. Holds none of
/// the URL: only which characters, from a fixed list, and how the user can fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnencodedUserInfo {
    /// Each character once, in ASCII order (not the order in the password, which would
    /// tell more about it); `%` stands for a `%` not followed by two hex digits.
    found: Vec<char>,
    /// The way to pass credentials without the URL, where the caller has one.
    instead: Option<&'static str>,
}

impl UnencodedUserInfo {
    fn new(found: Vec<char>) -> Self {
        UnencodedUserInfo {
            found,
            instead: None,
        }
    }

    /// Names another way to give the credentials (`basic_auth:`, `connection.password`).
    pub fn or_instead(mut self, instead: &'static str) -> Self {
        self.instead = Some(instead);
        self
    }
}

impl fmt::Display for UnencodedUserInfo {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let listed: Vec<String> = self.found.iter().map(|&c| shown_char(c)).collect();
        let encoded: Vec<String> = self
            .found
            .iter()
            .map(|&c| format!("{} as {}", shown_char(c), percent_encoded(c)))
            .collect();
        write!(
            f,
            "the URL's user info (taken to end at its last `@`) contains unencoded {}: \
             percent-encode them in the user name and password ({}), and an `@` in the path \
             or query as %40",
            listed.join(", "),
            encoded.join(", ")
        )?;
        if let Some(instead) = self.instead {
            write!(f, "; or {instead}")?;
        }
        f.write_str("; the URL is not shown, as it holds a password")
    }
}

impl std::error::Error for UnencodedUserInfo {}

/// Refuses a URL whose user info a parser would misread, before it is parsed: characters
/// outside RFC 3986's user info (`@ / ? # [ ] < > "`, space, `\ ^ ` { | }`, controls, a `%`
/// not starting an escape) in the text from the scheme to the last `@`, when the parser sees
/// user info at all.
///
/// An `@` later in the URL (a query `?next=a@b`) makes the user info look longer, so it is
/// refused too: it cannot be told from a password with a `/` and an `@`, and `%40` fixes it.
/// A URL without user info as far as a parser can tell (`http://host/a@b`) is left alone.
pub fn check_user_info(raw: &str) -> Result<(), UnencodedUserInfo> {
    let Some(user_info) = intended_user_info(raw) else {
        return Ok(());
    };
    let found = unencoded(user_info);
    if found.is_empty() {
        Ok(())
    } else {
        Err(UnencodedUserInfo::new(found))
    }
}

/// A known secret that a parser would cut at the end of the URL's authority (its first `/`,
/// `?` or `#`): a password of digits up to a `/` (`http://app:1234/x@host`) reads as a port
/// and a path, which no rule on the text alone can tell from `http://host:1234/a@b`.
pub fn check_secrets_whole(raw: &str, redactor: &Redactor) -> Result<(), UnencodedUserInfo> {
    let rest_start = raw.len() - after_scheme(raw).len();
    let authority_end = rest_start + authority(after_scheme(raw)).len();
    let cut = redactor
        .spans(raw)
        .into_iter()
        .find(|span| span.start < authority_end && authority_end < span.end);
    match cut {
        Some(span) => Err(UnencodedUserInfo::new(unencoded(&raw[span]))),
        None => Ok(()),
    }
}

/// A message for a URL (http `url:`, libpq URI) that failed to parse; never contains any part
/// of `raw` beyond its scheme.
pub fn describe_url_error(raw: &str) -> String {
    let rest = after_scheme(raw);
    let Some(last_at) = rest.rfind('@') else {
        return "the URL cannot be parsed; expected `scheme://host[:port][/path]` \
                (it is not shown, as it may hold a secret)"
            .to_owned();
    };
    let found = unencoded(&rest[..last_at]);
    if found.is_empty() {
        return "the URL holds user info and cannot be parsed; it is not shown, as it may hold \
                a password (check the host and port, and percent-encode special characters in \
                the user name and password)"
            .to_owned();
    }
    UnencodedUserInfo::new(found).to_string()
}

/// What follows `scheme://`, or all of `raw` when there is no scheme.
fn after_scheme(raw: &str) -> &str {
    raw.split_once("://").map_or(raw, |(_, rest)| rest)
}

/// The authority as a parser delimits it: up to the first `/`, `?` or `#` (`\` counts as `/`
/// for http).
fn authority(rest: &str) -> &str {
    let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    &rest[..end]
}

/// The user info the writer meant: up to the last `@` of the URL, when the parser sees user
/// info (an `@` in the authority); `None` when it sees none.
fn intended_user_info(raw: &str) -> Option<&str> {
    let rest = after_scheme(raw);
    if !authority(rest).contains('@') {
        return None;
    }
    rest.rfind('@').map(|last_at| &rest[..last_at])
}

/// The characters of `user_info` that RFC 3986 does not allow there unencoded, each once, in
/// ASCII order. Letters of other scripts are left to the parser, which encodes them whole.
fn unencoded(user_info: &str) -> Vec<char> {
    let bytes = user_info.as_bytes();
    let mut found: Vec<char> = bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| match b {
            b'%' => !starts_escape(&bytes[i + 1..]),
            _ => b.is_ascii() && !allowed_in_user_info(b),
        })
        .map(|(_, &b)| char::from(b))
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// RFC 3986 `userinfo`: unreserved, sub-delims and `:` (`%` escapes are judged apart).
fn allowed_in_user_info(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:".contains(&b)
}

fn starts_escape(after_percent: &[u8]) -> bool {
    after_percent.len() >= 2
        && after_percent[0].is_ascii_hexdigit()
        && after_percent[1].is_ascii_hexdigit()
}

/// A character as a message names it: in backticks, or by name where backticks would hide it.
fn shown_char(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        '`' => "a backtick".to_owned(),
        c if c.is_ascii_control() => format!("the control character {}", c.escape_default()),
        c => format!("`{c}`"),
    }
}

fn percent_encoded(c: char) -> String {
    format!("%{:02X}", u32::from(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD_PARTS: [&str; 3] = ["Se", "cr3t", "Pass"];

    fn assert_hidden(message: &str) {
        for part in PASSWORD_PARTS {
            assert!(!message.contains(part), "{part} in {message}");
        }
        assert!(!message.contains("host.example"), "{message}");
    }

    #[test]
    fn names_the_unencoded_delimiters_without_echoing() {
        let message = describe_url_error("postgresql://app:Se/cr3t#Pass@host.example:5432/db");
        assert_hidden(&message);
        assert!(
            message.contains("`/`") && message.contains("`#`"),
            "{message}"
        );
        assert!(
            message.contains("%2F") && message.contains("%23"),
            "{message}"
        );
        assert!(!message.contains("`@` as"), "{message}");
    }

    #[test]
    fn a_second_at_sign_and_a_stray_percent_are_named() {
        let message = describe_url_error("https://app:Se@cr3t%zPass@host.example/");
        assert_hidden(&message);
        assert!(
            message.contains("%40") && message.contains("%25"),
            "{message}"
        );
    }

    #[test]
    fn without_user_info_says_so_and_shows_nothing() {
        let message = describe_url_error("http://host.example:port/Secr3tPass");
        assert_hidden(&message);
        assert!(message.contains("cannot be parsed"), "{message}");
        assert!(!may_hold_user_info("http://host.example/x"));
        assert!(may_hold_user_info("http://u:p@host.example/x"));
    }

    #[test]
    fn user_info_without_known_problem_is_still_hidden() {
        let message = describe_url_error("http://app:Secr3tPass@host.example:99999/");
        assert_hidden(&message);
        assert!(message.contains("holds user info"), "{message}");
    }

    #[test]
    fn a_password_a_parser_would_cut_is_refused_before_parsing() {
        // The parser would take `ss` as the host and show the rest as the fragment.
        let raw = "http://app:Se@ss#cr3t/x<Pass>y-Long1@host.example:8080/";
        let error = check_user_info(raw).unwrap_err();
        let message = error.or_instead("use `basic_auth:`").to_string();
        assert_hidden(&message);
        for (c, encoded) in [("@", "%40"), ("#", "%23"), ("/", "%2F"), ("<", "%3C")] {
            assert!(
                message.contains(&format!("`{c}` as {encoded}")),
                "{c}: {message}"
            );
        }
        assert!(message.contains("or use `basic_auth:`"), "{message}");
        for raw in [
            "http://app:S@e?cr3t@host.example/",
            "http://app:Se%zzcr3t@host.example/",
            "http://app:Se cr3t@host.example/",
            "http://app@Se@host.example/",
        ] {
            assert!(check_user_info(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn well_formed_urls_pass() {
        for raw in [
            "http://app:S%40e%2Fcr3t%23@host.example:8080/path?q=1#top",
            "http://app:Se!$&'()*+,;=cr3t@host.example/",
            "http://host.example/users/a@b",
            "http://host.example:8080/login?next=a@b",
            "http://host.example/",
            "postgresql://app:p%40ss@db.example:5432/app?sslmode=require",
            "postgresql://app@%2Fvar%2Frun%2Fpostgresql/app",
            "not a url at all",
        ] {
            assert_eq!(check_user_info(raw), Ok(()), "{raw}");
        }
    }

    #[test]
    fn an_at_sign_in_the_query_of_a_url_with_credentials_says_how_to_write_it() {
        let raw = "http://app:pw@host.example/?next=a@b";
        let message = check_user_info(raw).unwrap_err().to_string();
        assert!(message.contains("query as %40"), "{message}");
        assert!(!message.contains("next"), "{message}");
    }

    #[test]
    fn a_secret_cut_where_the_authority_ends_is_refused() {
        let redactor = Redactor::default();
        redactor.add("4242/Secr3tPass");
        let message = check_secrets_whole("http://app:4242/Secr3tPass@host.example/", &redactor)
            .unwrap_err()
            .to_string();
        assert_hidden(&message);
        assert!(message.contains("`/` as %2F"), "{message}");
        // Whole in the user info, or whole in the query: nothing is cut.
        redactor.add("Secr3tToken");
        for raw in [
            "http://app:4242%2FSecr3tPass@host.example/",
            "http://host.example/?token=Secr3tToken",
        ] {
            assert_eq!(check_secrets_whole(raw, &redactor), Ok(()), "{raw}");
        }
    }
}
