//! Durations as suites write them (`500ms`, `10s`, `2m`) and as reports show them.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de;
use serde::{Deserialize, Deserializer};

/// A duration written the humantime way: `500ms`, `10s`, `2m`, `26h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[schemars(with = "String")]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(HumanDuration)
            .map_err(de::Error::custom)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

/// The longest duration a suite may give: longer ones are typos, and would overflow clocks.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 86_400);

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("expected a duration like `500ms`, `10s` or `2m`, found `{text}` ({e})")
    })?;
    if duration > MAX_DURATION {
        return Err(format!(
            "expected a duration of at most 10 years, found `{text}`, which no clock can wait for"
        ));
    }
    Ok(duration)
}

/// Formats a duration compactly for humans: `0.42 ms`, `1.3 s`, `2m 5s`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if d.as_secs() < 60 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_the_humantime_way() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        let err = parse_duration("ten").unwrap_err();
        assert!(err.contains("expected a duration like"), "{err}");
    }

    #[test]
    fn durations_format_for_humans() {
        assert_eq!(format_duration(Duration::from_micros(420)), "0.42 ms");
        assert_eq!(format_duration(Duration::from_millis(30)), "30.0 ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5 s");
    }
}
