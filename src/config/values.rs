//! Value parsers shared by the command line, the environment and the config
//! file: durations, sizes, and the "or none / unlimited" forms.
//!
//! Invariant: the three layers accept exactly the same spellings, because
//! they all go through these functions.

use std::time::Duration;

/// A duration: humantime form (`30s`, `2m`, `1h 30m`, `500ms`) or a bare
/// integer number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|e| e.to_string());
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (expected e.g. 30s, 2m, 1h)"))
}

/// A duration, or `none` / `off` / `never` for no limit.
pub fn parse_optional_duration(s: &str) -> Result<OptionalDuration, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "none" | "off" | "never" => Ok(OptionalDuration(None)),
        _ => parse_duration(s).map(|d| OptionalDuration(Some(d))),
    }
}

/// A byte size: an integer with an optional unit. `B`; binary `K`/`KiB`,
/// `M`/`MiB`, `G`/`GiB` (×1024ⁿ); decimal `KB`, `MB`, `GB` (×1000ⁿ). Case-insensitive.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits_end);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size (expected e.g. 4MiB, 512KiB, 1048576)"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kib" => 1 << 10,
        "m" | "mi" | "mib" => 1 << 20,
        "g" | "gi" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    n.checked_mul(multiplier)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// A positive count, or `unlimited` / `none`.
pub fn parse_optional_count(s: &str) -> Result<OptionalCount, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "unlimited" | "none" => Ok(OptionalCount(None)),
        t => t
            .parse::<u64>()
            .map(|n| OptionalCount(Some(n)))
            .map_err(|_| format!("{s:?} is not a count (expected a number or \"unlimited\")")),
    }
}

/// A positive count, or `auto` (derived at start-up).
pub fn parse_auto_count(s: &str) -> Result<OptionalCount, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(OptionalCount(None)),
        t => match t.parse::<u64>() {
            Ok(0) | Err(_) => Err(format!(
                "{s:?} is not a count (expected a positive number or \"auto\")"
            )),
            Ok(n) => Ok(OptionalCount(Some(n))),
        },
    }
}

/// A duration that may be switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalDuration(pub Option<Duration>);

/// A count that may be unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalCount(pub Option<u64>);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn sizes_accept_binary_and_decimal_units() {
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("4MiB").unwrap(), 4 << 20);
        assert_eq!(parse_size("4m").unwrap(), 4 << 20);
        assert_eq!(parse_size("512 KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("1MB").unwrap(), 1_000_000);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert!(parse_size("").is_err());
        assert!(parse_size("1.5MiB").is_err());
        assert!(parse_size("4 parsecs").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn durations_accept_humantime_and_bare_seconds() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("soon").is_err());
        assert_eq!(
            parse_optional_duration("none").unwrap(),
            OptionalDuration(None)
        );
        assert_eq!(
            parse_optional_count("unlimited").unwrap(),
            OptionalCount(None)
        );
        assert_eq!(parse_optional_count("3").unwrap(), OptionalCount(Some(3)));
    }
}
