//! Task log rotation inside the built-in executor (Mesos'
//! `LogrotateContainerLogger` semantics, without its helper processes).
//!
//! Why here: the agent hands the executor its `stdout` and `stderr` files
//! and the executor's tasks inherit them. When the agent asks for rotation
//! ([`LOGROTATE_ENV`]), the executor, before it starts anything, puts the
//! write ends of two pipes (1 MiB each) in place of its own stdout and
//! stderr, and drains the read ends into the sandbox files from two
//! threads, rotating them as they fill. So:
//! - no process per container or stream (Mesos runs two
//!   `mesos-logrotate-logger`s per container): two threads of a process
//!   that exists anyway;
//! - an agent restart changes nothing: the agent holds neither end (an
//!   agent that read the pipes would leave tasks blocked, or killed by
//!   SIGPIPE, while it is down);
//! - a task blocks on its output only as long as the disk takes to take
//!   it, as with a plain file: the thread does nothing else, moves bytes
//!   with `splice` (no copy through user space), and on a write error
//!   drops bytes rather than stop draining;
//! - the pipes end with the container: when the executor exits it closes
//!   its ends and the threads drain what tasks wrote before they stop;
//! - a task's terminal update waits for what it wrote to reach the files
//!   ([`Watch::settle`]), so the sandbox is complete when the framework
//!   hears the task ended.
//!
//! Files stay within the cap: before bytes would take `stdout` past
//! `max_size`, it becomes `stdout.1` (`stdout.1` becomes `stdout.2`, ...;
//! the one past `keep` is deleted) and a new `stdout` is started. The
//! threads never write to the executor's own stderr (it is one of their
//! pipes): their own failures are dropped.

use crate::proto::launch::{Logrotate, Rotation};
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

pub use crate::proto::launch::LOGROTATE_ENV;

/// The size asked for each pipe (the unprivileged maximum by default).
const PIPE_SIZE: i32 = 1 << 20;
/// The most bytes moved by one `splice`.
const CHUNK: usize = 1 << 20;
/// How long the executor waits at its exit for the threads to drain.
const DRAIN: Duration = Duration::from_secs(5);

/// One stream's file in the sandbox, rotated as it fills.
pub struct Rotator {
    dir: PathBuf,
    name: String,
    rotation: Rotation,
    /// Owner given to the files this process creates (when root in a
    /// sandbox that belongs to someone else).
    owner: Option<(u32, u32)>,
    /// `None` while a new file cannot be opened: bytes are dropped.
    file: Option<File>,
    size: u64,
    /// Bytes taken off the pipe so far (written or dropped), for
    /// [`Watch::settle`].
    moved: Arc<AtomicU64>,
}

impl Rotator {
    /// Opens `<dir>/<name>` to append to it (created if missing).
    pub fn open(dir: &Path, name: &str, rotation: Rotation) -> io::Result<Rotator> {
        let meta = fs::metadata(dir)?;
        let owner =
            (nix::unistd::geteuid().is_root() && meta.uid() != 0).then(|| (meta.uid(), meta.gid()));
        let mut r = Rotator {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            rotation,
            owner,
            file: None,
            size: 0,
            moved: Arc::default(),
        };
        let mut file = r.open_file(false)?;
        r.size = file.seek(SeekFrom::End(0))?;
        r.file = Some(file);
        Ok(r)
    }

    fn path(&self, n: u32) -> PathBuf {
        match n {
            0 => self.dir.join(&self.name),
            n => self.dir.join(format!("{}.{n}", self.name)),
        }
    }

    /// Opens the leading file for writing (not `O_APPEND`: `splice` refuses
    /// it), never through a symlink.
    fn open_file(&self, truncate: bool) -> io::Result<File> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(truncate)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(self.path(0))?;
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
        Ok(file)
    }

    /// Room left in the leading file, rotating first when it is full (or
    /// opening it again after it could not be, without shifting the
    /// rotated files once more).
    fn room(&mut self) -> u64 {
        if self.file.is_none() {
            match self.open_file(false) {
                Ok(mut f) => {
                    self.size = f.seek(SeekFrom::End(0)).unwrap_or(0);
                    self.file = Some(f);
                }
                // Bytes are dropped until it can be opened.
                Err(_) => return self.rotation.max_size,
            }
        }
        if self.size >= self.rotation.max_size {
            self.rotate();
        }
        self.rotation.max_size.saturating_sub(self.size)
    }

    /// Shifts `name.i` to `name.i+1` (dropping what passes `keep`) and
    /// `name` to `name.1`, then starts a new `name`. If a rename fails the
    /// leading file is emptied instead, so the cap still holds.
    fn rotate(&mut self) {
        self.file = None;
        let last = match self.rotation.keep {
            Some(n) => n,
            // Keep all: shift every existing one up.
            None => (1..).find(|n| !self.path(*n).exists()).unwrap_or(1),
        };
        let shifted = (|| -> io::Result<()> {
            if last == 0 {
                return remove(&self.path(0));
            }
            remove(&self.path(last))?;
            for n in (1..last).rev() {
                rename(&self.path(n), &self.path(n + 1))?;
            }
            rename(&self.path(0), &self.path(1))
        })();
        // Truncating: a failed rename must not lift the cap.
        self.file = self.open_file(true).ok();
        if shifted.is_err() {
            if let Some(f) = &self.file {
                let _ = f.set_len(0);
            }
        }
        self.size = 0;
    }

    /// Appends DATA, rotating as needed (bytes that cannot be written are
    /// dropped: the reader must keep draining).
    pub fn write(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = self.room();
            let n = data.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            if let Some(f) = &mut self.file {
                let _ = f.write_all(&data[..n]);
                self.size += n as u64;
            }
            data = &data[n..];
        }
    }

    /// Moves what arrives on PIPE into the files until every writer has
    /// closed it.
    pub fn drain(&mut self, pipe: &OwnedFd) {
        let mut buf = Vec::new();
        loop {
            let room = self.room();
            let len = CHUNK.min(usize::try_from(room).unwrap_or(CHUNK));
            let moved = match &self.file {
                Some(f) => splice(
                    pipe.as_fd(),
                    None,
                    f.as_fd(),
                    None,
                    len,
                    SpliceFFlags::SPLICE_F_MOVE,
                ),
                None => Err(nix::errno::Errno::EBADF),
            };
            match moved {
                Ok(0) => return,
                Ok(n) => {
                    self.size += n as u64;
                    self.moved.fetch_add(n as u64, Ordering::Release);
                }
                Err(nix::errno::Errno::EINTR) => {}
                // No splice into this file (or it failed): copy, and drop
                // what cannot be written.
                Err(_) => {
                    buf.resize(len.min(64 << 10), 0);
                    match nix::unistd::read(pipe.as_raw_fd(), &mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            self.write(&buf[..n]);
                            self.moved.fetch_add(n as u64, Ordering::Release);
                        }
                        Err(nix::errno::Errno::EINTR) => {}
                        Err(_) => return,
                    }
                }
            }
        }
    }
}

fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn rename(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The executor's stdout and stderr, now pipes; nothing drains them yet.
pub struct Redirected {
    /// (the descriptor replaced, the pipe's read end, its file)
    streams: Vec<(i32, OwnedFd, Rotator)>,
}

/// The threads draining the pipes.
pub struct Logger {
    done: mpsc::Receiver<()>,
    threads: usize,
}

/// A view of the pipes' read ends, to wait until what tasks wrote has
/// reached the files.
pub struct Watch {
    streams: Vec<Watched>,
}

/// One pipe as [`Watch`] sees it.
struct Watched {
    read: OwnedFd,
    /// Its thread's count of bytes taken off it.
    moved: Arc<AtomicU64>,
    /// What it can hold.
    capacity: u64,
}

/// How long [`Watch::settle`] waits at most.
const SETTLE: Duration = Duration::from_secs(2);

impl Watch {
    /// Waits until what the pipes held when called has reached the files
    /// (two seconds at most), so that whoever reads them after a task's
    /// terminal update sees all it wrote: a pipe is done once it is empty,
    /// or once its thread has taken a whole pipeful off it since (FIFO: the
    /// older bytes went first), so that other tasks still writing do not
    /// hold this up. A thread takes bytes off a pipe only by writing them
    /// out (or dropping what cannot be written).
    pub fn settle(&self) {
        let deadline = Instant::now() + SETTLE;
        let start: Vec<u64> = self
            .streams
            .iter()
            .map(|w| w.moved.load(Ordering::Acquire))
            .collect();
        loop {
            let waiting = self.streams.iter().zip(&start).any(|(w, from)| {
                let taken = w.moved.load(Ordering::Acquire).saturating_sub(*from);
                taken < w.capacity && readable(&w.read)
            });
            if !waiting || Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Whether a pipe holds bytes (a closed one, or an error, counts as empty).
fn readable(fd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) => fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN)),
        Err(nix::errno::Errno::EINTR) => true,
        Err(_) => false,
    }
}

/// Puts pipes in place of this process' stdout and stderr, for the files
/// `stdout` and `stderr` of SANDBOX. Call before any thread or child
/// starts (children inherit the pipes). On error nothing is changed.
pub fn redirect(sandbox: &Path, config: &Logrotate) -> io::Result<Redirected> {
    let rotators = [
        Rotator::open(sandbox, "stdout", config.stdout)?,
        Rotator::open(sandbox, "stderr", config.stderr)?,
    ];
    let pipes = [pipe()?, pipe()?];
    let _ = io::stdout().flush();
    let mut streams = Vec::new();
    for ((target, (read, write)), rotator) in [1, 2].into_iter().zip(pipes).zip(rotators) {
        nix::unistd::dup2(write.as_raw_fd(), target)?;
        streams.push((target, read, rotator));
    }
    Ok(Redirected { streams })
}

/// A pipe with close-on-exec ends and the bigger buffer (best effort).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let _ = fcntl(write.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    Ok((read, write))
}

impl Redirected {
    /// Starts draining.
    pub fn start(self) -> (Logger, Watch) {
        let (tx, done) = mpsc::channel();
        let threads = self.streams.len();
        let mut watched = Vec::new();
        for (target, pipe, mut rotator) in self.streams {
            if let Ok(read) = pipe.try_clone() {
                let capacity = fcntl(read.as_raw_fd(), FcntlArg::F_GETPIPE_SZ)
                    .map_or(PIPE_SIZE as u64, |n| n.max(0) as u64);
                watched.push(Watched {
                    read,
                    moved: rotator.moved.clone(),
                    capacity,
                });
            }
            let leading = rotator.path(0);
            let thread_tx = tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("log-{}", rotator.name))
                .stack_size(64 << 10)
                .spawn(move || {
                    rotator.drain(&pipe);
                    let _ = thread_tx.send(());
                });
            if spawned.is_err() {
                // Nobody would drain this pipe: back to the plain file.
                if let Ok(f) = OpenOptions::new()
                    .append(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&leading)
                {
                    let _ = nix::unistd::dup2(f.as_raw_fd(), target);
                }
                let _ = tx.send(());
            }
        }
        (Logger { done, threads }, Watch { streams: watched })
    }
}

impl Logger {
    /// At the executor's exit: closes its own ends of the pipes and waits
    /// (a few seconds at most) for the threads to write what is left.
    pub fn finish(self) {
        let _ = io::stdout().flush();
        if let Ok(null) = File::options().write(true).open("/dev/null") {
            for fd in [1, 2] {
                let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
            }
        }
        let deadline = Instant::now() + DRAIN;
        for _ in 0..self.threads {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.done.recv_timeout(left).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotation(max_size: u64, keep: Option<u32>) -> Rotation {
        Rotation { max_size, keep }
    }

    fn files(dir: &Path) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().len(),
                )
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn files_are_capped_and_rotated_keeping_n() {
        let t = tempfile::tempdir().unwrap();
        let mut r = Rotator::open(t.path(), "stdout", rotation(100, Some(2))).unwrap();
        for i in 0..35u8 {
            r.write(&[b'a' + (i % 26); 10]);
        }
        // 350 bytes: stdout.2 (101..200), stdout.1 (201..300), stdout (301..350).
        assert_eq!(
            files(t.path()),
            vec![
                ("stdout".into(), 50),
                ("stdout.1".into(), 100),
                ("stdout.2".into(), 100)
            ]
        );
        let newest = fs::read(t.path().join("stdout")).unwrap();
        assert_eq!(&newest[40..], &[b'a' + 34 % 26; 10]);
        let older = fs::read(t.path().join("stdout.1")).unwrap();
        assert_eq!(&older[..10], &[b'a' + 20; 10]);
    }

    #[test]
    fn a_write_larger_than_the_cap_is_split_across_files() {
        let t = tempfile::tempdir().unwrap();
        let mut r = Rotator::open(t.path(), "stderr", rotation(4096, Some(9))).unwrap();
        r.write(&vec![b'x'; 4096 * 3 + 10]);
        assert_eq!(
            files(t.path()),
            vec![
                ("stderr".into(), 10),
                ("stderr.1".into(), 4096),
                ("stderr.2".into(), 4096),
                ("stderr.3".into(), 4096)
            ]
        );
    }

    #[test]
    fn rotate_zero_keeps_only_the_leading_file_and_minus_one_keeps_all() {
        let t = tempfile::tempdir().unwrap();
        let mut r = Rotator::open(t.path(), "stdout", rotation(10, Some(0))).unwrap();
        r.write(&[1; 95]);
        assert_eq!(files(t.path()), vec![("stdout".into(), 5)]);
        let t = tempfile::tempdir().unwrap();
        let mut r = Rotator::open(t.path(), "stdout", rotation(10, None)).unwrap();
        r.write(&[1; 95]);
        let names = files(t.path());
        assert_eq!(names.len(), 10, "{names:?}");
        assert!(names.contains(&("stdout.9".into(), 10)), "{names:?}");
    }

    #[test]
    fn an_existing_file_is_appended_to_and_counts_against_the_cap() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("stdout"), b"0123456789").unwrap();
        let mut r = Rotator::open(t.path(), "stdout", rotation(15, Some(1))).unwrap();
        r.write(b"abcdefgh");
        assert_eq!(
            fs::read(t.path().join("stdout.1")).unwrap(),
            b"0123456789abcde"
        );
        assert_eq!(fs::read(t.path().join("stdout")).unwrap(), b"fgh");
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        let dir = t.path().join("sandbox");
        fs::create_dir(&dir).unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("stdout")).unwrap();
        assert!(Rotator::open(&dir, "stdout", rotation(10, Some(1))).is_err());
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
    }

    #[test]
    fn drain_moves_a_pipe_into_rotated_files_until_its_writers_close() {
        let t = tempfile::tempdir().unwrap();
        let mut r = Rotator::open(t.path(), "stdout", rotation(64 << 10, Some(3))).unwrap();
        let (read, write) = pipe().unwrap();
        let writer = std::thread::spawn(move || {
            let mut w = File::from(write);
            for i in 0..1000u32 {
                w.write_all(format!("{i:07}\n").repeat(100).as_bytes())
                    .unwrap();
            }
        });
        r.drain(&read);
        writer.join().unwrap();
        // 800,000 bytes: 12 full files of 64 KiB were made, 3 are kept.
        let names = files(t.path());
        assert_eq!(
            names.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["stdout", "stdout.1", "stdout.2", "stdout.3"]
        );
        assert!(names.iter().all(|(_, len)| *len <= 64 << 10), "{names:?}");
        assert_eq!(names[0].1, 800_000 % (64 << 10));
        // Nothing lost or reordered at the end.
        let tail = fs::read_to_string(t.path().join("stdout")).unwrap();
        assert!(tail.ends_with("0000999\n"), "{}", &tail[tail.len() - 20..]);
        let all: String = [3, 2, 1, 0]
            .iter()
            .map(|n| {
                let name = if *n == 0 {
                    "stdout".to_string()
                } else {
                    format!("stdout.{n}")
                };
                fs::read_to_string(t.path().join(name)).unwrap()
            })
            .collect();
        assert_eq!(all.len() as u64, 3 * (64 << 10) + 800_000 % (64 << 10));
        assert!(all.lines().all(|l| l.len() == 7), "lines were cut or mixed");
    }

    /// A Watch over one pipe drained into a rotator, as `start` makes it.
    fn watched(r: &Rotator, read: &OwnedFd) -> Watch {
        let capacity = fcntl(read.as_raw_fd(), FcntlArg::F_GETPIPE_SZ).unwrap() as u64;
        Watch {
            streams: vec![Watched {
                read: read.try_clone().unwrap(),
                moved: r.moved.clone(),
                capacity,
            }],
        }
    }

    #[test]
    fn settle_returns_once_the_pipe_is_drained_into_the_file() {
        let t = tempfile::tempdir().unwrap();
        let mut r = Rotator::open(t.path(), "stdout", rotation(1 << 20, Some(1))).unwrap();
        let (read, write) = pipe().unwrap();
        let watch = watched(&r, &read);
        let mut w = File::from(write);
        w.write_all(&[b'x'; 60_000]).unwrap();
        // Drained slowly, as by a busy disk: settle waits for it.
        let drainer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            r.drain(&read);
        });
        watch.settle();
        assert_eq!(fs::metadata(t.path().join("stdout")).unwrap().len(), 60_000);
        drop(w);
        drainer.join().unwrap();
    }

    /// Another task that never stops writing keeps the pipe non-empty:
    /// settle still returns once a pipeful has gone through, which holds
    /// every byte that was there when it was called.
    #[test]
    fn settle_does_not_wait_for_a_writer_that_never_stops() {
        let t = tempfile::tempdir().unwrap();
        let mut r = Rotator::open(t.path(), "stdout", rotation(1 << 30, Some(1))).unwrap();
        let (read, write) = pipe().unwrap();
        let watch = watched(&r, &read);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writing = stop.clone();
        let writer = std::thread::spawn(move || {
            let mut w = File::from(write);
            while !writing.load(Ordering::Relaxed) {
                let _ = w.write_all(&[b'y'; 4096]);
            }
        });
        let drainer = std::thread::spawn(move || r.drain(&read));
        std::thread::sleep(Duration::from_millis(50));
        let started = Instant::now();
        watch.settle();
        let took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        drainer.join().unwrap();
        assert!(took < SETTLE, "settle waited its whole limit: {took:?}");
    }
}
