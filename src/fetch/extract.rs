//! Unpacking a fetched artifact into a fresh directory, by format.
//!
//! Tar and single-file gzip are unpacked while they download: one thread
//! reads the source (and, when the archive itself is kept, writes it to its
//! file) and decompresses; the calling thread writes the entries. Like
//! `curl | tar xz`, the network, the decompression and the file system work
//! overlap. Zip needs the whole file first. Everything goes through
//! `crate::archive`, which keeps every entry beneath the destination and
//! caps the total size and the number of entries.

use super::download::{save, Body};
use super::FetchError;
use crate::archive::{self, ArchiveError, Compression, Options};
use crate::support::chunks::{chunk_channel, send_chunks, ChunkReader};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::thread;

/// Decompressed bytes handed from the download thread to the writer.
const CHUNK: usize = 1 << 20;
/// Chunks in flight: enough to ride out a slow file system moment.
const DEPTH: usize = 8;

/// Unpacks a tar stream (compression sniffed) into `dest`; returns the
/// bytes of file content written.
pub(crate) fn tar_stream(
    body: Body,
    dest: &Path,
    opts: &Options,
    uri: &str,
) -> Result<u64, FetchError> {
    pipeline(body, None, uri, dest, |reader| {
        archive::unpack_tar(reader, dest, opts)
            .map(|s| s.bytes)
            .map_err(|source| FetchError::Extract {
                uri: uri.to_string(),
                source,
            })
    })
}

/// Decompresses a gzip stream into the new file `dest/name`.
pub(crate) fn gunzip_stream(
    body: Body,
    dest: &Path,
    name: &OsStr,
    cap: u64,
    uri: &str,
) -> Result<u64, FetchError> {
    let path = dest.join(name);
    pipeline(body, Some(Compression::Gzip), uri, &path, |mut reader| {
        let mut out = File::create(&path).map_err(FetchError::io(uri, "create", &path))?;
        let mut buf = vec![0u8; 256 << 10];
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) => {
                    return Err(FetchError::Extract {
                        uri: uri.to_string(),
                        source: ArchiveError::Read(e),
                    })
                }
            };
            total += n as u64;
            if total > cap {
                return Err(FetchError::Extract {
                    uri: uri.to_string(),
                    source: ArchiveError::TooLarge {
                        entry: name.to_string_lossy().into_owned(),
                        cap,
                    },
                });
            }
            out.write_all(&buf[..n])
                .map_err(FetchError::io(uri, "write", &path))?;
        }
    })
}

/// Downloads a zip archive to `file`, then unpacks it into `dest`.
pub(crate) fn zip(
    body: Body,
    file: &Path,
    dest: &Path,
    opts: &Options,
    uri: &str,
) -> Result<u64, FetchError> {
    save(body, file)?;
    let f = File::open(file).map_err(FetchError::io(uri, "open", file))?;
    archive::unpack_zip(BufReader::new(f), dest, opts)
        .map(|s| s.bytes)
        .map_err(|source| FetchError::Extract {
            uri: uri.to_string(),
            source,
        })
}

/// Runs `consume` on the decompressed body while another thread downloads
/// and decompresses it. `compression` forces a format; `None` sniffs it.
/// The download's own failure, if any, is the error reported: the
/// consumer's is then only its consequence.
fn pipeline<T>(
    body: Body,
    compression: Option<Compression>,
    uri: &str,
    dest: &Path,
    consume: impl FnOnce(ChunkReader) -> Result<T, FetchError>,
) -> Result<T, FetchError> {
    let failure = body.failure();
    let (tx, chunks) = chunk_channel(DEPTH);
    let producer = thread::Builder::new()
        .name("fetch-download".into())
        .spawn(move || {
            let run = || -> io::Result<()> {
                let mut reader = BufReader::with_capacity(256 << 10, body);
                let c = match compression {
                    Some(c) => c,
                    None => Compression::sniff(&mut reader)?,
                };
                let mut decoded = archive::decompress(reader, c)?;
                send_chunks(&mut decoded, &tx, CHUNK)
            };
            let result = run();
            if let Err(e) = &result {
                let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
            }
            result
        })
        .map_err(FetchError::io(uri, "start the download thread for", dest))?;
    let consumed = consume(chunks);
    let produced = producer.join();
    if let Some(f) = failure.take() {
        return Err(f);
    }
    match produced {
        Err(_) => Err(FetchError::Extract {
            uri: uri.to_string(),
            source: ArchiveError::Read(io::Error::other("download thread panicked")),
        }),
        Ok(Err(e)) if consumed.is_ok() => Err(FetchError::Extract {
            uri: uri.to_string(),
            source: ArchiveError::Read(e),
        }),
        _ => consumed,
    }
}

#[cfg(test)]
mod tests {
    use super::super::download::{open, Failure, Limits};
    use super::super::testserver::{Reply, Server};
    use super::super::uri::Plan;
    use super::super::UriSpec;
    use super::*;
    use crate::support::http::{client, HttpConfig};
    use std::time::Duration;

    fn body(srv: &Server, path: &str, cap: u64) -> Body {
        let plan = Plan::new(&UriSpec::new(srv.url(path))).unwrap();
        let agent = client(&HttpConfig {
            read_timeout: Duration::from_millis(300),
            ..HttpConfig::default()
        });
        let limits = Limits {
            cap,
            stall: Duration::from_millis(300),
        };
        open(
            &agent,
            &plan,
            limits,
            &Default::default(),
            Failure::default(),
        )
        .unwrap()
    }

    fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn tar_streams_unpack_and_tee() {
        let srv = Server::start();
        let data = tar_gz(&[("pkg/a.py", b"print(1)\n"), ("pkg/b/c.txt", b"c")]);
        srv.route("/p.tgz", Reply::ok(data.clone()));
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        let mut b = body(&srv, "/p.tgz", 1 << 20);
        let copy = dir.path().join("p.tgz");
        b.tee(File::create(&copy).unwrap(), &copy);
        let n = tar_stream(b, &tree, &Options::default(), "u").unwrap();
        assert_eq!(n, 10);
        assert_eq!(std::fs::read(tree.join("pkg/a.py")).unwrap(), b"print(1)\n");
        assert_eq!(std::fs::read(&copy).unwrap(), data);
    }

    #[test]
    fn a_stall_mid_archive_is_reported_as_the_stall() {
        let srv = Server::start();
        let data = tar_gz(&[("big", &vec![9u8; 200_000])]);
        let half = data.len() / 2;
        srv.route("/s.tgz", Reply::ok(data).stall_after(half));
        let dir = tempfile::tempdir().unwrap();
        let e = tar_stream(
            body(&srv, "/s.tgz", 1 << 20),
            dir.path(),
            &Options::default(),
            "u",
        )
        .unwrap_err();
        assert!(e.to_string().contains("server stalled"), "{e}");
        assert!(e.is_transient());
    }

    #[test]
    fn corrupt_and_hostile_archives_fail_naming_the_problem() {
        let srv = Server::start();
        let mut data = tar_gz(&[("a", &vec![1u8; 100_000])]);
        let mid = data.len() / 2;
        data[mid..mid + 64].fill(0xAB);
        srv.route("/bad.tgz", Reply::ok(data));
        let dir = tempfile::tempdir().unwrap();
        let e = tar_stream(
            body(&srv, "/bad.tgz", 1 << 20),
            dir.path(),
            &Options::default(),
            "http://x/bad.tgz",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("fetch http://x/bad.tgz: extract:"),
            "{e}"
        );
        assert!(!e.is_transient());

        // A decompression bomb: the cap on extracted bytes holds.
        srv.route(
            "/bomb.tgz",
            Reply::ok(tar_gz(&[("zeros", &vec![0u8; 1 << 20])])),
        );
        let opts = Options {
            max_bytes: 1000,
            ..Options::default()
        };
        let e = tar_stream(body(&srv, "/bomb.tgz", 1 << 20), dir.path(), &opts, "u").unwrap_err();
        assert!(e.to_string().contains("size cap"), "{e}");
    }

    #[test]
    fn gunzip_writes_one_file_and_caps_it() {
        let srv = Server::start();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&vec![b'x'; 5000]).unwrap();
        srv.route("/d.csv.gz", Reply::ok(e.finish().unwrap()));
        srv.route("/plain.gz", Reply::ok(b"not gzip at all".to_vec()));
        let dir = tempfile::tempdir().unwrap();
        let n = gunzip_stream(
            body(&srv, "/d.csv.gz", 1 << 20),
            dir.path(),
            OsStr::new("d.csv"),
            1 << 20,
            "u",
        )
        .unwrap();
        assert_eq!(n, 5000);
        assert_eq!(std::fs::read(dir.path().join("d.csv")).unwrap().len(), 5000);
        let e = gunzip_stream(
            body(&srv, "/d.csv.gz", 1 << 20),
            dir.path(),
            OsStr::new("e"),
            100,
            "u",
        )
        .unwrap_err();
        assert!(e.to_string().contains("size cap"), "{e}");
        let e = gunzip_stream(
            body(&srv, "/plain.gz", 1 << 20),
            dir.path(),
            OsStr::new("p"),
            100,
            "u",
        )
        .unwrap_err();
        assert!(e.to_string().contains("extract"), "{e}");
    }

    #[test]
    fn zip_archives_are_saved_then_unpacked() {
        let srv = Server::start();
        let mut w = ::zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let o = ::zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        w.start_file("bin/run.sh", o).unwrap();
        w.write_all(b"#!/bin/sh\necho hi\n").unwrap();
        srv.route("/a.zip", Reply::ok(w.finish().unwrap().into_inner()));
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("t");
        std::fs::create_dir(&tree).unwrap();
        let file = dir.path().join("a.zip");
        zip(
            body(&srv, "/a.zip", 1 << 20),
            &file,
            &tree,
            &Options::default(),
            "u",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(tree.join("bin/run.sh")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o755);
        assert!(file.is_file());
    }
}
