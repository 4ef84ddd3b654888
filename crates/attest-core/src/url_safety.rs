//! Explains why a URL that may hold a password does not parse, without echoing it: a password
//! with an unencoded `@`, `/` or `#` is cut in two by the parser, and the piece shown in an
//! error is not a whole secret, so redaction cannot catch it.

/// Characters that end or confuse the user info part of a URL, with their encodings.
const DELIMITERS: &[(char, &str)] = &[
    ('@', "%40"),
    ('/', "%2F"),
    ('#', "%23"),
    ('?', "%3F"),
    (' ', "%20"),
    ('[', "%5B"),
    (']', "%5D"),
];

/// Whether `raw` seems to carry user info (`scheme://user:password@host`): an `@` after the
/// scheme. Errs on the side of yes, since it decides whether the URL may be shown.
pub fn may_hold_user_info(raw: &str) -> bool {
    after_scheme(raw).contains('@')
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
    // The user meant the last `@` to end the user info; the parser stops at the first `/`,
    // `?` or `#`, or takes an earlier `@`.
    let user_info = &rest[..last_at];
    let mut found: Vec<(char, &str)> = DELIMITERS
        .iter()
        .copied()
        .filter(|(c, _)| user_info.contains(*c))
        .collect();
    if has_stray_percent(user_info) {
        found.push(('%', "%25"));
    }
    if found.is_empty() {
        return "the URL holds user info and cannot be parsed; it is not shown, as it may hold \
                a password (check the host and port, and percent-encode special characters in \
                the user name and password)"
            .to_owned();
    }
    let listed = found
        .iter()
        .map(|(c, _)| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let encoded = found
        .iter()
        .map(|(c, e)| format!("`{c}` as {e}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "the URL's user info contains unencoded {listed}: percent-encode them in the user \
         name and password ({encoded}); the URL is not shown, as it holds a password"
    )
}

/// What follows `scheme://`, or all of `raw` when there is no scheme.
fn after_scheme(raw: &str) -> &str {
    raw.split_once("://").map_or(raw, |(_, rest)| rest)
}

/// A `%` not followed by two hex digits is not an escape; parsers reject or misread it.
fn has_stray_percent(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
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
        assert!(!message.contains("`@`"), "{message}");
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
}
