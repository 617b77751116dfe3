//! `/files/*`: the sandboxes and other paths the agent attached, as Mesos'
//! `FilesProcess` serves them.
//!
//! A request path resolves through the longest attached prefix (a virtual
//! name such as `/frameworks/F/executors/E/runs/latest`, or a sandbox's
//! own host path) to the attached host path plus the rest. The rest is
//! opened under the attached directory with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, so neither `..` nor
//! a symlink a task planted (`ln -s /etc/shadow x`) leads outside it, and
//! the check and the open are one step (no window for a swapped link).
//! `..` in a request is refused before anything is opened.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::OperatorError;

/// The most bytes one `/files/read` returns (Mesos: 16 pages).
pub const MAX_READ: u64 = 16 * 4096;

/// Attached paths: request prefix -> host path.
pub type Attached = BTreeMap<String, PathBuf>;

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

/// A request path resolved to an attached root and a relative rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub root: PathBuf,
    /// Components under `root` (empty: the root itself).
    pub rest: Vec<String>,
}

/// Splits a request path into components; `..` is refused, `.` and empty
/// components are dropped.
fn components(path: &str) -> Result<Vec<String>, OperatorError> {
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(OperatorError::BadRequest(format!(
                    "'{path}' is inaccessible: '..' is not allowed"
                )))
            }
            c if c.contains('\0') => {
                return Err(OperatorError::BadRequest("a path may not hold NUL".into()))
            }
            c => out.push(c.to_string()),
        }
    }
    Ok(out)
}

/// The longest attached prefix of `path`, or `None` (a 404).
pub fn resolve(attached: &Attached, path: &str) -> Result<Option<Resolved>, OperatorError> {
    let parts = components(path)?;
    for n in (1..=parts.len()).rev() {
        let prefix = format!("/{}", parts[..n].join("/"));
        if let Some(root) = attached.get(&prefix) {
            return Ok(Some(Resolved {
                root: root.clone(),
                rest: parts[n..].to_vec(),
            }));
        }
    }
    Ok(None)
}

/// Opens what `resolved` names, never leaving its root. `Ok(None)`: it
/// does not exist (404).
fn open(resolved: &Resolved, flags: OFlags) -> Result<Option<OwnedFd>, OperatorError> {
    let root = match rfs::open(
        &resolved.root,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(None),
        Err(e) => return Err(io_error(&resolved.root, e)),
    };
    let rest = if resolved.rest.is_empty() {
        // The attached path itself (a directory or a file such as a log).
        return match rfs::openat(&root, ".", flags | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOTDIR) => reopen_file(&resolved.root, flags).map(Some),
            Err(e) => Err(io_error(&resolved.root, e)),
        };
    } else {
        resolved.rest.join("/")
    };
    match rfs::openat2(
        &root,
        &rest,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) | Err(Errno::NOTDIR) => Ok(None),
        Err(Errno::XDEV) | Err(Errno::LOOP) => Err(OperatorError::BadRequest(format!(
            "'{}' is inaccessible",
            resolved.root.join(&rest).display()
        ))),
        Err(e) => Err(io_error(&resolved.root.join(&rest), e)),
    }
}

/// An attached path that is a file, opened for reading.
fn reopen_file(path: &Path, flags: OFlags) -> Result<OwnedFd, OperatorError> {
    if flags.contains(OFlags::DIRECTORY) {
        return Err(OperatorError::BadRequest(format!(
            "'{}' is not a directory",
            path.display()
        )));
    }
    rfs::open(path, flags | OFlags::CLOEXEC, Mode::empty()).map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, e: Errno) -> OperatorError {
    OperatorError::Internal(format!(
        "failed to open '{}': {}",
        path.display(),
        std::io::Error::from(e)
    ))
}

/// One entry of `/files/browse`, as Mesos writes it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileInfo {
    pub gid: String,
    pub mode: String,
    pub mtime: f64,
    pub nlink: u64,
    pub path: String,
    pub size: u64,
    pub uid: String,
    /// `st_mode` as a number (the v1 API's `FileInfo.mode`).
    #[serde(skip)]
    pub raw_mode: u32,
}

/// `/files/browse?path=`: the entries of a directory, sorted by name, each
/// described without following its symlinks.
pub fn browse(attached: &Attached, path: &str) -> Result<Vec<FileInfo>, OperatorError> {
    let resolved = resolve(attached, path)?.ok_or(OperatorError::NotFound)?;
    let dir =
        open(&resolved, OFlags::RDONLY | OFlags::DIRECTORY)?.ok_or(OperatorError::NotFound)?;
    let base = path.trim_end_matches('/');
    let mut out = Vec::new();
    let entries = rfs::Dir::read_from(&dir).map_err(|e| io_error(&resolved.root, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(&resolved.root, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "." || name == ".." {
            continue;
        }
        let Ok(stat) = rfs::statat(&dir, entry.file_name(), rfs::AtFlags::SYMLINK_NOFOLLOW) else {
            continue; // gone meanwhile
        };
        out.push(FileInfo {
            gid: group_name(stat.st_gid),
            mode: mode_string(stat.st_mode),
            mtime: stat.st_mtime as f64,
            nlink: stat.st_nlink,
            path: format!("{base}/{name}"),
            size: u64::try_from(stat.st_size).unwrap_or(0),
            uid: user_name(stat.st_uid),
            raw_mode: stat.st_mode,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// What `/files/read` answers: `{"data": ..., "offset": ...}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Chunk {
    pub data: String,
    pub offset: u64,
}

/// `/files/read`: up to `length` (at most [`MAX_READ`]) bytes from
/// `offset`; `offset` -1 (or absent) means the end of the file, which gives
/// its size in `offset` with no data, as the web UI uses it.
pub fn read(
    attached: &Attached,
    path: &str,
    offset: i64,
    length: i64,
) -> Result<Chunk, OperatorError> {
    let offset = u64::try_from(offset).ok();
    let length = u64::try_from(length).ok();
    let (size, data) = read_bytes(attached, path, offset, length)?;
    Ok(Chunk {
        data: String::from_utf8_lossy(&data).into_owned(),
        offset: offset.unwrap_or(size).min(size),
    })
}

/// The file's size and up to `length` (at most [`MAX_READ`]; `None`: to
/// the end) bytes from `offset` (`None`: the end): what `/files/read` and
/// the v1 API's READ_FILE read. An offset at or past the end reads nothing.
pub fn read_bytes(
    attached: &Attached,
    path: &str,
    offset: Option<u64>,
    length: Option<u64>,
) -> Result<(u64, Vec<u8>), OperatorError> {
    let resolved = resolve(attached, path)?.ok_or(OperatorError::NotFound)?;
    let fd = open(&resolved, OFlags::RDONLY)?.ok_or(OperatorError::NotFound)?;
    let mut file = File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| OperatorError::Internal(format!("failed to stat '{path}': {e}")))?;
    if meta.is_dir() {
        return Err(OperatorError::BadRequest("Cannot read a directory.".into()));
    }
    let size = meta.size();
    let offset = offset.unwrap_or(size);
    if offset >= size {
        return Ok((size, Vec::new()));
    }
    let length = length.unwrap_or(size - offset).min(MAX_READ);
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| OperatorError::Internal(format!("failed to seek '{path}': {e}")))?;
    let mut data = Vec::with_capacity(length as usize);
    file.take(length)
        .read_to_end(&mut data)
        .map_err(|e| OperatorError::Internal(format!("failed to read '{path}': {e}")))?;
    Ok((size, data))
}

/// `/files/download`: the open file and its name.
pub fn download(attached: &Attached, path: &str) -> Result<(File, String), OperatorError> {
    let resolved = resolve(attached, path)?.ok_or(OperatorError::NotFound)?;
    let fd = open(&resolved, OFlags::RDONLY)?.ok_or(OperatorError::NotFound)?;
    let file = File::from(fd);
    let is_dir = file
        .metadata()
        .map_err(|e| OperatorError::Internal(format!("failed to stat '{path}': {e}")))?
        .is_dir();
    if is_dir {
        return Err(OperatorError::BadRequest(
            "Cannot download a directory.".into(),
        ));
    }
    let name = resolved
        .rest
        .last()
        .cloned()
        .or_else(|| {
            resolved
                .root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    Ok((file, name))
}

/// `ls -l`'s mode string.
fn mode_string(mode: u32) -> String {
    let kind = match mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        0o140000 => 's',
        _ => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(kind);
    for (shift, special, set_char) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let x = bits & 1 != 0;
        s.push(match (mode & special != 0, x) {
            (true, true) => set_char,
            (true, false) => set_char.to_ascii_uppercase(),
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A sandbox with stdout, a subdirectory, a link inside and links out.
    fn sandbox() -> (tempfile::TempDir, Attached) {
        let tmp = tempfile::tempdir().unwrap();
        let sb = tmp.path().join("runs/c1");
        std::fs::create_dir_all(sb.join("sub")).unwrap();
        std::fs::write(sb.join("stdout"), b"hello from lab\n").unwrap();
        std::fs::write(sb.join("sub/f"), b"x").unwrap();
        std::fs::write(tmp.path().join("secret"), b"outside").unwrap();
        symlink("stdout", sb.join("inside")).unwrap();
        symlink("/etc/shadow", sb.join("shadow")).unwrap();
        symlink("../../secret", sb.join("up")).unwrap();
        symlink(tmp.path(), sb.join("dirout")).unwrap();
        let mut attached = Attached::new();
        attached.insert(sb.display().to_string(), sb.clone());
        attached.insert("/frameworks/F/executors/E/runs/latest".into(), sb);
        (tmp, attached)
    }

    fn sb_path(a: &Attached) -> String {
        a.keys()
            .find(|k| !k.starts_with("/frameworks"))
            .unwrap()
            .clone()
    }

    #[test]
    fn browse_lists_the_sandbox_under_the_requested_name() {
        let (_t, a) = sandbox();
        let v = "/frameworks/F/executors/E/runs/latest";
        let list = browse(&a, &format!("{v}/")).unwrap();
        let names: Vec<_> = list.iter().map(|f| f.path.as_str()).collect();
        assert!(names.contains(&format!("{v}/stdout").as_str()), "{names:?}");
        let stdout = list.iter().find(|f| f.path.ends_with("/stdout")).unwrap();
        assert_eq!(stdout.size, 15);
        assert_eq!(stdout.mode, "-rw-r--r--");
        assert_eq!(stdout.nlink, 1);
        let sub = list.iter().find(|f| f.path.ends_with("/sub")).unwrap();
        assert!(sub.mode.starts_with('d'));
        let link = list.iter().find(|f| f.path.ends_with("/shadow")).unwrap();
        assert!(link.mode.starts_with('l'), "links are not followed");
        assert_eq!(browse(&a, &format!("{v}/sub")).unwrap().len(), 1);
    }

    #[test]
    fn read_pages_as_the_web_ui_does() {
        let (_t, a) = sandbox();
        let p = format!("{}/stdout", sb_path(&a));
        let all = read(&a, &p, 0, -1).unwrap();
        assert_eq!(
            all,
            Chunk {
                data: "hello from lab\n".into(),
                offset: 0
            }
        );
        // offset=-1: the size, no data.
        assert_eq!(
            read(&a, &p, -1, -1).unwrap(),
            Chunk {
                data: "".into(),
                offset: 15
            }
        );
        assert_eq!(
            read(&a, &p, 6, 4).unwrap(),
            Chunk {
                data: "from".into(),
                offset: 6
            }
        );
        // Past the end: the size.
        assert_eq!(read(&a, &p, 100, 10).unwrap().offset, 15);
        // A huge length is capped, not allocated.
        assert_eq!(read(&a, &p, 0, i64::MAX).unwrap().data.len(), 15);
        // A link inside the sandbox is followed.
        let inside = format!("{}/inside", sb_path(&a));
        assert_eq!(read(&a, &inside, 0, -1).unwrap().data, "hello from lab\n");
    }

    #[test]
    fn the_cap_is_sixteen_pages() {
        let (_t, a) = sandbox();
        let big = a.values().next().unwrap().join("big");
        std::fs::write(&big, vec![b'a'; 200_000]).unwrap();
        let chunk = read(&a, &format!("{}/big", sb_path(&a)), 0, -1).unwrap();
        assert_eq!(chunk.data.len() as u64, MAX_READ);
    }

    #[test]
    fn nothing_outside_the_sandbox_is_reachable() {
        let (_t, a) = sandbox();
        let base = sb_path(&a);
        for rest in ["shadow", "up", "dirout/secret"] {
            let p = format!("{base}/{rest}");
            assert!(
                matches!(read(&a, &p, 0, -1), Err(OperatorError::BadRequest(_))),
                "{rest}"
            );
            assert!(download(&a, &p).is_err(), "{rest}");
        }
        assert!(matches!(
            browse(&a, &format!("{base}/dirout")),
            Err(OperatorError::BadRequest(_))
        ));
        for p in [
            format!("{base}/../../secret"),
            format!("{base}/sub/../../../secret"),
            "/frameworks/F/executors/E/runs/latest/../../../../etc/passwd".to_string(),
        ] {
            assert!(
                matches!(read(&a, &p, 0, -1), Err(OperatorError::BadRequest(_))),
                "{p}"
            );
        }
        // A path that was never attached, or a parent of one: not found.
        for p in ["/etc/passwd", "/frameworks/F", "/", ""] {
            assert!(matches!(browse(&a, p), Err(OperatorError::NotFound)), "{p}");
        }
        assert!(matches!(
            read(&a, &format!("{base}/nope"), 0, -1),
            Err(OperatorError::NotFound)
        ));
    }

    #[test]
    fn directories_are_not_read_or_downloaded() {
        let (_t, a) = sandbox();
        let p = format!("{}/sub", sb_path(&a));
        assert!(matches!(
            read(&a, &p, 0, -1),
            Err(OperatorError::BadRequest(_))
        ));
        assert!(matches!(
            download(&a, &p),
            Err(OperatorError::BadRequest(_))
        ));
        let (mut f, name) = download(&a, &format!("{}/stdout", sb_path(&a))).unwrap();
        assert_eq!(name, "stdout");
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello from lab\n");
    }

    #[test]
    fn mode_strings_match_ls() {
        assert_eq!(mode_string(0o100644), "-rw-r--r--");
        assert_eq!(mode_string(0o040755), "drwxr-xr-x");
        assert_eq!(mode_string(0o041777), "drwxrwxrwt");
        assert_eq!(mode_string(0o104755), "-rwsr-xr-x");
    }
}
