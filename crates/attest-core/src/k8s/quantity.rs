//! Kubernetes resource quantities (`8Gi`, `500m`, `1.5G`, `2e3`), so `8Gi == 8589934592` and
//! `250m < 1` compare as the API server means them.

/// The value of a quantity in base units, or `None` when the text is not one.
pub fn parse(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() || number == "+" || number == "-" {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => {
            let power: i32 = exponent[1..].parse().ok()?;
            10f64.powi(power)
        }
        _ => return None,
    };
    Some(value * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_decimal_and_milli_suffixes() {
        assert_eq!(parse("8Gi"), Some(8589934592.0));
        assert_eq!(parse("8589934592"), Some(8589934592.0));
        assert_eq!(parse("500m"), Some(0.5));
        assert_eq!(parse("1.5G"), Some(1.5e9));
        assert_eq!(parse("2e3"), Some(2000.0));
        assert_eq!(parse("Bound"), None);
        assert_eq!(parse("8Gb"), None);
        assert_eq!(parse(""), None);
    }
}
