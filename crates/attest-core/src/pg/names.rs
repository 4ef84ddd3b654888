//! Fresh names and passwords for what checks create: random, so two runs never collide and
//! nothing guessable is left behind.

/// A strong random password, like `openssl rand -base64` in the stories, URL-safe.
pub fn generate_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

/// A name with a random suffix, so two runs never collide; within PostgreSQL's 63 bytes.
pub fn unique_name(base: &str) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    let suffix = Alphanumeric
        .sample_string(&mut rand::rng(), 6)
        .to_lowercase();
    // PostgreSQL truncates names to 63 bytes; cut first, on a character boundary, so the name
    // we later drop is the name that was created.
    let mut end = base.len().min(63 - 7);
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}_{suffix}", &base[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_stay_within_postgres_limits() {
        let name = unique_name(&"x".repeat(100));
        assert!(name.len() <= 63, "{name}");
        let name = unique_name(&"ä".repeat(60));
        assert!(name.len() <= 63, "{name}");
        assert_ne!(unique_name("app"), unique_name("app"));
    }
}
