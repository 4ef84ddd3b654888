//! Keeps secret values out of every line of output: console, reports and error messages.

use std::sync::{Arc, RwLock};

/// The redaction mark that replaces a secret value.
pub const MASK: &str = "[REDACTED]";

/// Known secret values; cheap to clone and shared by everything that emits text.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Vec<String>>>,
}

impl Redactor {
    /// Registers a secret. Its percent-encoded form is registered too, since secrets also
    /// travel inside connection URIs.
    pub fn add(&self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let mut secrets = self.secrets.write().expect("redactor");
        for form in [secret.to_owned(), percent_encode(secret)] {
            if !secrets.contains(&form) {
                secrets.push(form);
            }
        }
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    pub fn redact(&self, text: &str) -> String {
        let secrets = self.secrets.read().expect("redactor");
        let mut out = text.to_owned();
        for secret in secrets.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }

    pub fn redact_opt(&self, text: Option<String>) -> Option<String> {
        text.map(|t| self.redact(&t))
    }
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_plain_and_uri_encoded_secrets() {
        let r = Redactor::default();
        r.add("s3cr3t/pass");
        assert_eq!(r.redact("password s3cr3t/pass!"), "password [REDACTED]!");
        assert_eq!(
            r.redact("postgres://u:s3cr3t%2Fpass@h/db"),
            "postgres://u:[REDACTED]@h/db"
        );
        assert_eq!(r.redact("nothing here"), "nothing here");
    }

    #[test]
    fn empty_secret_is_ignored() {
        let r = Redactor::default();
        r.add("");
        assert_eq!(r.redact("abc"), "abc");
    }
}
