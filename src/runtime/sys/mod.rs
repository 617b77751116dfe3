//! The only place in butte with `unsafe` code: raw system calls that
//! neither std nor nix wrap.
//!
//! - [`spawn`]: `clone3` (falling back to `clone`) into new namespaces,
//!   optionally straight into a cgroup v2 directory, and an immediate
//!   `execve` of the launch helper. Between the clone and the exec the
//!   child runs only async-signal-safe raw calls on memory prepared
//!   beforehand, so it is safe to call from a multi-threaded process.
//! - [`fork_into`]: the same clone without the exec, for single-threaded
//!   callers (`butte run`, a pre-forked launcher): saves an exec of butte.
//! - [`pidfd_send_signal`]: signal a process by pidfd, immune to pid reuse.
//! - [`pidfd_open`]: a pidfd for a process that is not our child (a
//!   sandbox adopted after an agent restart).
//! - [`adopt_channel_fd`]: the helper takes ownership of its inherited fd.
//! - [`loopback_up`]: bring up `lo` of the calling thread's network
//!   namespace (`SIOCSIFFLAGS`, which nix does not wrap).
//! - [`set_controlling_tty`], [`set_window_size`], [`window_size`]: the
//!   terminal ioctls of a joined process's pty (`TIOCSCTTY`, `TIOCSWINSZ`,
//!   `TIOCGWINSZ`); [`adopt_fd`]: the helper takes an extra inherited fd.
//! - [`wait_signal`], [`send_signal`]: a sandbox's init takes any pending
//!   signal by number (realtime ones included, which nix's `Signal` cannot
//!   hold) and passes it on.

use std::ffi::{c_char, c_int, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// The fd number the launch helper finds its channel on.
pub const CHANNEL_FD: RawFd = 3;

/// At most this many fds can be handed to the child.
const MAX_FDS: usize = 8;

/// The kernel's `struct clone_args` (linux/sched.h), version 2 (88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// What to start: the program, its argv, the fds it gets (`(from, to)`:
/// the child's fd `to` is a copy of the parent's `from`; every other fd
/// is closed), the namespace flags and an optional cgroup v2 directory fd.
pub struct SpawnRequest<'a> {
    pub program: &'a CString,
    pub argv: &'a [CString],
    pub fds: &'a [(BorrowedFd<'a>, RawFd)],
    /// `CLONE_NEW*` flags.
    pub namespaces: c_int,
    pub cgroup: Option<BorrowedFd<'a>>,
}

/// A started child.
pub struct Spawned {
    pub pid: i32,
    /// Absent on kernels without `clone3` (before 5.3).
    pub pidfd: Option<OwnedFd>,
}

/// Clones a child into new namespaces and execs `req.program` in it.
///
/// Returns `EINVAL`/`E2BIG` (from `clone3`) when the kernel cannot clone
/// into a cgroup; the caller then retries without `cgroup`.
pub fn spawn(req: &SpawnRequest) -> io::Result<Spawned> {
    // Everything the child touches is prepared here, before the clone.
    let fds = FdMap::new(req.fds)?;
    let mut argv: Vec<*const c_char> = req.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let envp: [*const c_char; 1] = [std::ptr::null()];

    // SAFETY: the child branch (Ok(None)) only performs async-signal-safe
    // calls on memory prepared above and never returns.
    match unsafe { raw_clone(req.namespaces, req.cgroup)? } {
        // SAFETY: we are the freshly cloned child; the pointers reference
        // the parent's (copied) memory, valid until exec.
        None => unsafe { child(&fds, req.program.as_ptr(), argv.as_ptr(), envp.as_ptr()) },
        Some(spawned) => Ok(spawned),
    }
}

/// What [`fork_into`] returns on each side.
pub enum Forked {
    /// In the child, whose fds are now exactly the mapped targets: it must
    /// not use any fd it held before, and ends with an exec or [`exit_now`]
    /// (the parent's objects it still holds are never dropped).
    Child,
    Parent(Spawned),
}

/// Clones this process into new namespaces (and cgroup v2 directory)
/// without an exec: the child puts `fds` in place as [`spawn`] does,
/// closes every other fd, and goes on running this program's code.
///
/// Only sound in a single-threaded process (a child of a multi-threaded
/// one could find a lock held forever): this is checked first, and a
/// multi-threaded caller gets `WouldBlock`, meaning "use [`spawn`]".
pub fn fork_into(
    namespaces: c_int,
    cgroup: Option<BorrowedFd>,
    fds: &[(BorrowedFd, RawFd)],
) -> io::Result<Forked> {
    let tasks = std::fs::File::open("/proc/self/task")?;
    fork_counted(tasks.into(), namespaces, cgroup, fds)
}

/// [`fork_into`] for a process that has left the mount namespace (or the
/// root) whose `/proc` knows it: `tasks` is its `/proc/self/task`
/// directory, opened before, through which the thread count is checked.
pub fn fork_counted(
    tasks: OwnedFd,
    namespaces: c_int,
    cgroup: Option<BorrowedFd>,
    fds: &[(BorrowedFd, RawFd)],
) -> io::Result<Forked> {
    let fds = FdMap::new(fds)?;
    let mut dir = nix::dir::Dir::from_fd(tasks.into_raw_fd()).map_err(io::Error::from)?;
    let threads = dir
        .iter()
        .filter_map(Result::ok)
        .filter(|e| !matches!(e.file_name().to_bytes(), b"." | b".."))
        .count();
    drop(dir);
    if threads != 1 {
        return Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "process is multi-threaded",
        ));
    }
    // SAFETY: the process has a single thread (checked above, and nothing
    // here starts one), so the child inherits no lock held by another
    // thread and may run arbitrary code, as after fork(2).
    match unsafe { raw_clone(namespaces, cgroup)? } {
        None => {
            // SAFETY: a fresh single-threaded child; the fds it closes belong
            // to objects it never uses again (see `Forked::Child`).
            if unsafe { fds.install() } {
                Ok(Forked::Child)
            } else {
                exit_now(EXEC_FAILED)
            }
        }
        Some(spawned) => Ok(Forked::Parent(spawned)),
    }
}

/// `clone3` (or `clone` before Linux 5.3) like fork, into new namespaces.
/// Returns `None` in the child and the child's pid (and pidfd) in the
/// parent. `EINVAL`/`E2BIG` when the kernel cannot clone into a cgroup.
///
/// # Safety
/// In the child, the caller must only run code that is safe after a fork
/// of this process (async-signal-safe calls if it is multi-threaded).
unsafe fn raw_clone(namespaces: c_int, cgroup: Option<BorrowedFd>) -> io::Result<Option<Spawned>> {
    let mut pidfd: c_int = -1;
    let mut args = CloneArgs {
        flags: namespaces as u64 | CLONE_PIDFD,
        pidfd: &mut pidfd as *mut c_int as u64,
        // With CLONE_PARENT the child reports to our parent with our own
        // exit signal, and clone3 wants none given.
        exit_signal: if namespaces & libc::CLONE_PARENT != 0 {
            0
        } else {
            libc::SIGCHLD as u64
        },
        ..CloneArgs::default()
    };
    if let Some(cg) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = cg.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid, fully initialised clone_args of the size
    // passed; with no stack given, clone3 behaves like fork.
    let mut ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    let mut have_pidfd = true;
    if ret < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
        if cgroup.is_some() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        have_pidfd = false;
        // SAFETY: the legacy clone with a null stack behaves like fork.
        ret = unsafe {
            libc::syscall(
                libc::SYS_clone,
                (namespaces | libc::SIGCHLD) as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
    }
    match ret {
        0 => Ok(None),
        r if r < 0 => Err(io::Error::last_os_error()),
        pid => Ok(Some(Spawned {
            pid: pid as i32,
            pidfd: if have_pidfd && pidfd >= 0 {
                // SAFETY: the kernel stored a new pidfd here, owned by us.
                Some(unsafe { OwnedFd::from_raw_fd(pidfd) })
            } else {
                None
            },
        })),
    }
}

/// Ends the process at once: no destructors, no atexit handlers, no
/// flushing of buffers that a forked child shares with its parent.
pub fn exit_now(code: c_int) -> ! {
    // SAFETY: _exit is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

/// Exit status of the child when the helper could not be executed.
pub const EXEC_FAILED: c_int = 127;

/// A fd mapping prepared before a clone: the child's fd `to[i]` becomes
/// a copy of the parent's `from[i]`, and every fd above the highest target
/// is closed. Fixed arrays, so installing it allocates nothing.
struct FdMap {
    from: [RawFd; MAX_FDS],
    to: [RawFd; MAX_FDS],
    n: usize,
    highest: RawFd,
}

impl FdMap {
    fn new(fds: &[(BorrowedFd, RawFd)]) -> io::Result<Self> {
        if fds.len() > MAX_FDS {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many fds"));
        }
        let mut map = FdMap {
            from: [0; MAX_FDS],
            to: [0; MAX_FDS],
            n: fds.len(),
            highest: 2,
        };
        for (i, (f, t)) in fds.iter().enumerate() {
            map.from[i] = f.as_raw_fd();
            map.to[i] = *t;
            map.highest = map.highest.max(*t);
        }
        Ok(map)
    }

    /// Puts the fds in place and closes all others, with async-signal-safe
    /// calls only. False on failure (errno tells why).
    ///
    /// # Safety
    /// Only in a just-cloned child that will not use any other fd again.
    unsafe fn install(&self) -> bool {
        let mut tmp = [0 as RawFd; MAX_FDS];
        // SAFETY: raw syscalls on fd numbers the child owns; the caller
        // guarantees nothing uses the fds closed here afterwards.
        unsafe {
            // Move the sources above every target first, so that a source
            // numbered like a target is not overwritten before it is copied.
            let n = self.n;
            for (t, from) in tmp[..n].iter_mut().zip(&self.from[..n]) {
                *t = libc::fcntl(*from, libc::F_DUPFD_CLOEXEC, self.highest + 1);
                if *t < 0 {
                    return false;
                }
            }
            for (t, to) in tmp[..n].iter().zip(&self.to[..n]) {
                if libc::dup2(*t, *to) < 0 {
                    return false;
                }
            }
            // Close everything else (the temporary copies included).
            libc::syscall(
                libc::SYS_close_range,
                (self.highest + 1) as u32,
                u32::MAX,
                0u32,
            );
        }
        true
    }
}

/// The child between clone and exec: installs the fds and execs. On
/// failure it writes `0xFFFFFFFF` + errno on the channel (fd
/// `CHANNEL_FD`, when mapped) and exits 127.
///
/// # Safety
/// Must only be called in a just-cloned child; `program`, `argv` and
/// `envp` must be valid NUL-terminated C arrays.
unsafe fn child(
    fds: &FdMap,
    program: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> ! {
    // SAFETY: only async-signal-safe syscalls, on fds this child owns and on
    // memory the parent prepared before the clone.
    unsafe {
        if !fds.install() {
            libc::_exit(EXEC_FAILED);
        }
        libc::execve(program, argv, envp);
        // Still here: tell the parent why, then give up.
        let e = *libc::__errno_location();
        let mut frame = [0xffu8; 8];
        frame[4..].copy_from_slice(&e.to_le_bytes());
        libc::write(CHANNEL_FD, frame.as_ptr().cast(), frame.len());
        libc::_exit(EXEC_FAILED)
    }
}

/// Sends `signal` through a pidfd.
pub fn pidfd_send_signal(pidfd: BorrowedFd, signal: c_int) -> io::Result<()> {
    // SAFETY: plain syscall on a borrowed, open fd; a null siginfo is allowed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `pidfd_open(pid, 0)`: a pidfd for any process (Linux 5.3+); `ESRCH`
/// when there is no such process.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd (close-on-exec) that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// In the launch helper: takes ownership of the channel fd the parent
/// mapped to [`CHANNEL_FD`], after checking it is a socket.
pub fn adopt_channel_fd() -> io::Result<UnixStream> {
    let st = nix::sys::stat::fstat(CHANNEL_FD).map_err(io::Error::from)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "fd 3 is not a socket (butte launch is started by the runtime only)",
        ));
    }
    // SAFETY: fd 3 is open (fstat succeeded), is a socket, and nothing else
    // in the helper owns it.
    Ok(unsafe { UnixStream::from_raw_fd(CHANNEL_FD) })
}

const OPEN_TREE_CLONE: u32 = 1;
const OPEN_TREE_CLOEXEC: u32 = libc::O_CLOEXEC as u32;
const AT_RECURSIVE: u32 = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;

/// `open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)`: a detached copy of the
/// mount tree at `path`, held by an fd, that survives a pivot_root and can
/// be attached anywhere with [`move_mount`] (Linux 5.2+).
pub fn open_tree_clone(path: &std::path::Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string for the call's duration.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Attaches a tree from [`open_tree_clone`] at `target`.
pub fn move_mount(tree: BorrowedFd, target: &std::path::Path) -> io::Result<()> {
    let c = CString::new(target.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let empty = c"";
    // SAFETY: both strings are valid and NUL-terminated; `tree` is open.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The leading fields of `union bpf_attr` for `BPF_PROG_LOAD`.
#[repr(C)]
#[derive(Default)]
struct BpfProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The fields of `union bpf_attr` for `BPF_PROG_ATTACH`.
#[repr(C)]
#[derive(Default)]
struct BpfProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// Loads a `BPF_PROG_TYPE_CGROUP_DEVICE` program (eBPF instructions as the
/// kernel lays them out). A program the verifier refuses comes back as
/// `EINVAL` with the verifier's log in the message.
pub fn bpf_load_device_program(insns: &[u64]) -> io::Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 8192];
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"butte_device");
    let attr = BpfProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name: name,
        ..BpfProgLoad::default()
    };
    // SAFETY: `attr` is a valid bpf_attr prefix of the size passed; the
    // instruction, license and log buffers outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const BpfProgLoad,
            std::mem::size_of::<BpfProgLoad>(),
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        let text = String::from_utf8_lossy(&log[..log.iter().position(|&b| b == 0).unwrap_or(0)])
            .trim()
            .to_string();
        return Err(if text.is_empty() {
            e
        } else {
            io::Error::new(e.kind(), format!("{e}: verifier: {text}"))
        });
    }
    // SAFETY: the kernel returned a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Attaches a device program to a cgroup v2 directory, allowing programs
/// of descendants and ancestors to apply too (`BPF_F_ALLOW_MULTI`).
pub fn bpf_attach_device_program(cgroup: BorrowedFd, prog: BorrowedFd) -> io::Result<()> {
    let attr = BpfProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    // SAFETY: `attr` is a valid bpf_attr prefix of the size passed; both
    // fds are open for the call's duration.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const BpfProgAttach,
            std::mem::size_of::<BpfProgAttach>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `struct sock_fprog`: a classic BPF program for seccomp.
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const u8,
}

/// Installs a seccomp filter (`SECCOMP_SET_MODE_FILTER`) on the calling
/// thread: `prog` is an array of 8-byte `struct sock_filter`. The caller
/// has set `no_new_privs` or holds `CAP_SYS_ADMIN`.
pub fn seccomp_install(prog: &[u8]) -> io::Result<()> {
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    if prog.is_empty() || prog.len() % 8 != 0 || prog.len() / 8 > usize::from(u16::MAX) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let fprog = SockFprog {
        len: (prog.len() / 8) as u16,
        filter: prog.as_ptr(),
    };
    // SAFETY: `fprog` points at `len` complete instructions in `prog`,
    // which outlives the call; the kernel copies the program.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            0 as libc::c_ulong,
            &fprog as *const SockFprog,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Puts every ignored signal back to its default action. An ignored signal
/// stays ignored across exec, and the helper inherits some (Rust's runtime
/// ignores SIGPIPE; a caller may ignore others): a task must start with
/// every signal at its default, as under Docker or Mesos. Raw
/// `rt_sigaction`, because libc refuses the signals it reserves (32, 33).
pub fn reset_ignored_signals() -> io::Result<()> {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // Room for the kernel's struct sigaction on every architecture;
        // the handler is its first word, and all-zero means SIG_DFL.
        let mut old = [0u64; 4];
        // SAFETY: a null new action only reads the current one into `old`,
        // which is large enough; 8 is the kernel's sigset size.
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                std::ptr::null::<u64>(),
                old.as_mut_ptr(),
                8usize,
            )
        };
        if r < 0 || old[0] != libc::SIG_IGN as u64 {
            continue;
        }
        let default = [0u64; 4];
        // SAFETY: an all-zero action is SIG_DFL with no flags and an empty
        // mask; no handler is installed, so no code runs on a signal.
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                default.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Brings up the loopback interface of the calling thread's network
/// namespace (what `ip link set lo up` does).
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: plain syscall; the returned fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `ifreq` is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads into the `ifreq` we own, which outlives
    // the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads the `ifreq` we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the terminal open on `fd` the controlling terminal of the calling
/// process, which must be a session leader without one (`TIOCSCTTY`).
pub fn set_controlling_tty(fd: BorrowedFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal the
    // terminal from another session); `fd` is open for the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0 as c_int) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Sets the window size of the terminal open on `fd` (`TIOCSWINSZ`); the
/// terminal's foreground process group gets `SIGWINCH`.
pub fn set_window_size(fd: BorrowedFd, rows: u16, cols: u16) -> io::Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a `struct winsize`, which `size` is and
    // which outlives the call; `fd` is open.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCSWINSZ,
            &size as *const libc::winsize,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The window size (rows, columns) of the terminal open on `fd`
/// (`TIOCGWINSZ`).
pub fn window_size(fd: BorrowedFd) -> io::Result<(u16, u16)> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a `struct winsize` into `size`, which we
    // own and which outlives the call; `fd` is open.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCGWINSZ,
            &mut size as *mut libc::winsize,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok((size.ws_row, size.ws_col))
    }
}

/// In the launch helper: takes ownership of an fd the parent mapped to
/// number `fd` (a pidfd, a pipe), after checking that it is open.
pub fn adopt_fd(fd: RawFd) -> io::Result<OwnedFd> {
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).map_err(io::Error::from)?;
    // SAFETY: `fd` is open (F_GETFD succeeded) and, by the runtime's fd
    // mapping, owned by nothing else in this process.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits until one of the signals the calling thread blocks is pending,
/// takes it, and returns its number. Every signal is waited for (but the
/// C library's own two); the caller blocks them all first.
pub fn wait_signal() -> io::Result<c_int> {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    let mut sig: c_int = 0;
    // SAFETY: sigfillset initialises the whole set before sigwait reads
    // it; sigwait writes one int to `sig`, which outlives the call.
    let r = unsafe {
        libc::sigfillset(set.as_mut_ptr());
        libc::sigwait(set.as_ptr(), &mut sig)
    };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(sig)
}

/// Sends signal number `sig` to `pid` (`kill(2)`).
pub fn send_signal(pid: libc::pid_t, sig: c_int) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    if unsafe { libc::kill(pid, sig) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
