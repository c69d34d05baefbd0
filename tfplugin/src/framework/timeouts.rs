//! The `timeouts` block: Go-style durations per operation, with resource-chosen defaults.

use std::time::Duration;

use crate::value::Value;

/// Parse `300ms`, `30s`, `20m`, `1h30m` (units ns/us/ms/s/m/h as Go's time.ParseDuration).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration; write it like \"30s\", \"20m\" or \"1h30m\".");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * secs;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// The timeout for `op` from a resource value's `timeouts` block, else `default`.
/// The value was validated at plan time, so an unparsable one falls back to the default.
pub fn timeout(value: &Value, op: &str, default: Duration) -> Duration {
    value
        .attr("timeouts")
        .attr(op)
        .as_str()
        .and_then(|s| parse_duration(s).ok())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        for bad in ["", "10", "m", "5 m", "1d", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        let v = Value::object([("timeouts", Value::object([("create", Value::from("2m"))]))]);
        assert_eq!(
            timeout(&v, "create", Duration::from_secs(1)),
            Duration::from_secs(120)
        );
        assert_eq!(
            timeout(&v, "delete", Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }
}
