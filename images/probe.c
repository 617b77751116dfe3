/*
 * probe: tries, from inside a sandbox, what a hardened container must refuse,
 * and prints one line per attempt:
 *
 *     NAME <TAB> denied|ALLOWED|n/a <TAB> detail
 *
 * Exit status: 0 when no attempt was allowed, 1 when one was, 2 on bad usage.
 *
 *     probe [-b MAJ:MIN -k TEXT] [-p HOSTPID] [-e http://IP:PORT/PATH]
 *
 *   -b MAJ:MIN   a host block device (e.g. a loop device) whose first bytes
 *                are TEXT (-k): "blockdev" is ALLOWED only if TEXT is read
 *   -p HOSTPID   a host process to PTRACE_ATTACH to
 *   -e URL       the agent's executor API: a call without a token must get
 *                401 or 403
 *
 * Attempts without their argument print "n/a". Nothing destructive is tried:
 * kexec_load and init_module get arguments that fail right after the
 * permission check (EINVAL, ENOEXEC mean the check passed), the sysctl write
 * writes back the value just read, and sysrq-trigger is only opened.
 *
 * Built static by images/probe.sh; used by runtime-tests/hardening.rs and
 * bench/hardening.sh.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int allowed_count;

/* report NAME VERDICT FORMAT...: one table line. */
static void report(const char *name, const char *verdict, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (strcmp(verdict, "ALLOWED") == 0)
        allowed_count++;
    printf("%s\t%s\t%s\n", name, verdict, detail);
    fflush(stdout);
}

/* The errno's symbolic name (strerrorname_np needs glibc 2.32; keep our own). */
static const char *ename(int e)
{
    switch (e) {
    case 0: return "0";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case E2BIG: return "E2BIG";
    case ENOEXEC: return "ENOEXEC";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENOSPC: return "ENOSPC";
    case EROFS: return "EROFS";
    case ENOSYS: return "ENOSYS";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case EKEYREJECTED: return "EKEYREJECTED";
    case EDQUOT: return "EDQUOT";
    default: {
        static char buf[32];
        snprintf(buf, sizeof buf, "errno %d", e);
        return buf;
    }
    }
}

/* Appends to a detail buffer. */
static void add(char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;
    if (len >= size - 1)
        return;
    if (len) {
        snprintf(buf + len, size - len, "; ");
        len = strlen(buf);
    }
    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

/* Writable directories to create nodes in, best first. */
static const char *node_dirs[4];

static void find_node_dirs(void)
{
    int n = 0;
    const char *sandbox = getenv("MESOS_SANDBOX");
    node_dirs[n++] = "/dev";
    node_dirs[n++] = "/tmp";
    node_dirs[n++] = sandbox && *sandbox ? sandbox : ".";
    node_dirs[n] = NULL;
}

/* Reads the first bytes of PATH and compares them with WANT. Returns 1 when
 * they match, 0 otherwise, with what happened appended to DETAIL. */
static int read_node(const char *path, const char *want, char *detail, size_t size)
{
    char got[256];
    size_t len = strlen(want);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    if (len > sizeof got)
        len = sizeof got;
    if (fd < 0) {
        add(detail, size, "open %s %s", path, ename(errno));
        return 0;
    }
    n = read(fd, got, len);
    if (n < 0) {
        add(detail, size, "read %s %s", path, ename(errno));
        close(fd);
        return 0;
    }
    close(fd);
    if ((size_t)n == len && memcmp(got, want, len) == 0) {
        add(detail, size, "read the device's bytes through %s", path);
        return 1;
    }
    add(detail, size, "read %s: %zd bytes, not the device's", path, n);
    return 0;
}

/* mknod and open of a host block device; also an existing node in /dev. */
static void try_blockdev(const char *majmin, const char *want)
{
    char detail[512] = "";
    unsigned maj, min;
    dev_t dev;
    int hit = 0;
    if (!majmin || !want) {
        report("blockdev", "n/a", "no device given (-b MAJ:MIN -k TEXT)");
        return;
    }
    if (sscanf(majmin, "%u:%u", &maj, &min) != 2) {
        fprintf(stderr, "probe: -b %s: want MAJ:MIN\n", majmin);
        exit(2);
    }
    dev = makedev(maj, min);
    for (int i = 0; node_dirs[i] && !hit; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/.probe-blk-%d", node_dirs[i], (int)getpid());
        unlink(path);
        if (mknod(path, S_IFBLK | 0600, dev) != 0) {
            add(detail, sizeof detail, "mknod %s %s", node_dirs[i], ename(errno));
            continue;
        }
        hit = read_node(path, want, detail, sizeof detail);
        unlink(path);
    }
    /* A node the sandbox already has (the host's /dev of a task without an
     * image, or a bind mount). */
    DIR *d = opendir("/dev");
    if (d && !hit) {
        struct dirent *e;
        while ((e = readdir(d)) && !hit) {
            char path[4096];
            struct stat st;
            snprintf(path, sizeof path, "/dev/%s", e->d_name);
            if (lstat(path, &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == dev)
                hit = read_node(path, want, detail, sizeof detail);
        }
    }
    if (d)
        closedir(d);
    report("blockdev", hit ? "ALLOWED" : "denied", "%u:%u: %s", maj, min, detail);
}

/* /dev/kmsg: the kernel log, read or written. */
static void try_kmsg(void)
{
    char detail[512] = "";
    char path[4096] = "/dev/kmsg";
    char made[4096] = "";
    struct stat st;
    int allowed = 0;
    if (stat(path, &st) != 0) {
        add(detail, sizeof detail, "/dev/kmsg %s", ename(errno));
        for (int i = 0; node_dirs[i]; i++) {
            snprintf(path, sizeof path, "%s/.probe-kmsg-%d", node_dirs[i], (int)getpid());
            unlink(path);
            if (mknod(path, S_IFCHR | 0600, makedev(1, 11)) == 0) {
                snprintf(made, sizeof made, "%s", path);
                add(detail, sizeof detail, "mknod c 1 11 in %s", node_dirs[i]);
                break;
            }
            add(detail, sizeof detail, "mknod %s %s", node_dirs[i], ename(errno));
        }
        if (!made[0]) {
            report("kmsg", "denied", "%s", detail);
            return;
        }
    }
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        add(detail, sizeof detail, "open for reading %s", ename(errno));
    } else {
        char rec[1024];
        ssize_t n = read(fd, rec, sizeof rec);
        if (n > 0) {
            allowed = 1;
            add(detail, sizeof detail, "read a %zd-byte record", n);
        } else {
            add(detail, sizeof detail, "opened; read %s", n < 0 ? ename(errno) : "0 bytes");
        }
        close(fd);
    }
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        add(detail, sizeof detail, "open for writing %s", ename(errno));
    } else {
        allowed = 1;
        add(detail, sizeof detail, "opened for writing (nothing written)");
        close(fd);
    }
    if (made[0])
        unlink(made);
    report("kmsg", allowed ? "ALLOWED" : "denied", "%s", detail);
}

/* mount(2) of a tmpfs. */
static void try_mount(void)
{
    char dir[4096] = "";
    const char *bases[3] = {"/tmp", getenv("MESOS_SANDBOX"), "."};
    for (int i = 0; i < 3; i++) {
        if (!bases[i] || !*bases[i])
            continue;
        snprintf(dir, sizeof dir, "%s/.probe-mnt-%d", bases[i], (int)getpid());
        if (mkdir(dir, 0700) == 0)
            break;
        dir[0] = 0;
    }
    if (!dir[0]) {
        /* mount(2) still tells EPERM from ENOENT on a missing target. */
        snprintf(dir, sizeof dir, "/");
    }
    if (mount("probe", dir, "tmpfs", 0, "size=64k") == 0) {
        umount2(dir, MNT_DETACH);
        if (strcmp(dir, "/") != 0)
            rmdir(dir);
        report("mount", "ALLOWED", "mounted a tmpfs on %s", dir);
        return;
    }
    int e = errno;
    if (strcmp(dir, "/") != 0)
        rmdir(dir);
    report("mount", "denied", "mount tmpfs %s", ename(e));
}

/* A new user namespace, as `unshare -U` asks for it, and through clone(2). */
static void try_userns(void)
{
    char detail[256] = "";
    int allowed = 0;
    pid_t pid = fork();
    if (pid == 0)
        _exit(unshare(CLONE_NEWUSER) == 0 ? 0 : 100 + errno);
    int status = 0;
    if (pid < 0) {
        add(detail, sizeof detail, "fork %s", ename(errno));
    } else {
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            allowed = 1;
            add(detail, sizeof detail, "unshare(CLONE_NEWUSER) succeeded");
        } else if (WIFEXITED(status) && WEXITSTATUS(status) >= 100) {
            add(detail, sizeof detail, "unshare %s", ename(WEXITSTATUS(status) - 100));
        } else {
            add(detail, sizeof detail, "unshare child status %#x", status);
        }
    }
    /* clone(CLONE_NEWUSER | SIGCHLD) with no new stack: a fork into a new
     * user namespace. */
    long r = syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | SIGCHLD), 0L, 0L, 0L, 0L);
    if (r == 0)
        _exit(0);
    if (r > 0) {
        waitpid((pid_t)r, &status, 0);
        allowed = 1;
        add(detail, sizeof detail, "clone(CLONE_NEWUSER) succeeded");
    } else {
        add(detail, sizeof detail, "clone %s", ename(errno));
    }
    report("userns", allowed ? "ALLOWED" : "denied", "%s", detail);
}

/* The kernel keyring: add_key and keyctl. */
static void try_keyctl(void)
{
    char detail[256] = "";
    int allowed = 0;
    long r = syscall(SYS_add_key, "user", "butte-probe", "x", 1L, (long)KEY_SPEC_PROCESS_KEYRING);
    if (r >= 0) {
        allowed = 1;
        add(detail, sizeof detail, "add_key made key %ld", r);
        syscall(SYS_keyctl, (long)KEYCTL_INVALIDATE, r);
    } else {
        add(detail, sizeof detail, "add_key %s", ename(errno));
    }
    r = syscall(SYS_keyctl, (long)KEYCTL_GET_KEYRING_ID, (long)KEY_SPEC_SESSION_KEYRING, 0L);
    if (r >= 0) {
        allowed = 1;
        add(detail, sizeof detail, "keyctl found session keyring %ld", r);
    } else {
        add(detail, sizeof detail, "keyctl %s", ename(errno));
    }
    report("keyctl", allowed ? "ALLOWED" : "denied", "%s", detail);
}

/* perf_event_open of a software counter on this process. */
static void try_perf(void)
{
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_TASK_CLOCK;
    attr.disabled = 1;
    attr.exclude_kernel = 1;
    attr.exclude_hv = 1;
    long fd = syscall(SYS_perf_event_open, &attr, 0L, -1L, -1L, 0L);
    if (fd >= 0) {
        close((int)fd);
        report("perf_event_open", "ALLOWED", "opened a task-clock counter");
        return;
    }
    report("perf_event_open", "denied", "%s", ename(errno));
}

/* bpf(2): a one-entry array map, and a two-instruction socket filter. */
static void try_bpf(void)
{
    char detail[256] = "";
    int allowed = 0;
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    long fd = syscall(SYS_bpf, (long)BPF_MAP_CREATE, &attr, (long)sizeof attr);
    if (fd >= 0) {
        allowed = 1;
        close((int)fd);
        add(detail, sizeof detail, "BPF_MAP_CREATE made a map");
    } else {
        add(detail, sizeof detail, "BPF_MAP_CREATE %s", ename(errno));
    }
    struct bpf_insn prog[2];
    memset(prog, 0, sizeof prog);
    prog[0].code = BPF_ALU64 | BPF_MOV | BPF_K; /* r0 = 0 */
    prog[0].dst_reg = BPF_REG_0;
    prog[1].code = BPF_JMP | BPF_EXIT;
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    attr.insns = (unsigned long)prog;
    attr.insn_cnt = 2;
    attr.license = (unsigned long)"GPL";
    fd = syscall(SYS_bpf, (long)BPF_PROG_LOAD, &attr, (long)sizeof attr);
    if (fd >= 0) {
        allowed = 1;
        close((int)fd);
        add(detail, sizeof detail, "BPF_PROG_LOAD loaded a program");
    } else {
        add(detail, sizeof detail, "BPF_PROG_LOAD %s", ename(errno));
    }
    report("bpf", allowed ? "ALLOWED" : "denied", "%s", detail);
}

/* kexec_load with a flag the kernel rejects only after the CAP_SYS_BOOT
 * check: EINVAL means the check passed (nothing is loaded or unloaded). */
static void try_kexec(void)
{
    long r = syscall(SYS_kexec_load, 0L, 0L, NULL, 0x8000L);
    int e = errno;
    if (r == 0 || e == EINVAL) {
        report("kexec_load", "ALLOWED", "past the permission check (%s)", r == 0 ? "0" : ename(e));
        return;
    }
    report("kexec_load", "denied", "%s%s", ename(e), e == ENOSYS ? " (not in this kernel)" : "");
}

/* init_module of a 4-byte image: ENOEXEC means the CAP_SYS_MODULE check
 * passed; finit_module of fd -1: EBADF likewise. */
static void try_init_module(void)
{
    char detail[256] = "";
    int allowed = 0;
    static const char junk[4] = {0, 0, 0, 0};
    long r = syscall(SYS_init_module, junk, (unsigned long)sizeof junk, "");
    int e = errno;
    if (r == 0 || (e != EPERM && e != EACCES && e != ENOSYS)) {
        allowed = 1;
        add(detail, sizeof detail, "init_module past the permission check (%s)", r == 0 ? "0" : ename(e));
    } else {
        add(detail, sizeof detail, "init_module %s%s", ename(e), e == ENOSYS ? " (not in this kernel)" : "");
    }
    r = syscall(SYS_finit_module, -1L, "", 0L);
    e = errno;
    if (r == 0 || (e != EPERM && e != EACCES && e != ENOSYS)) {
        allowed = 1;
        add(detail, sizeof detail, "finit_module past the permission check (%s)", r == 0 ? "0" : ename(e));
    } else {
        add(detail, sizeof detail, "finit_module %s%s", ename(e), e == ENOSYS ? " (not in this kernel)" : "");
    }
    report("init_module", allowed ? "ALLOWED" : "denied", "%s", detail);
}

/* PTRACE_ATTACH to a host process. */
static void try_ptrace(const char *pidarg)
{
    if (!pidarg) {
        report("ptrace", "n/a", "no host pid given (-p PID)");
        return;
    }
    pid_t pid = (pid_t)atoi(pidarg);
    if (pid <= 0) {
        fprintf(stderr, "probe: -p %s: want a pid\n", pidarg);
        exit(2);
    }
    if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) == 0) {
        int status;
        waitpid(pid, &status, __WALL);
        ptrace(PTRACE_DETACH, pid, NULL, NULL);
        report("ptrace", "ALLOWED", "attached to host pid %d", (int)pid);
        return;
    }
    report("ptrace", "denied", "PTRACE_ATTACH host pid %d %s", (int)pid, ename(errno));
}

/* /proc/kcore: the kernel's memory as an ELF core. */
static void try_kcore(void)
{
    char buf[64];
    int fd = open("/proc/kcore", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        report("kcore", "denied", "open %s%s", ename(e), e == ENOENT ? " (not in this kernel)" : "");
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf);
    int e = errno;
    close(fd);
    if (n > 0) {
        report("kcore", "ALLOWED", "read %zd bytes%s", n,
               n >= 4 && memcmp(buf, "\177ELF", 4) == 0 ? " of an ELF core" : "");
        return;
    }
    report("kcore", "denied", "opened; read %s", n < 0 ? ename(e) : "0 bytes (masked)");
}

/* /sys/firmware: ACPI tables, EFI variables, DMI. */
static void try_firmware(void)
{
    DIR *d = opendir("/sys/firmware");
    if (!d) {
        report("sys_firmware", "denied", "opendir %s", ename(errno));
        return;
    }
    int n = 0;
    char first[256] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (!n++)
            snprintf(first, sizeof first, "%s", e->d_name);
    }
    closedir(d);
    if (n > 0) {
        report("sys_firmware", "ALLOWED", "%d entries (%s, ...)", n, first);
        return;
    }
    report("sys_firmware", "denied", "empty (masked)");
}

/* /proc/sysrq-trigger opened for writing (nothing is written: a write would
 * act on the host). */
static void try_sysrq(void)
{
    int fd = open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        report("sysrq_trigger", "ALLOWED", "opened for writing (nothing written)");
        return;
    }
    int e = errno;
    report("sysrq_trigger", "denied", "open for writing %s%s", ename(e),
           e == ENOENT ? " (not in this kernel)" : "");
}

/* A write to /proc/sys/kernel: the UTS domainname, written back unchanged. */
static void try_sysctl(void)
{
    const char *path = "/proc/sys/kernel/domainname";
    char value[256] = "";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, value, sizeof value - 1);
        value[n > 0 ? n : 0] = 0;
        close(fd);
    }
    if (!value[0])
        snprintf(value, sizeof value, "(none)\n");
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        report("proc_sys_write", "denied", "open %s for writing %s", path, ename(errno));
        return;
    }
    ssize_t n = write(fd, value, strlen(value));
    int e = errno;
    close(fd);
    if (n >= 0) {
        report("proc_sys_write", "ALLOWED", "wrote %s (its own value back)", path);
        return;
    }
    report("proc_sys_write", "denied", "opened %s; write %s", path, ename(e));
}

/* setrlimit(RLIMIT_NOFILE) with the hard limit raised by one. */
static void try_rlimit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        report("rlimit_raise", "denied", "getrlimit %s", ename(errno));
        return;
    }
    if (rl.rlim_max == RLIM_INFINITY) {
        report("rlimit_raise", "ALLOWED", "hard limit of open files is already unlimited");
        return;
    }
    struct rlimit up = {rl.rlim_max + 1, rl.rlim_max + 1};
    if (setrlimit(RLIMIT_NOFILE, &up) == 0) {
        setrlimit(RLIMIT_NOFILE, &rl);
        report("rlimit_raise", "ALLOWED", "nofile hard %llu -> %llu",
               (unsigned long long)rl.rlim_max, (unsigned long long)up.rlim_max);
        return;
    }
    report("rlimit_raise", "denied", "nofile hard %llu -> %llu %s",
           (unsigned long long)rl.rlim_max, (unsigned long long)up.rlim_max, ename(errno));
}

/* An executor API call without a token: POST a SUBSCRIBE with no
 * Authorization header. Only 401 or 403 (or no connection) is a denial. */
static void try_executor_api(const char *url)
{
    if (!url) {
        report("executor_api", "n/a", "no executor API given (-e http://IP:PORT/PATH)");
        return;
    }
    char host[256], path[1024] = "/";
    unsigned port = 80;
    const char *p = url;
    if (strncmp(p, "http://", 7) == 0)
        p += 7;
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= sizeof host) {
        fprintf(stderr, "probe: -e %s: want http://IP:PORT/PATH\n", url);
        exit(2);
    }
    memcpy(host, p, hl);
    host[hl] = 0;
    p += hl;
    if (*p == ':') {
        port = (unsigned)strtoul(p + 1, (char **)&p, 10);
    }
    if (*p == '/')
        snprintf(path, sizeof path, "%s", p);
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "probe: -e %s: the host must be an IPv4 address\n", url);
        exit(2);
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        report("executor_api", "denied", "socket %s", ename(errno));
        return;
    }
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        report("executor_api", "denied", "connect %s:%u %s", host, port, ename(errno));
        close(fd);
        return;
    }
    const char *body =
        "{\"type\":\"SUBSCRIBE\",\"framework_id\":{\"value\":\"probe\"},"
        "\"executor_id\":{\"value\":\"probe\"},\"subscribe\":{}}";
    char req[2048];
    int len = snprintf(req, sizeof req,
                       "POST %s HTTP/1.1\r\nHost: %s:%u\r\nContent-Type: application/json\r\n"
                       "Accept: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                       path, host, port, strlen(body), body);
    if (write(fd, req, (size_t)len) != len) {
        report("executor_api", "denied", "send %s", ename(errno));
        close(fd);
        return;
    }
    char resp[256];
    ssize_t n = read(fd, resp, sizeof resp - 1);
    int e = errno;
    close(fd);
    if (n <= 0) {
        report("executor_api", "denied", "no answer (%s)", n < 0 ? ename(e) : "closed");
        return;
    }
    resp[n] = 0;
    int code = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &code) != 1) {
        report("executor_api", "ALLOWED", "answer is not HTTP");
        return;
    }
    if (code == 401 || code == 403) {
        report("executor_api", "denied", "POST %s answered %d", path, code);
        return;
    }
    report("executor_api", "ALLOWED", "POST %s without a token answered %d", path, code);
}

static void usage(void)
{
    fprintf(stderr, "usage: probe [-b MAJ:MIN -k TEXT] [-p HOSTPID] [-e http://IP:PORT/PATH]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *blk = NULL, *want = NULL, *hostpid = NULL, *api = NULL;
    int c;
    while ((c = getopt(argc, argv, "b:k:p:e:h")) != -1) {
        switch (c) {
        case 'b': blk = optarg; break;
        case 'k': want = optarg; break;
        case 'p': hostpid = optarg; break;
        case 'e': api = optarg; break;
        default: usage();
        }
    }
    if (optind != argc || (!blk != !want) || (want && !*want))
        usage();
    find_node_dirs();
    try_blockdev(blk, want);
    try_kmsg();
    try_mount();
    try_userns();
    try_keyctl();
    try_perf();
    try_bpf();
    try_kexec();
    try_init_module();
    try_ptrace(hostpid);
    try_kcore();
    try_firmware();
    try_sysrq();
    try_sysctl();
    try_rlimit();
    try_executor_api(api);
    return allowed_count ? 1 : 0;
}
