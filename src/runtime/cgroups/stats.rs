//! Resource usage read from a sandbox's cgroup files.

use super::{Cgroup, Controller, Version};
use std::fs;
use std::path::Path;

/// What a sandbox has used. Fields the kernel does not report are 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ResourceStats {
    /// Total CPU time, all processes, nanoseconds.
    pub cpu_usage_ns: u64,
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    /// CFS periods in which the quota was exhausted, and time throttled.
    pub cpu_nr_throttled: u64,
    pub cpu_throttled_ns: u64,
    /// CFS enforcement periods elapsed.
    pub cpu_nr_periods: u64,
    /// Memory charged, page cache included.
    pub memory_current: u64,
    /// Of which anonymous memory (`rss`) and page cache, from `memory.stat`
    /// (0 where it is unreadable).
    pub memory_rss: u64,
    pub memory_cache: u64,
    /// Swap in use.
    pub memory_swap: u64,
    /// Highest memory usage seen (0 where the kernel keeps no peak).
    pub memory_peak: u64,
    pub memory_limit: u64,
    /// Times the OOM killer killed a process of the sandbox.
    pub oom_kills: u64,
    pub pids_current: u64,
    /// Times a fork failed because the pids limit was reached.
    pub pids_limit_hits: u64,
    /// Pressure stall totals (cgroup v2 with PSI; `None` elsewhere).
    pub pressure: Option<Pressure>,
}

/// Pressure stall information of a cgroup: for each resource, the total
/// time, in microseconds, that some (or all, `full`) of its tasks were
/// stalled waiting for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pressure {
    pub cpu_some_us: u64,
    pub cpu_full_us: u64,
    pub memory_some_us: u64,
    pub memory_full_us: u64,
    pub io_some_us: u64,
    pub io_full_us: u64,
}

/// The `total=` of the `some` and `full` lines of a `*.pressure` file.
fn pressure_totals(text: &str) -> Option<(u64, u64)> {
    let total = |kind: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(kind))
            .and_then(|l| l.split_whitespace().find_map(|f| f.strip_prefix("total=")))
            .and_then(|v| v.parse().ok())
    };
    let some = total("some")?;
    Some((some, total("full").unwrap_or(0)))
}

/// Reads a `key value` line from a flat-keyed file such as `cpu.stat`.
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key)).then(|| it.next()?.parse().ok())?
    })
}

fn read(dir: Option<&Path>, file: &str) -> String {
    dir.and_then(|d| fs::read_to_string(d.join(file)).ok())
        .unwrap_or_default()
}

fn number(dir: Option<&Path>, file: &str) -> u64 {
    read(dir, file).trim().parse().unwrap_or(0)
}

/// USER_HZ, the unit of `cpuacct.stat` (100 on every Linux ABI butte runs on).
const USER_HZ_NS: u64 = 10_000_000;

impl Cgroup {
    /// Reads the current statistics. Missing files read as 0, so this works
    /// on kernels without newer counters.
    pub fn stats(&self) -> ResourceStats {
        let cpu = self.dir(Controller::Cpu);
        let acct = self.dir(Controller::Cpuacct);
        let mem = self.dir(Controller::Memory);
        let pids = self.dir(Controller::Pids);
        let mut s = ResourceStats {
            pids_current: number(pids, "pids.current"),
            pids_limit_hits: keyed(&read(pids, "pids.events"), "max").unwrap_or(0),
            ..ResourceStats::default()
        };
        match self.version {
            Version::V1 => {
                s.cpu_usage_ns = number(acct, "cpuacct.usage");
                let stat = read(acct, "cpuacct.stat");
                s.cpu_user_ns = keyed(&stat, "user").unwrap_or(0) * USER_HZ_NS;
                s.cpu_system_ns = keyed(&stat, "system").unwrap_or(0) * USER_HZ_NS;
                let cpu_stat = read(cpu, "cpu.stat");
                s.cpu_nr_throttled = keyed(&cpu_stat, "nr_throttled").unwrap_or(0);
                s.cpu_throttled_ns = keyed(&cpu_stat, "throttled_time").unwrap_or(0);
                s.cpu_nr_periods = keyed(&cpu_stat, "nr_periods").unwrap_or(0);
                s.memory_current = number(mem, "memory.usage_in_bytes");
                // Hierarchical: the sandbox's own cgroups below count too.
                let stat = read(mem, "memory.stat");
                s.memory_rss = keyed(&stat, "total_rss").unwrap_or(0);
                s.memory_cache = keyed(&stat, "total_cache").unwrap_or(0);
                s.memory_swap = keyed(&stat, "total_swap").unwrap_or(0);
                s.memory_peak = number(mem, "memory.max_usage_in_bytes");
                s.memory_limit = number(mem, "memory.limit_in_bytes");
                s.oom_kills = keyed(&read(mem, "memory.oom_control"), "oom_kill").unwrap_or(0);
            }
            Version::V2 => {
                let cpu_stat = read(cpu, "cpu.stat");
                let us = |k| keyed(&cpu_stat, k).unwrap_or(0) * 1000;
                s.cpu_usage_ns = us("usage_usec");
                s.cpu_user_ns = us("user_usec");
                s.cpu_system_ns = us("system_usec");
                s.cpu_throttled_ns = us("throttled_usec");
                s.cpu_nr_throttled = keyed(&cpu_stat, "nr_throttled").unwrap_or(0);
                s.cpu_nr_periods = keyed(&cpu_stat, "nr_periods").unwrap_or(0);
                s.memory_current = number(mem, "memory.current");
                let stat = read(mem, "memory.stat");
                s.memory_rss = keyed(&stat, "anon").unwrap_or(0);
                s.memory_cache = keyed(&stat, "file").unwrap_or(0);
                s.memory_swap = number(mem, "memory.swap.current");
                // Every v2 cgroup has the files when the kernel has PSI.
                let dir = cpu.or(mem);
                let cpu_p = pressure_totals(&read(dir, "cpu.pressure"));
                let mem_p = pressure_totals(&read(dir, "memory.pressure"));
                let io_p = pressure_totals(&read(dir, "io.pressure"));
                if cpu_p.is_some() || mem_p.is_some() || io_p.is_some() {
                    let (cpu_some_us, cpu_full_us) = cpu_p.unwrap_or_default();
                    let (memory_some_us, memory_full_us) = mem_p.unwrap_or_default();
                    let (io_some_us, io_full_us) = io_p.unwrap_or_default();
                    s.pressure = Some(Pressure {
                        cpu_some_us,
                        cpu_full_us,
                        memory_some_us,
                        memory_full_us,
                        io_some_us,
                        io_full_us,
                    });
                }
                s.memory_peak = number(mem, "memory.peak");
                s.memory_limit = number(mem, "memory.max");
                s.oom_kills = keyed(&read(mem, "memory.events"), "oom_kill").unwrap_or(0);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Hierarchy, Limits};
    use std::fs;

    #[test]
    fn reads_v1_files() {
        let t = tempfile::tempdir().unwrap();
        for c in ["cpu", "cpuacct", "memory", "pids"] {
            fs::create_dir(t.path().join(c)).unwrap();
            fs::write(t.path().join(c).join("cgroup.procs"), "").unwrap();
        }
        let mut cg = Hierarchy::detect(t.path(), "b")
            .unwrap()
            .create("x", &Limits::default(), &crate::runtime::spec::Devices::All)
            .unwrap();
        let d = |c: &str| t.path().join(c).join("b/x");
        fs::write(d("cpuacct").join("cpuacct.usage"), "1500000000\n").unwrap();
        fs::write(d("cpuacct").join("cpuacct.stat"), "user 100\nsystem 50\n").unwrap();
        fs::write(
            d("cpu").join("cpu.stat"),
            "nr_periods 10\nnr_throttled 4\nthrottled_time 77\n",
        )
        .unwrap();
        fs::write(d("memory").join("memory.max_usage_in_bytes"), "4096\n").unwrap();
        fs::write(
            d("memory").join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        fs::write(d("pids").join("pids.events"), "max 9\n").unwrap();
        fs::write(
            d("memory").join("memory.stat"),
            "cache 1\nrss 2\ntotal_cache 4096\ntotal_rss 8192\ntotal_swap 0\n",
        )
        .unwrap();
        let s = cg.stats();
        assert_eq!((s.memory_rss, s.memory_cache), (8192, 4096));
        assert_eq!(s.cpu_nr_periods, 10);
        assert_eq!(s.pressure, None);
        assert_eq!(s.cpu_usage_ns, 1_500_000_000);
        assert_eq!(
            (s.cpu_user_ns, s.cpu_system_ns),
            (1_000_000_000, 500_000_000)
        );
        assert_eq!((s.cpu_nr_throttled, s.cpu_throttled_ns), (4, 77));
        assert_eq!(
            (s.memory_peak, s.oom_kills, s.pids_limit_hits),
            (4096, 2, 9)
        );
        cg.remove().unwrap();
    }

    #[test]
    fn reads_v2_files() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("cgroup.controllers"), "cpu memory pids").unwrap();
        let mut cg = Hierarchy::detect(t.path(), "b")
            .unwrap()
            .create("x", &Limits::default(), &crate::runtime::spec::Devices::All)
            .unwrap();
        let d = t.path().join("b/x");
        fs::write(
            d.join("cpu.stat"),
            "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\n",
        )
        .unwrap();
        fs::write(
            d.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        fs::write(d.join("memory.peak"), "8192\n").unwrap();
        fs::write(d.join("memory.stat"), "anon 700\nfile 300\nkernel 5\n").unwrap();
        fs::write(
            d.join("cpu.pressure"),
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=1234\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=56\n",
        )
        .unwrap();
        fs::write(
            d.join("memory.pressure"),
            "some avg10=1.00 avg60=0.50 avg300=0.10 total=99\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=9\n",
        )
        .unwrap();
        let s = cg.stats();
        assert_eq!((s.memory_rss, s.memory_cache), (700, 300));
        let p = s.pressure.unwrap();
        assert_eq!((p.cpu_some_us, p.cpu_full_us), (1234, 56));
        assert_eq!((p.memory_some_us, p.memory_full_us), (99, 9));
        assert_eq!((p.io_some_us, p.io_full_us), (0, 0));
        assert_eq!((s.cpu_usage_ns, s.cpu_user_ns), (2_000_000, 1_500_000));
        assert_eq!((s.oom_kills, s.memory_peak), (1, 8192));
        cg.remove().unwrap();
    }
}
