//! Kubernetes quantities as byte counts (`50Mi`, `10M`, `1.5Gi`, `1000`).

/// Suffixes and their multipliers, binary ones first.
pub const SUFFIXES: [(&str, u64); 8] = [
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
];

/// A Kubernetes quantity (`50Mi`, `10M`, `1.5Gi`, `1000`) in bytes: `None` unless it is a
/// decimal number with an optional suffix of [`SUFFIXES`] worth at least one byte. Values
/// beyond `u64::MAX` saturate.
pub fn parse_quantity(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = if suffix.is_empty() {
        1
    } else {
        SUFFIXES.iter().find(|(s, _)| *s == suffix)?.1
    };
    // Exact for every whole number of units up to 2^53 bytes.
    let v = n * mult as f64;
    (v >= 1.0 && v.is_finite()).then_some(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("50Mi"), Some(50 * 1024 * 1024));
        assert_eq!(parse_quantity("10M"), Some(10_000_000));
        assert_eq!(parse_quantity("1.5Ki"), Some(1536));
        assert_eq!(parse_quantity("1000"), Some(1000));
        assert_eq!(parse_quantity("2Ti"), Some(2 << 40));
        assert_eq!(parse_quantity("5Xi"), None);
        assert_eq!(parse_quantity("0"), None);
        assert_eq!(parse_quantity("."), None);
        assert_eq!(parse_quantity("Mi"), None);
    }
}
