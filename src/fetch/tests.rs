//! The fetcher end to end against a local HTTP server: what lands in the
//! sandbox, what the cache keeps, and what a user reads when it fails.

use super::testserver::{Reply, Server};
use super::*;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use tar::{EntryType, Header};

struct Scene {
    dir: tempfile::TempDir,
    srv: Server,
}

impl Scene {
    fn new() -> Scene {
        Scene {
            dir: tempfile::tempdir().unwrap(),
            srv: Server::start(),
        }
    }

    fn config(&self) -> FetchConfig {
        let mut c = FetchConfig::new(&self.dir.path().join("work"));
        c.http.read_timeout = Duration::from_millis(500);
        c.retry_delay = Duration::from_millis(10);
        c
    }

    fn fetcher(&self) -> Fetcher {
        Fetcher::new(self.config())
    }

    /// A fresh, empty sandbox.
    fn sandbox(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join("sandboxes").join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }

    fn url(&self, path: &str) -> String {
        self.srv.url(path)
    }

    fn spec(&self, path: &str, opts: &str) -> UriSpec {
        format!("{}{opts}", self.url(path)).parse().unwrap()
    }
}

/// Names in `dir`, sorted.
fn ls(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().mode() & 0o7777
}

/// A tar with raw names, hostile ones included.
fn tar(entries: &[(&str, EntryType, &[u8], &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, data, link) in entries {
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(if *kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn package() -> Vec<u8> {
    gz(&tar(&[
        ("pkg/", EntryType::Directory, b"", ""),
        ("pkg/__init__.py", EntryType::Regular, b"", ""),
        ("pkg/main.py", EntryType::Regular, b"print('hi')\n", ""),
    ]))
}

#[test]
fn a_plain_file_is_named_after_the_uri_or_output_file() {
    let s = Scene::new();
    s.srv.route("/app.jar", Reply::ok(b"jar bytes".to_vec()));
    let sb = s.sandbox("a");
    let f = s
        .fetcher()
        .fetch(
            &[
                s.spec("/app.jar", ""),
                s.spec("/app.jar", ",output_file=lib/renamed.jar"),
            ],
            &sb,
            &FetchUser::default(),
        )
        .unwrap();
    assert_eq!(f[0].path, sb.join("app.jar"));
    assert_eq!(f[0].downloaded, 9);
    assert!(!f[0].from_cache);
    assert_eq!(fs::read(sb.join("lib/renamed.jar")).unwrap(), b"jar bytes");
    assert_eq!(ls(&sb), ["app.jar", "lib"], "no staging left");
    assert_eq!(mode(&sb.join("app.jar")) & 0o111, 0);
}

#[test]
fn executable_sets_the_mode_and_is_never_extracted() {
    let s = Scene::new();
    s.srv.route("/run.tgz", Reply::ok(package()));
    let sb = s.sandbox("x");
    s.fetcher()
        .fetch(
            &[s.spec("/run.tgz", ",executable")],
            &sb,
            &FetchUser::default(),
        )
        .unwrap();
    assert_eq!(ls(&sb), ["run.tgz"]);
    assert_eq!(mode(&sb.join("run.tgz")), 0o755);
}

#[test]
fn archives_are_unpacked_next_to_the_archive_unless_noextract() {
    let s = Scene::new();
    s.srv.route("/pkg.tar.gz", Reply::ok(package()));
    let mut z = ::zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    z.start_file("z.txt", ::zip::write::SimpleFileOptions::default())
        .unwrap();
    z.write_all(b"zipped").unwrap();
    s.srv
        .route("/a.zip", Reply::ok(z.finish().unwrap().into_inner()));
    s.srv.route("/data.csv.gz", Reply::ok(gz(b"a,b\n1,2\n")));
    s.srv.route(
        "/keep.tar",
        Reply::ok(tar(&[("k", EntryType::Regular, b"k", "")])),
    );
    let sb = s.sandbox("e");
    s.fetcher()
        .fetch(
            &[
                s.spec("/pkg.tar.gz", ""),
                s.spec("/a.zip", ""),
                s.spec("/data.csv.gz", ""),
                s.spec("/keep.tar", ",noextract"),
            ],
            &sb,
            &FetchUser::default(),
        )
        .unwrap();
    assert_eq!(
        ls(&sb),
        [
            "a.zip",
            "data.csv",
            "data.csv.gz",
            "keep.tar",
            "pkg",
            "pkg.tar.gz",
            "z.txt"
        ]
    );
    assert_eq!(fs::read(sb.join("pkg/main.py")).unwrap(), b"print('hi')\n");
    assert_eq!(fs::read(sb.join("data.csv")).unwrap(), b"a,b\n1,2\n");
    assert_eq!(fs::read(sb.join("pkg.tar.gz")).unwrap(), package());
}

#[test]
fn cached_uris_download_once_and_are_hard_linked_read_only() {
    let s = Scene::new();
    s.srv.route("/pkg.tgz", Reply::ok(package()));
    s.srv
        .route("/tool.sh", Reply::ok(b"#!/bin/sh\necho tool\n".to_vec()));
    let fetcher = s.fetcher();
    let uris = [
        s.spec("/pkg.tgz", ",cache"),
        s.spec("/tool.sh", ",cache,executable"),
    ];
    let (a, b) = (s.sandbox("a"), s.sandbox("b"));
    let first = fetcher.fetch(&uris, &a, &FetchUser::default()).unwrap();
    let second = fetcher.fetch(&uris, &b, &FetchUser::default()).unwrap();
    assert_eq!(s.srv.hits("/pkg.tgz"), 1);
    assert_eq!(s.srv.hits("/tool.sh"), 1);
    assert!(!first[0].from_cache && second[0].from_cache);
    assert_eq!(second[0].downloaded, 0);
    // Only the unpacked files, as Mesos does for cached archives.
    assert_eq!(ls(&b), ["pkg", "tool.sh"]);
    let (x, y) = (a.join("pkg/main.py"), b.join("pkg/main.py"));
    assert_eq!(
        fs::metadata(&x).unwrap().ino(),
        fs::metadata(&y).unwrap().ino()
    );
    assert_eq!(mode(&y) & 0o222, 0, "linked files are read-only");
    // The executable is a copy of its own.
    assert_eq!(mode(&b.join("tool.sh")), 0o755);
    assert_ne!(
        fs::metadata(a.join("tool.sh")).unwrap().ino(),
        fs::metadata(b.join("tool.sh")).unwrap().ino()
    );
    // Another user has a cache of its own.
    fetcher
        .fetch(&uris[..1], &s.sandbox("c"), &FetchUser::named("alice"))
        .unwrap();
    assert_eq!(s.srv.hits("/pkg.tgz"), 2);
}

#[test]
fn concurrent_fetches_of_one_uri_download_it_once() {
    let s = Scene::new();
    s.srv.route(
        "/big.tgz",
        Reply::ok(gz(&tar(&[(
            "blob",
            EntryType::Regular,
            &vec![3u8; 3 << 20],
            "",
        )]))),
    );
    let fetcher = Arc::new(s.fetcher());
    let spec = s.spec("/big.tgz", ",cache");
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let (f, spec, sb) = (fetcher.clone(), spec.clone(), s.sandbox(&format!("t{i}")));
            std::thread::spawn(move || {
                f.fetch(&[spec], &sb, &FetchUser::default()).unwrap();
                fs::metadata(sb.join("blob")).unwrap().len()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 3 << 20);
    }
    assert_eq!(s.srv.hits("/big.tgz"), 1);
}

#[test]
fn eviction_keeps_the_cache_under_its_limit() {
    let s = Scene::new();
    for n in 0..4 {
        s.srv.route(&format!("/f{n}.bin"), Reply::ok(vec![n; 1000]));
    }
    let mut config = s.config();
    config.cache_size = 2500;
    let fetcher = Fetcher::new(config.clone());
    let cache = Cache::new(config.cache_dir.clone(), config.cache_size);
    for n in 0..4 {
        let sb = s.sandbox(&format!("s{n}"));
        fetcher
            .fetch(
                &[s.spec(&format!("/f{n}.bin"), ",cache")],
                &sb,
                &FetchUser::default(),
            )
            .unwrap();
        assert!(cache.usage() <= 2500, "{} bytes cached", cache.usage());
        std::thread::sleep(Duration::from_millis(10));
    }
    // f0 was evicted: fetching it again downloads it again; f3 is still there.
    let sb = s.sandbox("again");
    fetcher
        .fetch(
            &[s.spec("/f0.bin", ",cache"), s.spec("/f3.bin", ",cache")],
            &sb,
            &FetchUser::default(),
        )
        .unwrap();
    assert_eq!(s.srv.hits("/f0.bin"), 2);
    assert_eq!(s.srv.hits("/f3.bin"), 1);
    // An artifact larger than the whole cache is still fetched, not kept.
    s.srv.route("/huge.bin", Reply::ok(vec![9; 4000]));
    let f = fetcher
        .fetch(&[s.spec("/huge.bin", ",cache")], &sb, &FetchUser::default())
        .unwrap();
    assert_eq!(fs::metadata(&f[0].path).unwrap().len(), 4000);
    assert!(cache.usage() <= 2500);
}

#[test]
fn failures_name_the_uri_and_leave_the_sandbox_as_it_was() {
    let s = Scene::new();
    let fetcher = s.fetcher();
    let sb = s.sandbox("f");
    let user = FetchUser::default();

    let e = fetcher
        .fetch(&[s.spec("/missing.jar", "")], &sb, &user)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("fetch {}: HTTP 404 Not Found", s.url("/missing.jar"))
    );
    assert_eq!(s.srv.hits("/missing.jar"), 1, "a 404 is not retried");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = format!("http://127.0.0.1:{port}/app.jar");
    let e = fetcher
        .fetch(&[UriSpec::new(&refused)], &sb, &user)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!("fetch {refused}: ")) && e.contains("onnection refused"),
        "{e}"
    );

    s.srv
        .route("/stall.tgz", Reply::ok(package()).stall_after(20));
    let e = fetcher
        .fetch(&[s.spec("/stall.tgz", ",cache")], &sb, &user)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&s.url("/stall.tgz")) && e.contains("server stalled"),
        "{e}"
    );
    assert_eq!(s.srv.hits("/stall.tgz"), 4, "retried 3 times");

    let mut small = s.config();
    small.max_size = 100;
    s.srv.route("/big.jar", Reply::ok(vec![0; 1000]));
    let e = Fetcher::new(small)
        .fetch(&[s.spec("/big.jar", "")], &sb, &user)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "fetch {}: artifact of 1000 B is over the size cap of 100 B",
            s.url("/big.jar")
        )
    );

    // A bad URI anywhere in the list: nothing is downloaded.
    s.srv.route("/ok.txt", Reply::ok(b"ok".to_vec()));
    let e = fetcher
        .fetch(
            &[s.spec("/ok.txt", ""), UriSpec::new("ftp://h/x")],
            &sb,
            &user,
        )
        .unwrap_err();
    assert!(matches!(e, FetchError::InvalidUri { .. }), "{e}");
    assert_eq!(s.srv.hits("/ok.txt"), 0);

    assert!(ls(&sb).is_empty(), "sandbox: {:?}", ls(&sb));
    let tmp = s.dir.path().join("work/fetch-cache/tmp");
    assert!(ls(&tmp).is_empty(), "cache staging: {:?}", ls(&tmp));
}

#[test]
fn transient_server_errors_are_retried() {
    let s = Scene::new();
    s.srv
        .route("/flaky.txt", Reply::ok(b"finally".to_vec()).fail_first(2));
    let sb = s.sandbox("r");
    s.fetcher()
        .fetch(&[s.spec("/flaky.txt", "")], &sb, &FetchUser::default())
        .unwrap();
    assert_eq!(fs::read(sb.join("flaky.txt")).unwrap(), b"finally");
    assert_eq!(s.srv.hits("/flaky.txt"), 3);
}

#[test]
fn hostile_archives_fail_naming_the_entry_and_write_nothing_outside() {
    let s = Scene::new();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "dotdot.tar",
            tar(&[("../../evil", EntryType::Regular, b"x", "")]),
            "../../evil",
        ),
        (
            "abs.tar",
            tar(&[("/tmp/evil", EntryType::Regular, b"x", "")]),
            "/tmp/evil",
        ),
        (
            "symlink.tar",
            tar(&[
                ("esc", EntryType::Symlink, b"", "../../.."),
                ("esc/evil", EntryType::Regular, b"x", ""),
            ]),
            "esc/evil",
        ),
        (
            "bomb.tar.gz",
            gz(&tar(&[(
                "zeros",
                EntryType::Regular,
                &vec![0u8; 1 << 20],
                "",
            )])),
            "size cap",
        ),
    ];
    let mut config = s.config();
    config.max_size = 512 << 10;
    let fetcher = Fetcher::new(config);
    for (name, data, why) in cases {
        s.srv.route(&format!("/{name}"), Reply::ok(data));
        for opts in ["", ",cache"] {
            let sb = s.sandbox(&format!("{name}{opts}"));
            let e = fetcher
                .fetch(
                    &[s.spec(&format!("/{name}"), opts)],
                    &sb,
                    &FetchUser::default(),
                )
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&s.url(&format!("/{name}"))) && e.contains(why),
                "{e}"
            );
            assert!(ls(&sb).is_empty(), "{name}{opts}: {:?}", ls(&sb));
        }
    }
    assert_eq!(ls(&s.dir.path().join("sandboxes")).len(), 8);
    assert!(!s.dir.path().join("evil").exists());
}

#[test]
fn local_paths_are_copied_and_checked_against_the_user() {
    let s = Scene::new();
    let src = s.dir.path().join("srv");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("job.py"), "print('local')\n").unwrap();
    let sb = s.sandbox("l");
    let uri = src.join("job.py").to_string_lossy().into_owned();
    s.fetcher()
        .fetch(
            &[UriSpec::new(&uri), UriSpec::new(format!("file://{uri}"))],
            &sb,
            &FetchUser::default(),
        )
        .unwrap();
    assert_eq!(fs::read(sb.join("job.py")).unwrap(), b"print('local')\n");

    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(src.join("job.py"), fs::Permissions::from_mode(0o600)).unwrap();
    let me = nix::unistd::geteuid().as_raw();
    let stranger = FetchUser {
        name: Some("stranger".into()),
        ids: Some(UserIds {
            uid: me.wrapping_add(4321),
            gid: 4321,
            groups: vec![4321],
        }),
    };
    let e = s
        .fetcher()
        .fetch(&[UriSpec::new(&uri)], &s.sandbox("l2"), &stranger)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("fetch {uri}: {uri} is not readable by user stranger")
    );
}
