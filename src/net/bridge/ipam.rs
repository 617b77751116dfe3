//! Addresses for the built-in bridge, kept as `host-local` keeps them so
//! that allocations made by either survive the other:
//!
//! ```text
//!  <data_dir>/<network>/
//!      lock                 flock(2)ed while allocating or releasing
//!      last_reserved_ip.0   where the next search starts
//!      10.87.0.5            "<container id>\n<ifname>": taken
//! ```
//! A file per address, created with `O_EXCL`: an allocation survives a
//! restart of the caller, and release removes exactly the container's.

use nix::fcntl::{Flock, FlockArg};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The allocator of one network's addresses.
#[derive(Debug, Clone)]
pub(super) struct Ipam {
    dir: PathBuf,
    network: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
}

const LAST: &str = "last_reserved_ip.0";

impl Ipam {
    pub fn new(
        data_dir: &Path,
        name: &str,
        network: Ipv4Addr,
        prefix: u8,
        gateway: Ipv4Addr,
    ) -> Ipam {
        Ipam {
            dir: data_dir.join(name),
            network,
            prefix,
            gateway,
        }
    }

    fn lock(&self) -> io::Result<Flock<File>> {
        fs::create_dir_all(&self.dir)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("lock"))?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))
    }

    /// The first and last usable host addresses (the network and
    /// broadcast addresses excluded).
    fn range(&self) -> (u32, u32) {
        let net = u32::from(self.network);
        let size = 1u32.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
        (net + 1, net + size.saturating_sub(2))
    }

    /// An address for `id`'s interface `ifname`: the one it already has
    /// (an ADD repeated), else the next free one after the last given.
    pub fn allocate(&self, id: &str, ifname: &str) -> io::Result<Ipv4Addr> {
        let _lock = self.lock()?;
        if let Some(ip) = self.find(id, ifname)? {
            return Ok(ip);
        }
        let (first, last) = self.range();
        let start = fs::read_to_string(self.dir.join(LAST))
            .ok()
            .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
            .map(u32::from)
            .filter(|a| (first..=last).contains(a))
            .unwrap_or(last);
        let mut candidate = start;
        loop {
            candidate = if candidate >= last {
                first
            } else {
                candidate + 1
            };
            let ip = Ipv4Addr::from(candidate);
            if ip != self.gateway {
                match OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(self.dir.join(ip.to_string()))
                {
                    Ok(mut f) => {
                        f.write_all(format!("{id}\n{ifname}").as_bytes())?;
                        fs::write(self.dir.join(LAST), ip.to_string())?;
                        return Ok(ip);
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
            }
            if candidate == start {
                return Err(io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    format!(
                        "no free address in {}/{} ({})",
                        self.network,
                        self.prefix,
                        self.dir.display()
                    ),
                ));
            }
        }
    }

    /// The address `id`'s `ifname` holds, if any.
    fn find(&self, id: &str, ifname: &str) -> io::Result<Option<Ipv4Addr>> {
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            if owned_by(&entry.path(), id, ifname) {
                return Ok(Some(ip));
            }
        }
        Ok(None)
    }

    /// Releases what `id`'s `ifname` holds: `ip` when the caller knows
    /// it, else whatever the directory says is its. Nothing held is
    /// fine.
    pub fn release(&self, id: &str, ifname: &str, ip: Option<Ipv4Addr>) -> io::Result<()> {
        if !self.dir.exists() {
            return Ok(());
        }
        let _lock = self.lock()?;
        let ip = match ip {
            Some(ip) if owned_by(&self.dir.join(ip.to_string()), id, ifname) => Some(ip),
            _ => self.find(id, ifname)?,
        };
        match ip {
            Some(ip) => match fs::remove_file(self.dir.join(ip.to_string())) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }
}

/// Whether allocation file `path` is `id`'s `ifname`'s (host-local
/// writes `id\r\nifname`, older versions only `id`).
fn owned_by(path: &Path, id: &str, ifname: &str) -> bool {
    let Ok(text) = fs::read_to_string(path) else {
        return false;
    };
    let mut lines = text.lines().map(str::trim);
    lines.next() == Some(id) && lines.next().map_or(true, |i| i == ifname)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam(dir: &Path, prefix: u8) -> Ipam {
        Ipam::new(
            dir,
            "bridge",
            Ipv4Addr::new(10, 87, 0, 0),
            prefix,
            Ipv4Addr::new(10, 87, 0, 1),
        )
    }

    #[test]
    fn addresses_are_handed_out_in_turn_skipping_the_gateway_and_taken_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let a = ipam(tmp.path(), 24);
        // One host-local gave before.
        fs::create_dir_all(tmp.path().join("bridge")).unwrap();
        fs::write(tmp.path().join("bridge/10.87.0.3"), "old\r\neth0").unwrap();
        assert_eq!(
            a.allocate("c1", "eth0").unwrap(),
            Ipv4Addr::new(10, 87, 0, 2)
        );
        assert_eq!(
            a.allocate("c2", "eth0").unwrap(),
            Ipv4Addr::new(10, 87, 0, 4)
        );
        // The same ADD again: the same address.
        assert_eq!(
            a.allocate("c1", "eth0").unwrap(),
            Ipv4Addr::new(10, 87, 0, 2)
        );
        assert_eq!(
            fs::read_to_string(tmp.path().join("bridge/10.87.0.4")).unwrap(),
            "c2\neth0"
        );
        a.release("c1", "eth0", Some(Ipv4Addr::new(10, 87, 0, 2)))
            .unwrap();
        assert!(!tmp.path().join("bridge/10.87.0.2").exists());
        // Not the holder: nothing released.
        a.release("c9", "eth0", Some(Ipv4Addr::new(10, 87, 0, 4)))
            .unwrap();
        assert!(tmp.path().join("bridge/10.87.0.4").exists());
        // Without the address: found by owner; host-local's format too.
        a.release("c2", "eth0", None).unwrap();
        a.release("old", "eth0", None).unwrap();
        assert!(!tmp.path().join("bridge/10.87.0.4").exists());
        assert!(!tmp.path().join("bridge/10.87.0.3").exists());
        // The search goes on after the last one given.
        assert_eq!(
            a.allocate("c3", "eth0").unwrap(),
            Ipv4Addr::new(10, 87, 0, 5)
        );
    }

    #[test]
    fn a_full_network_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let a = ipam(tmp.path(), 30); // .1 gateway, .2 the only one
        assert_eq!(
            a.allocate("c1", "eth0").unwrap(),
            Ipv4Addr::new(10, 87, 0, 2)
        );
        let e = a.allocate("c2", "eth0").unwrap_err();
        assert!(
            e.to_string().contains("no free address in 10.87.0.0/30"),
            "{e}"
        );
    }
}
