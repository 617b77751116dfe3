//! Small helpers shared by every layer: parsing of human-friendly sizes and
//! durations, random identifiers, atomic file writes, and signed tokens
//! (`jwt`).

pub mod caps;
pub mod chunks;
pub mod crash;
pub mod http;
pub mod journal;
pub mod jwt;
pub mod notify;
pub mod prepared;
mod stout;

pub use stout::{format_bytes, format_duration};

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

/// Why a value given by a user could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("invalid size {0:?}: expected a number with an optional unit (B, K, M, G, T)")]
    Size(String),
    #[error("invalid duration {0:?}: expected a number with a unit (ms, s, m, h)")]
    Duration(String),
}

/// Parses a byte size such as `128M`, `1.5G`, `512k`, `4096` or `64MiB`.
///
/// Units are binary (K = 1024), as Docker and Mesos interpret them.
pub fn parse_size(text: &str) -> Result<u64, ParseError> {
    let err = || ParseError::Size(text.to_string());
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| err())?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches("ib").trim_end_matches('b');
    let factor: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(err()),
    };
    let bytes = value * factor as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(err());
    }
    Ok(bytes as u64)
}

/// Parses a duration such as `500ms`, `3s`, `1.5m` or `2h`.
pub fn parse_duration(text: &str) -> Result<Duration, ParseError> {
    let err = || ParseError::Duration(text.to_string());
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(err)?;
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| err())?;
    let secs = match unit.trim() {
        "ns" => value / 1e9,
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" | "sec" | "secs" => value,
        "m" | "min" | "mins" => value * 60.0,
        "h" | "hr" | "hrs" => value * 3600.0,
        "d" | "day" | "days" => value * 86400.0,
        "w" | "week" | "weeks" => value * 604800.0,
        _ => return Err(err()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| err())
}

/// Formats a byte count for people: `128.0 MiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A random UUID v4 as its 16 bytes (the form Mesos puts in status
/// updates).
pub fn random_uuid_bytes() -> io::Result<[u8; 16]> {
    let mut b = [0u8; 16];
    fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Ok(b)
}

/// A random 128-bit identifier in the canonical UUID v4 text form, as Mesos
/// uses for container ids.
pub fn random_uuid() -> io::Result<String> {
    Ok(uuid_text(&random_uuid_bytes()?))
}

/// A uuid as Mesos prints it: the canonical `8-4-4-4-12` form for 16
/// bytes, plain hex otherwise.
pub fn uuid_text(bytes: &[u8]) -> String {
    let h: String = bytes.iter().map(|x| format!("{x:02x}")).collect();
    if bytes.len() != 16 {
        return h;
    }
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Writes `data` to `path` atomically: a temporary file in the same
/// directory, fsync, then rename over the target. A failure leaves no
/// temporary file behind.
pub fn atomic_write(path: &Path, data: &[u8]) -> io::Result<()> {
    replace(path, data, false)
}

/// [`atomic_write`] for a secret: the file is created with mode 0600 (it is
/// never readable by others, not even as the temporary file), and the
/// directory is fsynced too, so the new name survives a crash.
pub fn atomic_write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    replace(path, data, true)
}

fn replace(path: &Path, data: &[u8], private: bool) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    // Unique per call, not only per process: threads writing the same
    // file at once (two launches provisioning one image) must not rename
    // each other's temporary file away.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{n}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut opts = fs::OpenOptions::new();
        opts.write(true);
        if private {
            opts.create_new(true).mode(0o600);
        } else {
            opts.create(true).truncate(true);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if private {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_replacing_one_file_at_once_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let writers: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    (0..50).try_for_each(|_| atomic_write(&path, b"same bytes"))
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap().unwrap();
        }
        assert_eq!(fs::read(&path).unwrap(), b"same bytes");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("128M"), Ok(128 << 20));
        assert_eq!(parse_size("128MiB"), Ok(128 << 20));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("0"), Ok(0));
        for bad in ["", "M", "-1M", "12X", "1.2.3M", "1e3"] {
            assert!(parse_size(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5secs"), Ok(Duration::from_secs(5)));
        for bad in ["", "3", "s", "-1s", "3 parsecs"] {
            assert!(parse_duration(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn parses_long_units() {
        assert_eq!(parse_duration("2days"), Ok(Duration::from_secs(172800)));
        assert_eq!(parse_duration("1weeks"), Ok(Duration::from_secs(604800)));
    }

    #[test]
    fn formats_sizes() {
        assert_eq!(format_size(12), "12 B");
        assert_eq!(format_size(128 << 20), "128.0 MiB");
    }

    #[test]
    fn uuids_are_v4_and_distinct() {
        let a = random_uuid().unwrap();
        let b = random_uuid().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(atomic_write(&dir.path().join("missing/f"), b"x").is_err());
    }
}
