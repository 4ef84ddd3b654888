//! Keeps secret values out of every line of output: console, reports and error messages.
//!
//! A secret is masked in every form it commonly takes ([`forms`]): plain, percent-encoded,
//! base64 (standard and URL-safe, padded or not, also inside longer base64 text) and hex;
//! [`Redactor::add_credentials`] adds the base64 of a `user:password` pair, as sent in an
//! `Authorization: Basic` header a server may echo back.
//!
//! Masking is one pass over the text: every occurrence of every form is found in the original
//! text, overlapping occurrences are merged, and each merged stretch becomes one [`MASK`]. So
//! a mask is never masked again, and two overlapping secrets leave no piece of either behind.
//!
//! # Short and well-known secrets
//!
//! A secret shorter than [`MIN_SECRET_CHARS`] characters cannot be masked without mangling
//! unrelated output (`1` would turn `exit 1` into `exit [REDACTED]`), and it is guessable
//! anyway. A well-known default password (`postgres`, `password`, ...) is worse: it is also
//! a user, database or scheme name, so masking it mangles most PostgreSQL output, and the
//! pattern of masks gives it away (`[REDACTED]://[REDACTED]:[REDACTED]@db`). Neither can be
//! kept secret, so [`check_secret`] refuses both: a run with such a declared secret stops
//! before anything is run (exit 2), naming the variable but not the value, and the user
//! either sets a real password or drops `secret: true`. For the same reason
//! [`check_secret_among`] refuses a secret equal to a variable shown in plain (password =
//! user name, common in docker-compose files). Masking is never quietly weakened:
//! [`Redactor::add`], for callers that cannot refuse, masks whatever it is given.

mod forms;

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, RwLock};

use aho_corasick::{AhoCorasick, MatchKind};

/// The redaction mark that replaces a secret value.
pub const MASK: &str = "[REDACTED]";

/// Secrets shorter than this (in characters) are refused by [`check_secret`].
pub const MIN_SECRET_CHARS: usize = 8;

/// Default passwords of PostgreSQL images, docker-compose examples and the applications
/// attest checks, at least [`MIN_SECRET_CHARS`] long. They also appear as user, database and
/// scheme names, and are public anyway. Compared without regard to case.
const WELL_KNOWN: &[&str] = &[
    "postgres",
    "postgresql",
    "password",
    "paperless",
    "changeme",
    "localhost",
    "12345678",
    "123456789",
    "1234567890",
    "password1",
    "password123",
    "postgres123",
];

/// Why a value cannot be treated as a secret. Names the variable, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRejected {
    TooShort {
        name: String,
    },
    WellKnown {
        name: String,
    },
    /// Equal to the value of a variable that is not secret (a password equal to the user name).
    SameAsPlain {
        name: String,
        plain: String,
    },
}

impl fmt::Display for SecretRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRejected::TooShort { name } => write!(
                f,
                "`{name}` is marked secret but its value is shorter than {MIN_SECRET_CHARS} characters: \
                 it cannot be masked without mangling unrelated output, and it is guessable \
                 (hint: use a longer password, or drop `secret: true` if the value is not a secret)"
            ),
            SecretRejected::WellKnown { name } => write!(
                f,
                "`{name}` is marked secret but its value is a well-known default password: \
                 it is public, and masking it would mask every user, database or URL that \
                 shares the word (hint: set a real password, or drop `secret: true` for a \
                 throwaway environment)"
            ),
            SecretRejected::SameAsPlain { name, plain } => write!(
                f,
                "`{name}` is marked secret but its value equals that of `{plain}`, which is not \
                 secret and is shown as it is: masking one would give the other away (hint: use \
                 a password that differs from user and database names)"
            ),
        }
    }
}

impl std::error::Error for SecretRejected {}

/// Whether `value`, declared secret under `name` (a variable, `PGPASSWORD`, a password file),
/// can be masked reliably. An empty value is accepted: there is nothing to mask.
pub fn check_secret(name: &str, value: &str) -> Result<(), SecretRejected> {
    if value.is_empty() {
        return Ok(());
    }
    let name = name.to_owned();
    if value.chars().count() < MIN_SECRET_CHARS {
        return Err(SecretRejected::TooShort { name });
    }
    if WELL_KNOWN.iter().any(|w| w.eq_ignore_ascii_case(value)) {
        return Err(SecretRejected::WellKnown { name });
    }
    Ok(())
}

/// [`check_secret`], and that the secret is not also the value of a variable shown in plain
/// (`plain`: name and value of each variable not marked secret), such as the user name.
pub fn check_secret_among<'a>(
    name: &str,
    value: &str,
    plain: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), SecretRejected> {
    check_secret(name, value)?;
    match plain
        .into_iter()
        .find(|(_, v)| !value.is_empty() && *v == value)
    {
        Some((other, _)) => Err(SecretRejected::SameAsPlain {
            name: name.to_owned(),
            plain: other.to_owned(),
        }),
        None => Ok(()),
    }
}

/// Known secret values; cheap to clone and shared by everything that emits text.
#[derive(Clone, Default)]
pub struct Redactor {
    inner: Arc<RwLock<Patterns>>,
}

#[derive(Default)]
struct Patterns {
    forms: Vec<String>,
    /// Rebuilt on every addition: secrets are added a handful of times per run, text is
    /// redacted constantly.
    matcher: Option<Arc<AhoCorasick>>,
}

impl Redactor {
    /// Registers a secret in all its forms. Masks whatever it is given, however short: a
    /// caller that can refuse a weak secret asks [`check_secret`] first, or uses
    /// [`Redactor::add_named`].
    pub fn add(&self, secret: &str) {
        if !secret.is_empty() {
            self.extend(forms::all(secret));
        }
        // A value stored with a trailing newline (`kubectl create secret --from-file`) is
        // often printed, or used, without it.
        let trimmed = secret.trim();
        if trimmed != secret && check_secret("", trimmed).is_ok() {
            self.extend(forms::all(trimmed));
        }
    }

    /// Registers a secret declared under `name` after [`check_secret`] accepted it.
    pub fn add_named(&self, name: &str, secret: &str) -> Result<(), SecretRejected> {
        check_secret(name, secret)?;
        self.add(secret);
        Ok(())
    }

    /// Registers the base64 forms of `user:password`, as in an `Authorization: Basic` header
    /// built from a URL's user info. The password itself is a secret only if it was declared
    /// one (then it was added on its own).
    pub fn add_credentials(&self, user: &str, password: &str) {
        if !password.is_empty() {
            self.extend(forms::basic_auth(user, password));
        }
    }

    fn extend(&self, new: Vec<String>) {
        let mut patterns = self.inner.write().expect("redactor");
        let before = patterns.forms.len();
        for form in new {
            if !patterns.forms.contains(&form) {
                patterns.forms.push(form);
            }
        }
        if patterns.forms.len() == before {
            return;
        }
        // Standard semantics: overlapping search reports every occurrence of every form.
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&patterns.forms)
            .expect("secret patterns are small");
        patterns.matcher = Some(Arc::new(matcher));
    }

    /// The stretches of `text` that hold a known secret in any form, overlapping and adjacent
    /// occurrences merged, in text order.
    pub fn spans(&self, text: &str) -> Vec<Range<usize>> {
        let Some(matcher) = self.inner.read().expect("redactor").matcher.clone() else {
            return Vec::new();
        };
        let mut found: Vec<Range<usize>> = matcher
            .find_overlapping_iter(text)
            .map(|m| m.range())
            .collect();
        found.sort_unstable_by_key(|span| (span.start, span.end));
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(found.len());
        for span in found {
            match merged.last_mut() {
                Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
                _ => merged.push(span),
            }
        }
        merged
    }

    pub fn redact(&self, text: &str) -> String {
        let spans = self.spans(text);
        if spans.is_empty() {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        for span in spans {
            out.push_str(&text[copied..span.start]);
            out.push_str(MASK);
            copied = span.end;
        }
        out.push_str(&text[copied..]);
        out
    }

    pub fn redact_opt(&self, text: Option<String>) -> Option<String> {
        text.map(|t| self.redact(&t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine;

    fn redactor(secrets: &[&str]) -> Redactor {
        let r = Redactor::default();
        for s in secrets {
            r.add(s);
        }
        r
    }

    #[test]
    fn a_secret_stored_with_a_trailing_newline_is_masked_without_it_too() {
        let r = redactor(&["Sup3r-secret-pw\n"]);
        assert_eq!(r.redact("pw=Sup3r-secret-pw."), format!("pw={MASK}."));
        // Not when what is left is too short to mask safely.
        let r = redactor(&["abc\n\n\n\n\n\n"]);
        assert_eq!(r.redact("abc"), "abc");
    }

    #[test]
    fn masks_plain_and_uri_encoded_secrets() {
        let r = redactor(&["s3cr3t/pass"]);
        assert_eq!(r.redact("password s3cr3t/pass!"), "password [REDACTED]!");
        assert_eq!(
            r.redact("postgres://u:s3cr3t%2Fpass@h/db"),
            "postgres://u:[REDACTED]@h/db"
        );
        assert_eq!(r.redact("lower s3cr3t%2fpass."), "lower [REDACTED].");
        assert_eq!(r.redact("nothing here"), "nothing here");
    }

    #[test]
    fn masks_base64_and_hex_forms() {
        let secret = "Pl4nted-S3cret?";
        let r = redactor(&[secret]);
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        for text in [
            STANDARD.encode(secret),
            URL_SAFE_NO_PAD.encode(secret),
            hex.clone(),
            hex.to_uppercase(),
        ] {
            assert_eq!(
                r.redact(&format!("got {text}.")),
                "got [REDACTED].",
                "{text}"
            );
        }
    }

    #[test]
    fn masks_base64_of_a_secret_inside_longer_base64() {
        let secret = "Pl4nted-S3cret";
        let r = redactor(&[secret]);
        for prefix in ["", "a", "ab", "abc", "{\"password\":\""] {
            let encoded = STANDARD.encode(format!("{prefix}{secret}\"}}"));
            let out = r.redact(&encoded);
            assert!(out.contains(MASK), "{prefix:?}: {out}");
            // At most two edge characters of the secret's encoding survive on each side.
            assert!(out.len() <= encoded.len(), "{out}");
        }
    }

    #[test]
    fn masks_basic_auth_credentials() {
        let r = Redactor::default();
        r.add_credentials("app", "Pl4nted-S3cret");
        let header = format!("Basic {}", STANDARD.encode("app:Pl4nted-S3cret"));
        assert_eq!(r.redact(&header), "Basic [REDACTED]");
    }

    #[test]
    fn one_pass_never_masks_a_mask() {
        // A secret that occurs inside the mask text must not corrupt earlier masks.
        let r = redactor(&["REDACTED-but-longer", "[REDACTED]"]);
        assert_eq!(r.redact("a [REDACTED] b"), "a [REDACTED] b");
        // Masking one secret after another would have masked `TED] [RE` between two masks.
        let r = redactor(&["Secret-One", "TED] [RE"]);
        assert_eq!(r.redact("Secret-One Secret-One"), "[REDACTED] [REDACTED]");
    }

    #[test]
    fn overlapping_secrets_leave_nothing_behind() {
        let r = redactor(&["abcdefgh", "fghijklm"]);
        assert_eq!(r.redact("<abcdefghijklm>"), "<[REDACTED]>");
        let r = redactor(&["Secret-One", "Secret-One-Longer"]);
        assert_eq!(r.redact("x Secret-One-Longer y"), "x [REDACTED] y");
    }

    #[test]
    fn keeps_multibyte_text_intact() {
        let r = redactor(&["pässwört-xyz"]);
        assert_eq!(r.redact("→ pässwört-xyz ←"), "→ [REDACTED] ←");
        assert_eq!(r.redact("p%C3%A4sswört-xyz"), "[REDACTED]");
    }

    #[test]
    fn empty_secret_is_ignored() {
        let r = redactor(&[""]);
        assert_eq!(r.redact("abc"), "abc");
    }

    #[test]
    fn short_and_well_known_secrets_are_refused_by_name() {
        let short = check_secret("db_password", "pw1").unwrap_err();
        assert_eq!(
            short,
            SecretRejected::TooShort {
                name: "db_password".into()
            }
        );
        let text = short.to_string();
        assert!(
            text.contains("`db_password`") && !text.contains("pw1"),
            "{text}"
        );
        assert!(matches!(
            check_secret("PGPASSWORD", "Postgres"),
            Err(SecretRejected::WellKnown { .. })
        ));
        assert_eq!(check_secret("x", ""), Ok(()));
        assert_eq!(check_secret("x", "Pl4nted-S3cret"), Ok(()));
        // Characters, not bytes: eight umlauts are long enough.
        assert_eq!(check_secret("x", "äöüäöüäö"), Ok(()));
        assert!(check_secret("x", "äöüä").is_err());
    }

    #[test]
    fn a_secret_equal_to_a_plain_variable_is_refused() {
        let plain = [("db_user", "paperless_app"), ("db_name", "paperless")];
        let err = check_secret_among("db_password", "paperless_app", plain).unwrap_err();
        assert_eq!(
            err,
            SecretRejected::SameAsPlain {
                name: "db_password".into(),
                plain: "db_user".into()
            }
        );
        assert!(!err.to_string().contains("paperless_app"), "{err}");
        assert_eq!(
            check_secret_among("db_password", "Pl4nted-S3cret", plain),
            Ok(())
        );
    }

    #[test]
    fn add_named_registers_only_accepted_secrets() {
        let r = Redactor::default();
        assert!(r.add_named("pw", "exit").is_err());
        assert_eq!(r.redact("exit 1"), "exit 1");
        r.add_named("pw", "Pl4nted-S3cret").unwrap();
        assert_eq!(r.redact("pw Pl4nted-S3cret"), "pw [REDACTED]");
    }
}
