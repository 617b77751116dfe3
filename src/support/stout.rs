//! Durations and byte counts written the way Mesos' stout library prints
//! them, because executors parse the former (`MESOS_RECOVERY_TIMEOUT=15mins`)
//! and people grep for the latter (`Requested: 64MB`).

use std::time::Duration;

const NS: u128 = 1;
const US: u128 = 1_000;
const MS: u128 = 1_000_000;
const SECS: u128 = 1_000_000_000;
const MINS: u128 = 60 * SECS;
const HRS: u128 = 60 * MINS;
const DAYS: u128 = 24 * HRS;
const WEEKS: u128 = 7 * DAYS;

/// A duration as stout's `operator<<` prints it: the unit of the bucket
/// the duration falls in (`5secs`, `15mins`), or the next smaller unit when
/// that one gives a whole number and the bucket's does not (`90secs`, not
/// `1.5mins`; `1500ms`); otherwise a fraction of the bucket's unit with up
/// to 15 significant digits (`1.0000005secs`).
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    // (bucket upper bound, bucket unit, one unit smaller).
    type Unit = (u128, &'static str);
    const BUCKETS: [(u128, Unit, Unit); 7] = [
        (MS, (US, "us"), (NS, "ns")),
        (SECS, (MS, "ms"), (US, "us")),
        (MINS, (SECS, "secs"), (MS, "ms")),
        (HRS, (MINS, "mins"), (SECS, "secs")),
        (DAYS, (HRS, "hrs"), (MINS, "mins")),
        (WEEKS, (DAYS, "days"), (HRS, "hrs")),
        (u128::MAX, (WEEKS, "weeks"), (DAYS, "days")),
    ];
    if ns < US {
        return format!("{ns}ns");
    }
    let (_, (unit, name), (small, small_name)) = BUCKETS
        .iter()
        .copied()
        .find(|(bound, _, _)| ns < *bound)
        .unwrap_or(BUCKETS[BUCKETS.len() - 1]);
    let (unit, name) = if ns % unit != 0 && ns % small == 0 {
        (small, small_name)
    } else {
        (unit, name)
    };
    format!("{}{name}", significant(ns as f64 / unit as f64))
}

/// A number as C++ streams print a double at precision 15 (`%.15g`
/// without an exponent for the values durations produce).
fn significant(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let digits = 15 - (v.abs().log10().floor() as i32 + 1);
    let s = format!("{:.*}", digits.max(0) as usize, v);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A byte count as stout's `Bytes` prints it: the largest unit that loses
/// nothing (`64MB`, `1536KB`, `1000B`).
pub fn format_bytes(bytes: u64) -> String {
    let mut value = bytes;
    for unit in ["B", "KB", "MB", "GB"] {
        if value == 0 || value % 1024 != 0 {
            return format!("{value}{unit}");
        }
        value /= 1024;
    }
    format!("{value}TB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_mesos_prints_them() {
        let cases = [
            (Duration::from_secs(5), "5secs"),
            (Duration::from_secs(15 * 60), "15mins"),
            (Duration::from_secs(60), "1mins"),
            (Duration::from_secs(90), "90secs"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_millis(100), "100ms"),
            (Duration::from_secs(2 * 3600), "2hrs"),
            (Duration::from_secs(36 * 3600), "36hrs"),
            (Duration::from_secs(7 * 86400), "1weeks"),
            (Duration::from_secs(10 * 86400), "10days"),
            (Duration::from_nanos(999), "999ns"),
            (Duration::from_nanos(1500), "1500ns"),
            (Duration::from_micros(3), "3us"),
            (Duration::ZERO, "0ns"),
            (Duration::from_nanos(1_000_000_500), "1.0000005secs"),
            (Duration::from_nanos(2_500_000_001), "2.500000001secs"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn bytes_print_as_mesos_prints_them() {
        assert_eq!(format_bytes(0), "0B");
        assert_eq!(format_bytes(1000), "1000B");
        assert_eq!(format_bytes(64 << 20), "64MB");
        assert_eq!(format_bytes(1536 << 10), "1536KB");
        assert_eq!(format_bytes(32 << 20), "32MB");
        assert_eq!(format_bytes(2 << 30), "2GB");
        assert_eq!(format_bytes(3 << 40), "3TB");
        assert_eq!(format_bytes((32 << 20) + 4096), "32772KB");
    }
}
