//! Tar extraction against archives built here, hostile ones included.

use super::super::{unpack_tar, ArchiveError, Devices, Options, Whiteouts};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use tar::{EntryType, Header};

/// A tar built entry by entry, with raw names the `tar` crate's builder
/// would refuse.
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Self {
        Tar(tar::Builder::new(Vec::new()))
    }

    fn header(path: &[u8], kind: EntryType, size: u64, mode: u32) -> Header {
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..path.len()].copy_from_slice(path);
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(1_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    fn append(mut self, mut h: Header, data: &[u8]) -> Self {
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn file(self, path: &str, data: &[u8], mode: u32) -> Self {
        let h = Self::header(path.as_bytes(), EntryType::Regular, data.len() as u64, mode);
        self.append(h, data)
    }

    fn dir(self, path: &str, mode: u32) -> Self {
        let h = Self::header(path.as_bytes(), EntryType::Directory, 0, mode);
        self.append(h, &[])
    }

    fn link(self, path: &str, kind: EntryType, target: &str) -> Self {
        let mut h = Self::header(path.as_bytes(), kind, 0, 0o777);
        h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
        self.append(h, &[])
    }

    fn device(self, path: &str) -> Self {
        let mut h = Self::header(path.as_bytes(), EntryType::Char, 0, 0o666);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        self.append(h, &[])
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn opts(whiteouts: Whiteouts) -> Options {
    Options {
        whiteouts,
        same_owner: nix::unistd::geteuid().is_root(),
        xattrs: true,
        ..Options::default()
    }
}

/// A destination inside a parent that also holds a file the archive must
/// never reach.
struct Scene {
    _dir: tempfile::TempDir,
    dest: std::path::PathBuf,
    outside: std::path::PathBuf,
}

impl Scene {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dest");
        let outside = dir.path().join("outside");
        fs::create_dir(&dest).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("file"), "original").unwrap();
        Scene {
            _dir: dir,
            dest,
            outside,
        }
    }

    fn unpack(&self, tar: Vec<u8>, opts: &Options) -> Result<super::Summary, ArchiveError> {
        unpack_tar(&tar[..], &self.dest, opts)
    }

    fn assert_outside_untouched(&self) {
        let names: Vec<_> = fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["file"], "something was written outside");
        assert_eq!(
            fs::read_to_string(self.outside.join("file")).unwrap(),
            "original"
        );
    }
}

#[test]
fn files_dirs_links_modes_and_times_are_restored() {
    let s = Scene::new();
    let tar = Tar::new()
        .dir("usr/", 0o755)
        .dir("usr/bin/", 0o555)
        .file("usr/bin/tool", b"#!/bin/sh\n", 0o4755)
        .file("deep/implicit/parents.txt", b"made", 0o640)
        .link("usr/bin/alias", EntryType::Symlink, "tool")
        .link("usr/bin/hard", EntryType::Link, "usr/bin/tool")
        .file("./dot/./slash//name", b"x", 0o600)
        .bytes();
    let summary = s.unpack(tar, &opts(Whiteouts::Keep)).unwrap();
    assert_eq!(summary.entries, 7);
    assert_eq!(summary.bytes, 15);
    let d = &s.dest;
    let tool = fs::metadata(d.join("usr/bin/tool")).unwrap();
    if nix::unistd::geteuid().is_root() {
        assert_eq!(tool.permissions().mode() & 0o7777, 0o4755);
    }
    assert_eq!(tool.mtime(), 1_000_000);
    assert_eq!(tool.nlink(), 2);
    assert_eq!(
        fs::metadata(d.join("usr/bin"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o555
    );
    assert_eq!(fs::metadata(d.join("usr/bin")).unwrap().mtime(), 1_000_000);
    assert_eq!(
        fs::read_link(d.join("usr/bin/alias")).unwrap(),
        Path::new("tool")
    );
    assert_eq!(
        fs::read_to_string(d.join("deep/implicit/parents.txt")).unwrap(),
        "made"
    );
    assert_eq!(fs::read_to_string(d.join("dot/slash/name")).unwrap(), "x");
    // Make the read-only directory removable for the temp dir's cleanup.
    fs::set_permissions(d.join("usr/bin"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn later_entries_replace_earlier_ones_of_another_kind() {
    let s = Scene::new();
    let tar = Tar::new()
        .file("a", b"file", 0o644)
        .dir("a/", 0o755)
        .file("a/inner", b"in", 0o644)
        .link("b", EntryType::Symlink, "/")
        .dir("b/", 0o755)
        .file("b/x", b"x", 0o644)
        .file("c", b"one", 0o644)
        .file("c", b"two", 0o644)
        .bytes();
    s.unpack(tar, &opts(Whiteouts::Keep)).unwrap();
    assert!(s.dest.join("a").is_dir());
    assert!(!s.dest.join("b").is_symlink());
    assert_eq!(fs::read_to_string(s.dest.join("b/x")).unwrap(), "x");
    assert_eq!(fs::read_to_string(s.dest.join("c")).unwrap(), "two");
}

/// Each hostile archive is rejected naming the entry, and nothing outside
/// the destination is created, changed or removed.
#[test]
fn hostile_archives_are_rejected_naming_the_entry() {
    type Case = (&'static str, Box<dyn Fn(&str) -> Tar>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "parent traversal",
            Box::new(|_| Tar::new().file("../file", b"pwned", 0o644)),
            "../file",
        ),
        (
            "nested traversal",
            Box::new(|_| Tar::new().file("a/b/../../../file", b"pwned", 0o644)),
            "a/b/../../../file",
        ),
        (
            "absolute path",
            Box::new(|o| Tar::new().file(&format!("{o}/new"), b"x", 0o644)),
            "/",
        ),
        (
            "symlink escape then write through it",
            Box::new(|o| {
                Tar::new()
                    .link("evil", EntryType::Symlink, o)
                    .file("evil/file", b"pwned", 0o644)
            }),
            "evil/file",
        ),
        (
            "relative symlink escape then write through it",
            Box::new(|_| {
                Tar::new()
                    .link("up", EntryType::Symlink, "../outside")
                    .file("up/new", b"pwned", 0o644)
            }),
            "up/new",
        ),
        (
            "symlink escape then a directory through it",
            Box::new(|o| {
                Tar::new()
                    .link("evil", EntryType::Symlink, o)
                    .dir("evil/sub/", 0o755)
            }),
            "evil/sub/",
        ),
        (
            "hardlink to outside",
            Box::new(|_| Tar::new().link("h", EntryType::Link, "../outside/file")),
            "h",
        ),
        (
            "hardlink to an absolute path",
            Box::new(|o| Tar::new().link("h", EntryType::Link, &format!("{o}/file"))),
            "h",
        ),
        (
            "hardlink through an escaping symlink",
            Box::new(|o| {
                Tar::new().link("evil", EntryType::Symlink, o).link(
                    "h",
                    EntryType::Link,
                    "evil/file",
                )
            }),
            "h",
        ),
        (
            "whiteout of ..",
            Box::new(|_| Tar::new().dir("d/", 0o755).file("d/.wh...", b"", 0o644)),
            "d/.wh...",
        ),
        (
            "whiteout through an escaping symlink",
            Box::new(|o| {
                Tar::new()
                    .link("evil", EntryType::Symlink, o)
                    .file("evil/.wh.file", b"", 0o644)
            }),
            "evil/.wh.file",
        ),
    ];
    for (what, build, entry) in cases {
        for mode in [Whiteouts::Overlay, Whiteouts::Apply] {
            let s = Scene::new();
            let o = s.outside.to_str().unwrap().to_string();
            let err = s.unpack(build(&o).bytes(), &opts(mode)).expect_err(what);
            let msg = err.to_string();
            assert!(
                matches!(err, ArchiveError::Rejected { .. }),
                "{what}: {msg}"
            );
            assert!(msg.contains(entry), "{what}: {msg} should name {entry}");
            s.assert_outside_untouched();
        }
    }
}

#[test]
fn a_hardlink_to_a_symlink_links_the_symlink_not_its_target() {
    let s = Scene::new();
    let o = format!("{}/file", s.outside.display());
    let tar = Tar::new()
        .link("s", EntryType::Symlink, &o)
        .link("h", EntryType::Link, "s")
        .file("h", b"pwned", 0o644)
        .bytes();
    s.unpack(tar, &opts(Whiteouts::Overlay)).unwrap();
    s.assert_outside_untouched();
}

#[test]
fn devices_are_skipped_by_default_rejected_or_created_on_request() {
    let s = Scene::new();
    let tar = || {
        Tar::new()
            .device("dev/null2")
            .file("ok", b"ok", 0o644)
            .bytes()
    };
    let summary = s.unpack(tar(), &opts(Whiteouts::Overlay)).unwrap();
    assert_eq!(summary.skipped_devices, 1);
    assert!(!s.dest.join("dev/null2").exists());
    let reject = Options {
        devices: Devices::Reject,
        ..opts(Whiteouts::Overlay)
    };
    let err = s.unpack(tar(), &reject).unwrap_err();
    assert!(err.to_string().contains("dev/null2"), "{err}");
    if nix::unistd::geteuid().is_root() {
        let create = Options {
            devices: Devices::Create,
            ..opts(Whiteouts::Overlay)
        };
        s.unpack(tar(), &create).unwrap();
        let meta = fs::symlink_metadata(s.dest.join("dev/null2")).unwrap();
        assert!(meta.file_type().is_char_device());
        assert_eq!(meta.rdev(), nix::sys::stat::makedev(1, 3));
    }
}

#[test]
fn size_caps_stop_sparse_giants_and_decompression_bombs() {
    // A header that declares 10 GB is refused before anything is read.
    let s = Scene::new();
    let mut h = Tar::header(b"huge", EntryType::Regular, 10 << 30, 0o644);
    h.set_cksum();
    let mut raw = h.as_bytes().to_vec();
    raw.extend(vec![0u8; 1024]);
    let capped = Options {
        max_bytes: 64 << 20,
        ..opts(Whiteouts::Overlay)
    };
    let err = unpack_tar(&raw[..], &s.dest, &capped).unwrap_err();
    assert!(matches!(err, ArchiveError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("huge"), "{err}");

    // 64 MiB of zeros, a few hundred KB gzipped, against a 16 MiB cap.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(&mut gz);
    let mut h = Tar::header(b"bomb", EntryType::Regular, 64 << 20, 0o644);
    h.set_cksum();
    b.append(&h, std::io::repeat(0).take_bytes(64 << 20))
        .unwrap();
    b.finish().unwrap();
    drop(b);
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 1 << 20, "{}", gz.len());
    let s = Scene::new();
    let capped = Options {
        max_bytes: 16 << 20,
        ..opts(Whiteouts::Overlay)
    };
    let reader = flate2::read::GzDecoder::new(&gz[..]);
    let err = unpack_tar(reader, &s.dest, &capped).unwrap_err();
    assert!(err.to_string().contains("bomb"), "{err}");
    assert!(err.to_string().contains("size cap"), "{err}");

    let many = (0..20).fold(Tar::new(), |t, i| t.file(&format!("f{i}"), b"", 0o644));
    let few = Options {
        max_entries: 10,
        ..opts(Whiteouts::Overlay)
    };
    let err = s.unpack(many.bytes(), &few).unwrap_err();
    assert!(
        matches!(err, ArchiveError::TooManyEntries { cap: 10 }),
        "{err}"
    );
}

trait TakeBytes {
    fn take_bytes(self, n: u64) -> std::io::Take<std::io::Repeat>;
}

impl TakeBytes for std::io::Repeat {
    fn take_bytes(self, n: u64) -> std::io::Take<std::io::Repeat> {
        std::io::Read::take(self, n)
    }
}

#[test]
fn overlay_whiteouts_become_devices_and_opaque_xattrs() {
    let s = Scene::new();
    let tar = Tar::new()
        .dir("etc/", 0o755)
        .file("etc/.wh.gone", b"", 0o644)
        .dir("opt/opaque/", 0o755)
        .file("opt/opaque/.wh..wh..opq", b"", 0o644)
        .file("opt/opaque/new.txt", b"new", 0o644)
        .bytes();
    s.unpack(tar, &opts(Whiteouts::Overlay)).unwrap();
    let gone = fs::symlink_metadata(s.dest.join("etc/gone")).unwrap();
    assert!(gone.file_type().is_char_device());
    assert_eq!(gone.rdev(), 0);
    assert!(!s.dest.join("etc/.wh.gone").exists());
    assert!(!s.dest.join("opt/opaque/.wh..wh..opq").exists());
    if nix::unistd::geteuid().is_root() {
        let value = rustix::fs::getxattr(
            s.dest.join("opt/opaque"),
            "trusted.overlay.opaque",
            &mut [0u8; 8],
        );
        assert_eq!(value.unwrap(), 1);
    }
}

#[test]
fn applied_whiteouts_delete_from_earlier_layers() {
    let s = Scene::new();
    let lower = Tar::new()
        .file("etc/gone", b"old", 0o644)
        .file("etc/kept", b"kept", 0o644)
        .file("opt/opaque/old.txt", b"old", 0o644)
        .file("opt/opaque/sub/older.txt", b"old", 0o644)
        .bytes();
    let upper = Tar::new()
        .file("etc/.wh.gone", b"", 0o644)
        .file("opt/opaque/new.txt", b"new", 0o644)
        .file("opt/opaque/.wh..wh..opq", b"", 0o644)
        .bytes();
    s.unpack(lower, &opts(Whiteouts::Apply)).unwrap();
    s.unpack(upper, &opts(Whiteouts::Apply)).unwrap();
    assert!(!s.dest.join("etc/gone").exists());
    assert!(s.dest.join("etc/kept").exists());
    assert!(!s.dest.join("opt/opaque/old.txt").exists());
    assert!(!s.dest.join("opt/opaque/sub").exists());
    assert_eq!(
        fs::read_to_string(s.dest.join("opt/opaque/new.txt")).unwrap(),
        "new"
    );
}

#[test]
fn the_whole_stream_is_read_even_past_the_end_of_archive() {
    struct Counting<'a>(&'a [u8], usize);
    impl std::io::Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = std::io::Read::read(&mut self.0, buf)?;
            self.1 += n;
            Ok(n)
        }
    }
    let s = Scene::new();
    let mut tar = Tar::new().file("a", b"a", 0o644).bytes();
    tar.extend(vec![0u8; 10_000]);
    let mut counting = Counting(&tar, 0);
    unpack_tar(&mut counting, &s.dest, &opts(Whiteouts::Keep)).unwrap();
    assert_eq!(counting.1, tar.len());
}

#[test]
fn zip_archives_follow_the_same_rules() {
    use zip::write::SimpleFileOptions;
    let build = |entries: &[(&str, &[u8], Option<u32>)]| {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data, mode) in entries {
            let mut o = SimpleFileOptions::default();
            if let Some(m) = mode {
                o = o.unix_permissions(*m);
            }
            if name.ends_with('/') {
                w.add_directory(*name, o).unwrap();
            } else if mode.is_some_and(|m| m & 0o170000 == 0o120000) {
                w.add_symlink(*name, std::str::from_utf8(data).unwrap(), o)
                    .unwrap();
            } else {
                w.start_file(*name, o).unwrap();
                w.write_all(data).unwrap();
            }
        }
        w.finish().unwrap().into_inner()
    };
    let s = Scene::new();
    let ok = build(&[
        ("app/", b"", None),
        ("app/run.sh", b"echo hi", Some(0o755)),
        ("app/data.txt", b"d", None),
    ]);
    super::super::unpack_zip(std::io::Cursor::new(ok), &s.dest, &Options::default()).unwrap();
    assert_eq!(
        fs::metadata(s.dest.join("app/run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    assert_eq!(
        fs::read_to_string(s.dest.join("app/data.txt")).unwrap(),
        "d"
    );

    let o = format!("{}", s.outside.display());
    for (entries, entry) in [
        (vec![("../escape", &b"x"[..], None)], "../escape"),
        (
            vec![
                ("link", o.as_bytes(), Some(0o120777)),
                ("link/new", &b"x"[..], None),
            ],
            "link/new",
        ),
    ] {
        let z = build(&entries);
        let err = super::super::unpack_zip(std::io::Cursor::new(z), &s.dest, &Options::default())
            .unwrap_err();
        assert!(err.to_string().contains(entry), "{err}");
        s.assert_outside_untouched();
    }
}
