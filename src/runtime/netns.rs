//! Network namespaces that outlive their processes: made by a short-lived
//! thread of the caller (a network namespace belongs to a thread, so the
//! rest of the process stays in its own), with `lo` up, and pinned by a
//! bind mount of its nsfs file at a path, which CNI plugins get as
//! `CNI_NETNS` and a sandbox joins ([`super::Network::Join`]). The pin
//! keeps it alive without any process in it, across a restart of the
//! caller, until [`remove_netns`].

use super::sys;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Makes a new network namespace and pins it at `pin` (a new file).
/// Nothing is left behind on error.
pub fn create_netns(pin: &Path) -> io::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(pin)?;
    let target: PathBuf = pin.to_path_buf();
    let made = std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || -> io::Result<()> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            sys::loopback_up()?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(io::Error::from)
            // The thread ends here, and its namespace lives on in the pin.
        })?
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("network namespace thread panicked")));
    if made.is_err() {
        let _ = fs::remove_file(pin);
    }
    made
}

/// Whether `pin` is a pinned network namespace.
pub fn netns_pinned(pin: &Path) -> bool {
    // An nsfs file: its own device, unlike the file it is mounted over.
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(pin), pin.parent().map(fs::metadata)) {
        (Ok(m), Some(Ok(p))) => m.dev() != p.dev(),
        _ => false,
    }
}

/// Unpins the namespace at `pin` and removes the file; the namespace
/// goes once nothing else holds it. A missing pin is not an error.
pub fn remove_netns(pin: &Path) -> io::Result<()> {
    match umount2(pin, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match fs::remove_file(pin) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
