//! Whose fetch it is. The cache is segregated by user name (no user counts
//! as a user of its own, as in Mesos). With ids, fetched files are given to
//! the user, and a local path is read only if the user could read it: the
//! fetcher runs as root, so without this check a task could ask for
//! `/etc/shadow`.

use super::FetchError;
use rustix::fs::{self as rfs, Mode, OFlags};
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

/// The user a fetch is for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchUser {
    /// Keys the cache; `None` is its own user.
    pub name: Option<String>,
    /// Set when fetched files belong to the user and local reads are
    /// checked against the user's permissions.
    pub ids: Option<UserIds>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserIds {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, the primary one included.
    pub groups: Vec<u32>,
}

impl FetchUser {
    /// A name for the cache only: no ownership change, no read check.
    pub fn named(name: impl Into<String>) -> FetchUser {
        FetchUser {
            name: Some(name.into()),
            ids: None,
        }
    }

    /// Looks `name` up in the host's user database, as the Mesos fetcher
    /// does; an unknown user is an error.
    pub fn lookup(name: &str) -> Result<FetchUser, FetchError> {
        let unknown = || FetchError::UnknownUser(name.to_string());
        let user = nix::unistd::User::from_name(name)
            .ok()
            .flatten()
            .ok_or_else(unknown)?;
        let cname = CString::new(name).map_err(|_| unknown())?;
        let mut groups: Vec<u32> = nix::unistd::getgrouplist(&cname, user.gid)
            .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_default();
        if !groups.contains(&user.gid.as_raw()) {
            groups.push(user.gid.as_raw());
        }
        Ok(FetchUser {
            name: Some(name.to_string()),
            ids: Some(UserIds {
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
                groups,
            }),
        })
    }

    pub(crate) fn owner(&self) -> Option<(u32, u32)> {
        self.ids.as_ref().map(|i| (i.uid, i.gid))
    }

    pub(crate) fn display(&self) -> &str {
        self.name.as_deref().unwrap_or("(none)")
    }
}

/// Opens `path` for reading if `ids` could: every directory on the way
/// searchable and the file readable by the user's permission bits (ACLs
/// and capabilities are not considered). Each step holds a descriptor of
/// the previous one, so nothing can be swapped in between the check and
/// the read. `Ok(None)` means permission denied.
pub(crate) fn open_as(path: &Path, ids: &UserIds) -> io::Result<Option<File>> {
    let real = std::fs::canonicalize(path)?;
    let mut dir: OwnedFd = rfs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let parts: Vec<_> = real.iter().skip(1).collect();
    let Some((last, dirs)) = parts.split_last() else {
        return Ok(None);
    };
    for part in dirs {
        if !allowed(&rfs::fstat(&dir)?, ids, 0o1) {
            return Ok(None);
        }
        dir = rfs::openat(
            &dir,
            *part,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
    }
    if !allowed(&rfs::fstat(&dir)?, ids, 0o1) {
        return Ok(None);
    }
    let file = rfs::openat(
        &dir,
        *last,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if !allowed(&rfs::fstat(&file)?, ids, 0o4) {
        return Ok(None);
    }
    Ok(Some(File::from(file)))
}

/// Whether the permission `bit` (4 read, 1 search) is granted to `ids`.
fn allowed(st: &rfs::Stat, ids: &UserIds, bit: u32) -> bool {
    if ids.uid == 0 {
        return true;
    }
    let mode = st.st_mode;
    if st.st_uid == ids.uid {
        mode >> 6 & bit != 0
    } else if ids.groups.contains(&st.st_gid) {
        mode >> 3 & bit != 0
    } else {
        mode & bit != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn permission_bits_decide_for_a_non_root_user() {
        let d = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let f = d.path().join("f");
        std::fs::write(&f, "x").unwrap();
        let other = UserIds {
            uid: me.wrapping_add(4242),
            gid: 4242,
            groups: vec![4242],
        };
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(open_as(&f, &other).unwrap().is_some());
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(open_as(&f, &other).unwrap().is_none());
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(
            open_as(&f, &other).unwrap().is_none(),
            "parent not searchable"
        );
        let owner = UserIds {
            uid: me,
            gid: 0,
            groups: vec![],
        };
        assert!(open_as(&f, &owner).unwrap().is_some());
    }

    #[test]
    fn unknown_users_are_refused() {
        let e = FetchUser::lookup("no-such-user-butte").unwrap_err();
        assert_eq!(e.to_string(), "user \"no-such-user-butte\" does not exist");
        let root = FetchUser::lookup("root").unwrap();
        assert_eq!(root.owner(), Some((0, 0)));
    }
}
