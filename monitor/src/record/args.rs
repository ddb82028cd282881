//! Durations and sizes on the command line and in scenario files, validated at parse time.
use std::time::Duration;

/// Parse `10`, `10s`, `500ms`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 30s, 500ms, 2m)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a duration"));
    }
    // Far beyond any recording, and far below where Duration and Instant arithmetic overflow.
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "{s:?} is longer than the longest duration emuwatch takes (366 days)"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// How long a recording may run: a duration above zero.
pub fn parse_record_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{s:?}: a recording's duration must be above 0"));
    }
    Ok(d)
}

/// The ring buffer's poll period: a duration above zero, at most a second.
pub fn parse_poll(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() || d > Duration::from_secs(1) {
        return Err(format!("poll period {s:?} must be above 0 and at most 1s"));
    }
    Ok(d)
}

/// `--max-size`: `500M`, `2G`, `64K` or bytes; above 0.
pub fn parse_max_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        Some('T' | 't') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 500M, 2G)"))?;
    match n.checked_mul(mult) {
        Some(0) => Err(format!("{s:?}: the size limit must be above 0")),
        Some(b) => Ok(b),
        None => Err(format!("{s:?} is too large")),
    }
}

/// Parse `4M`, `256K`, `1048576` into bytes.
pub fn parse_size(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 4M, 256K)"))?;
    let bytes = n
        .checked_mul(mult)
        .filter(|b| *b <= 1 << 30)
        .ok_or_else(|| format!("{s:?} is too large (max 1G)"))?;
    if !bytes.is_power_of_two() || bytes < 4096 {
        return Err(format!(
            "{s:?}: the ring buffer size must be a power of two of at least 4K"
        ));
    }
    Ok(bytes as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        // Huge values are errors, not a panic in Duration::from_secs_f64 or Instant + d.
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("1e400").is_err());
        assert!(parse_duration("366d").is_err(), "no day unit");
        assert_eq!(
            parse_duration("8784h").unwrap(),
            Duration::from_secs(366 * 24 * 3600)
        );
        assert!(parse_duration("8785h").is_err());
    }

    #[test]
    fn record_durations_are_above_zero() {
        assert!(parse_record_duration("0").is_err());
        assert!(parse_record_duration("0ms").is_err());
        assert_eq!(
            parse_record_duration("1ms").unwrap(),
            Duration::from_millis(1)
        );
    }

    #[test]
    fn poll_periods() {
        assert_eq!(parse_poll("5ms").unwrap(), Duration::from_millis(5));
        for bad in ["0", "0ms", "2s", "99999999999999999999h"] {
            assert!(parse_poll(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn max_sizes() {
        assert_eq!(parse_max_size("64K").unwrap(), 65536);
        assert_eq!(parse_max_size("2G").unwrap(), 2 << 30);
        assert!(parse_max_size("0").is_err());
        assert!(parse_max_size("99999999999T").is_err());
        assert!(parse_max_size("x").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4M").unwrap(), 4 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("3M").is_err());
        assert!(parse_size("2G").is_err());
        assert!(parse_size("x").is_err());
    }
}
