//! The encoded forms a secret takes in output: URIs, base64 (also inside longer base64 text,
//! e.g. an echoed `Authorization: Basic` header) and hex.

use base64::alphabet::{Alphabet, STANDARD, URL_SAFE};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

/// Derived forms shorter than this are dropped: a four-character base64 word would match
/// unrelated output, and only secrets the policy calls weak produce them.
const MIN_DERIVED_LEN: usize = 8;

/// Beyond this many percent-encoded variants, only the ones common encoders produce are kept.
const MAX_PERCENT_VARIANTS: usize = 64;

/// Every form of `secret` worth masking, the plain text first.
pub fn all(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    forms.extend(percent(secret));
    forms.extend(base64(secret.as_bytes()));
    forms.extend(hex(secret.as_bytes()));
    keep(forms, secret)
}

/// The base64 forms of the `user:password` pair an HTTP client sends as Basic authentication.
pub fn basic_auth(user: &str, password: &str) -> Vec<String> {
    let pair = format!("{user}:{password}");
    keep(base64(pair.as_bytes()), &pair)
}

fn keep(mut forms: Vec<String>, plain: &str) -> Vec<String> {
    forms.retain(|f| !f.is_empty() && (f == plain || f.len() >= MIN_DERIVED_LEN));
    forms.sort();
    forms.dedup();
    forms
}

/// Percent-encoded forms. Encoders disagree on which characters they leave alone (`/` in
/// Python's `quote`, `!*'()` in `encodeURIComponent`, `:;=` in WHATWG user info), on the
/// hex case, and on space (`%20` or `+`). Every mix of literal and encoded characters is
/// generated while that stays small; otherwise the forms of the common encoders.
fn percent(secret: &str) -> Vec<String> {
    // For each character, the ways it can appear; ASCII letters and digits never change.
    let choices: Vec<Vec<(String, String)>> = secret
        .chars()
        .map(|c| {
            let literal = c.to_string();
            if c.is_ascii_alphanumeric() {
                return vec![(literal.clone(), literal)];
            }
            let upper = encode_char(c, true);
            let lower = encode_char(c, false);
            let mut ways = vec![(literal.clone(), literal), (upper, lower)];
            if c == ' ' {
                ways.push(("+".into(), "+".into()));
            }
            ways
        })
        .collect();
    let variants = choices
        .iter()
        .try_fold(1usize, |n, ways| n.checked_mul(ways.len()))
        .filter(|&n| n <= MAX_PERCENT_VARIANTS);
    if variants.is_some() {
        let mut upper_forms = vec![String::new()];
        let mut lower_forms = vec![String::new()];
        for ways in &choices {
            upper_forms = extend_all(&upper_forms, ways.iter().map(|(u, _)| u.as_str()));
            lower_forms = extend_all(&lower_forms, ways.iter().map(|(_, l)| l.as_str()));
        }
        upper_forms.extend(lower_forms);
        return upper_forms;
    }
    let mut forms = Vec::new();
    for keep_literal in [
        "-._~",          // RFC 3986 unreserved only
        "-._~!$&'()*+,", // WHATWG user info leaves these alone
        "-_.!~*'()",     // JavaScript encodeURIComponent
        "-._~/",         // Python urllib.parse.quote
    ] {
        for upper in [true, false] {
            forms.push(
                secret
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || keep_literal.contains(c) {
                            c.to_string()
                        } else {
                            encode_char(c, upper)
                        }
                    })
                    .collect(),
            );
        }
    }
    // application/x-www-form-urlencoded: space as `+`.
    forms.push(
        secret
            .chars()
            .map(|c| match c {
                ' ' => "+".to_owned(),
                c if c.is_ascii_alphanumeric() || "*-._".contains(c) => c.to_string(),
                c => encode_char(c, true),
            })
            .collect(),
    );
    forms
}

fn extend_all<'a>(prefixes: &[String], ways: impl Iterator<Item = &'a str> + Clone) -> Vec<String> {
    prefixes
        .iter()
        .flat_map(|p| ways.clone().map(move |w| format!("{p}{w}")))
        .collect()
}

fn encode_char(c: char, upper: bool) -> String {
    let mut buf = [0u8; 4];
    c.encode_utf8(&mut buf)
        .bytes()
        .map(|b| {
            if upper {
                format!("%{b:02X}")
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

/// Base64 forms, standard and URL-safe, padded and not, alone or inside longer base64 text.
///
/// Inside a longer stream the secret's encoding depends on where it starts within a 3-byte
/// group (offset 0, 1 or 2): the characters at its edges mix its bits with its neighbours'.
/// For each offset we keep the characters made only of the secret's own bits, so the secret
/// is masked wherever it sits; the one or two edge characters may stay visible, which reveals
/// at most a few bits of the first and last byte.
fn base64(bytes: &[u8]) -> Vec<String> {
    let mut forms = Vec::new();
    for alphabet in [&STANDARD, &URL_SAFE] {
        let padded = engine(alphabet, true);
        forms.push(padded.encode(bytes));
        forms.push(engine(alphabet, false).encode(bytes));
        for offset in 0..3usize {
            let mut shifted = vec![0u8; offset];
            shifted.extend_from_slice(bytes);
            let encoded = padded.encode(&shifted);
            // Character i covers bits 6i..6i+6; the secret occupies bits 8·offset..8·(offset+n).
            let first = (8 * offset).div_ceil(6);
            let end = (8 * (offset + bytes.len())) / 6;
            if first < end {
                forms.push(encoded[first..end].to_owned());
            }
        }
    }
    forms
}

fn engine(alphabet: &Alphabet, pad: bool) -> GeneralPurpose {
    GeneralPurpose::new(
        alphabet,
        GeneralPurposeConfig::new()
            .with_encode_padding(pad)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

fn hex(bytes: &[u8]) -> Vec<String> {
    let lower: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let upper = lower.to_ascii_uppercase();
    vec![lower, upper]
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};

    fn covered(form_list: &[String], text: &str) -> bool {
        form_list.iter().any(|f| text.contains(f.as_str()))
    }

    #[test]
    fn percent_forms_cover_common_encoders() {
        let forms = all("p@ss/w#rd x");
        for encoded in [
            "p%40ss%2Fw%23rd%20x", // strict
            "p%40ss/w%23rd%20x",   // Python quote keeps `/`
            "p%40ss%2fw%23rd+x",   // lower-case hex, form encoding
        ] {
            assert!(forms.contains(&encoded.to_owned()), "{encoded}");
        }
    }

    #[test]
    fn many_special_characters_fall_back_to_common_encoders() {
        let secret = "a!b@c#d$e%f^g&h*i(j)k";
        let forms = percent(secret);
        assert!(forms.len() < 20, "{}", forms.len());
        assert!(forms.contains(&"a%21b%40c%23d%24e%25f%5Eg%26h%2Ai%28j%29k".to_owned()));
    }

    #[test]
    fn base64_inside_longer_streams_is_found_at_every_offset() {
        let secret = b"Pl4nted-S3cret";
        let forms = base64(secret);
        for prefix_len in 0..6 {
            for suffix_len in 0..4 {
                let mut stream = vec![b'x'; prefix_len];
                stream.extend_from_slice(secret);
                stream.extend(std::iter::repeat_n(b'y', suffix_len));
                assert!(
                    covered(&forms, &B64.encode(&stream)),
                    "{prefix_len}/{suffix_len}"
                );
                assert!(
                    covered(&forms, &URL_SAFE_NO_PAD.encode(&stream)),
                    "{prefix_len}/{suffix_len}"
                );
            }
        }
    }

    #[test]
    fn basic_auth_pair_is_covered() {
        let forms = basic_auth("app", "Pl4nted-S3cret");
        assert!(forms.contains(&B64.encode("app:Pl4nted-S3cret")));
    }

    #[test]
    fn hex_both_cases() {
        assert!(all("Secret12").contains(&"5365637265743132".to_owned()));
        assert!(all("Secret1?").contains(&"536563726574313F".to_owned()));
    }
}
