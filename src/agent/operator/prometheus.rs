//! `/metrics`: the agent's figures in the Prometheus text format (0.0.4),
//! so that Prometheus scrapes the agent itself instead of a
//! `mesos_exporter` beside it.
//!
//! - The `/metrics/snapshot` keys under the names `mesos_exporter` gives
//!   them: `mesos_slave_cpus{type="used"|"free"}` (and `mem`, `disk`,
//!   `gpus`, their `_revocable` twins), `mesos_slave_registered`,
//!   `mesos_slave_uptime_seconds`, `mesos_slave_executor_state{state}`,
//!   `mesos_slave_frameworks_active`, `mesos_slave_executors_terminated`,
//!   `mesos_slave_executors_preempted`,
//!   `mesos_slave_task_states_exit_total{state}`,
//!   `mesos_slave_task_states_current{state}`,
//!   `mesos_slave_messages_outcomes_total{type,outcome}`. Every other key
//!   (`system/load_1min`, `containerizer/...`) as a gauge named
//!   `mesos_` + the key with `/` as `_`, so none is lost.
//! - Per running executor, the `/monitor/statistics` figures under
//!   `mesos_exporter`'s names (`cpu_user_seconds_total`, `mem_rss_bytes`,
//!   `processes`, ...), labelled `id`, `framework_id`, `source` as there.
//! - Beyond Mesos: `butte_container_pressure_seconds_total{resource,kind}`
//!   per executor (cgroup v2 PSI: time some or all of its tasks stalled on
//!   cpu, memory, io; absent where the kernel has none), and histograms of
//!   the time spent launching containers: `butte_fetch_seconds`,
//!   `butte_image_provision_seconds` (pulls included) and
//!   `butte_launch_seconds` (request to executor exec).

use super::snapshot::{ExecutorView, Snapshot};
use crate::containerizer::mesos::LaunchTimings;
use crate::runtime::ResourceStats;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

/// Upper bounds (seconds) of the launch histograms' buckets.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// A cumulative histogram over [`BUCKETS`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Observations at or under each bound.
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, n) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if secs <= *bound {
                *n += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }
}

/// The launch histograms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    pub fetch: Histogram,
    pub provision: Histogram,
    pub launch: Histogram,
}

impl Timings {
    pub fn record(&mut self, t: &LaunchTimings) {
        if let Some(d) = t.fetch {
            self.fetch.observe(d);
        }
        if let Some(d) = t.provision {
            self.provision.observe(d);
        }
        self.launch.observe(t.total);
    }
}

/// A family of one label over several snapshot keys: name, type, help,
/// label, (key, label value)s.
type Labelled = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// One running executor's figures.
pub struct ExecutorFigures<'a> {
    pub executor: &'a ExecutorView,
    /// Its `/monitor/statistics` object.
    pub statistics: Value,
    pub stats: ResourceStats,
}

/// The text of `/metrics`. METRICS is the `/metrics/snapshot` object.
pub fn render(s: &Snapshot, metrics: &Value, executors: &[ExecutorFigures]) -> String {
    let mut out = Text::default();
    let empty = serde_json::Map::new();
    let m = metrics.as_object().unwrap_or(&empty);
    let get = |k: &str| m.get(k).and_then(Value::as_f64);
    let mut used: BTreeSet<&str> = BTreeSet::new();

    for res in [
        "cpus",
        "cpus_revocable",
        "mem",
        "mem_revocable",
        "disk",
        "disk_revocable",
        "gpus",
        "gpus_revocable",
    ] {
        let (total_key, used_key) = resource_keys(res);
        let (Some(total), Some(in_use)) = (get(&total_key), get(&used_key)) else {
            continue;
        };
        let name = format!("mesos_slave_{res}");
        out.family(
            &name,
            "gauge",
            &format!("Current {res} resources of the agent."),
        );
        out.sample(&name, &[("type", "free")], total - in_use);
        out.sample(&name, &[("type", "used")], in_use);
        used.extend(
            m.keys()
                .map(String::as_str)
                .filter(|k| *k == total_key || *k == used_key),
        );
    }
    let single: [(&str, &str, &str, &str); 5] = [
        (
            "slave/registered",
            "mesos_slave_registered",
            "gauge",
            "1 if the agent is registered with a master, 0 if not.",
        ),
        (
            "slave/uptime_secs",
            "mesos_slave_uptime_seconds",
            "gauge",
            "Seconds the agent has been running.",
        ),
        (
            "slave/frameworks_active",
            "mesos_slave_frameworks_active",
            "gauge",
            "Current number of active frameworks.",
        ),
        (
            "slave/executors_terminated",
            "mesos_slave_executors_terminated",
            "counter",
            "Total number of executor terminations.",
        ),
        (
            "slave/executors_preempted",
            "mesos_slave_executors_preempted",
            "counter",
            "Total number of executor preemptions.",
        ),
    ];
    for (key, name, kind, help) in single {
        if let Some(v) = get(key) {
            out.family(name, kind, help);
            out.sample(name, &[], v);
            used.insert(key);
        }
    }
    let labelled: [Labelled; 3] = [
        (
            "mesos_slave_executor_state",
            "gauge",
            "Current number of executors by state.",
            "state",
            &[
                ("slave/executors_registering", "registering"),
                ("slave/executors_running", "running"),
                ("slave/executors_terminating", "terminating"),
            ],
        ),
        (
            "mesos_slave_task_states_exit_total",
            "counter",
            "Total number of tasks processed by exit state.",
            "state",
            &[
                ("slave/tasks_error", "errored"),
                ("slave/tasks_failed", "failed"),
                ("slave/tasks_finished", "finished"),
                ("slave/tasks_killed", "killed"),
                ("slave/tasks_lost", "lost"),
            ],
        ),
        (
            "mesos_slave_task_states_current",
            "counter",
            "Current number of tasks by state.",
            "state",
            &[
                ("slave/tasks_running", "running"),
                ("slave/tasks_staging", "staging"),
                ("slave/tasks_starting", "starting"),
            ],
        ),
    ];
    for (name, kind, help, label, keys) in labelled {
        out.family(name, kind, help);
        for (key, value) in keys {
            out.sample(name, &[(label, value)], get(key).unwrap_or(0.0));
            used.insert(key);
        }
    }
    let name = "mesos_slave_messages_outcomes_total";
    out.family(name, "counter", "Total number of messages by outcome.");
    for (key, kind, outcome) in [
        ("slave/valid_framework_messages", "framework", "valid"),
        ("slave/invalid_framework_messages", "framework", "invalid"),
        ("slave/valid_status_updates", "status", "valid"),
        ("slave/invalid_status_updates", "status", "invalid"),
    ] {
        out.sample(
            name,
            &[("type", kind), ("outcome", outcome)],
            get(key).unwrap_or(0.0),
        );
        used.insert(key);
    }
    // The rest of the snapshot, as it is.
    for (key, value) in m {
        if used.contains(key.as_str()) {
            continue;
        }
        let Some(v) = value.as_f64() else { continue };
        let name = format!("mesos_{}", sanitize(key));
        out.family(&name, "gauge", &format!("{key} of /metrics/snapshot."));
        out.sample(&name, &[], v);
    }

    per_executor(&mut out, executors);
    let t = &s.counters.timings;
    for (name, help, h) in [
        (
            "butte_fetch_seconds",
            "Time to fetch a container's URIs.",
            &t.fetch,
        ),
        (
            "butte_image_provision_seconds",
            "Time to provision a container's images, pulls included.",
            &t.provision,
        ),
        (
            "butte_launch_seconds",
            "Time from a launch request to the executor's exec.",
            &t.launch,
        ),
    ] {
        out.histogram(name, help, h);
    }
    out.text
}

/// The `/monitor/statistics` keys, as `mesos_exporter` names them.
const STATISTICS: [(&str, &str, &str, &str); 15] = [
    (
        "processes",
        "processes",
        "gauge",
        "Current number of processes.",
    ),
    ("threads", "threads", "gauge", "Current number of threads."),
    (
        "cpus_limit",
        "cpus_limit",
        "gauge",
        "Current limit of CPUs.",
    ),
    (
        "cpus_system_time_secs",
        "cpu_system_seconds_total",
        "counter",
        "Total system CPU seconds.",
    ),
    (
        "cpus_user_time_secs",
        "cpu_user_seconds_total",
        "counter",
        "Total user CPU seconds.",
    ),
    (
        "cpus_throttled_time_secs",
        "cpu_throttled_seconds_total",
        "counter",
        "Total time CPU was throttled by CFS bandwidth control.",
    ),
    (
        "cpus_nr_periods",
        "cpu_nr_periods_total",
        "counter",
        "Total number of elapsed CFS enforcement intervals.",
    ),
    (
        "cpus_nr_throttled",
        "cpu_nr_throttled_total",
        "counter",
        "Total number of throttled CFS enforcement intervals.",
    ),
    (
        "mem_limit_bytes",
        "mem_limit_bytes",
        "gauge",
        "Current memory limit in bytes.",
    ),
    (
        "mem_rss_bytes",
        "mem_rss_bytes",
        "gauge",
        "Current rss memory usage.",
    ),
    (
        "mem_total_bytes",
        "mem_total_bytes",
        "gauge",
        "Current total memory usage.",
    ),
    (
        "mem_cache_bytes",
        "mem_cache_bytes",
        "gauge",
        "Current page cache memory usage.",
    ),
    (
        "mem_swap_bytes",
        "mem_swap_bytes",
        "gauge",
        "Current swap usage.",
    ),
    (
        "disk_limit_bytes",
        "disk_limit_bytes",
        "gauge",
        "Current disk limit in bytes.",
    ),
    (
        "disk_used_bytes",
        "disk_used_bytes",
        "gauge",
        "Current disk usage.",
    ),
];

fn per_executor(out: &mut Text, executors: &[ExecutorFigures]) {
    let labels = |e: &ExecutorFigures| -> [(&'static str, String); 3] {
        [
            ("id", e.executor.id.clone()),
            ("framework_id", e.executor.framework_id.clone()),
            ("source", e.executor.info.source().to_string()),
        ]
    };
    for (key, name, kind, help) in STATISTICS {
        let rows: Vec<_> = executors
            .iter()
            .filter_map(|e| Some((e, e.statistics.get(key)?.as_f64()?)))
            .collect();
        if rows.is_empty() {
            continue;
        }
        out.family(name, kind, help);
        for (e, v) in rows {
            let l = labels(e);
            out.sample(name, &l.each_ref().map(|(k, v)| (*k, v.as_str())), v);
        }
    }
    let name = "butte_container_pressure_seconds_total";
    let with_psi: Vec<_> = executors
        .iter()
        .filter_map(|e| Some((e, e.stats.pressure?)))
        .collect();
    if with_psi.is_empty() {
        return;
    }
    out.family(
        name,
        "counter",
        "Time some (or all: full) of the container's tasks stalled on a resource (PSI).",
    );
    for (e, p) in with_psi {
        let l = labels(e);
        for (resource, kind, us) in [
            ("cpu", "some", p.cpu_some_us),
            ("cpu", "full", p.cpu_full_us),
            ("memory", "some", p.memory_some_us),
            ("memory", "full", p.memory_full_us),
            ("io", "some", p.io_some_us),
            ("io", "full", p.io_full_us),
        ] {
            let mut all: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
            all.push(("resource", resource));
            all.push(("kind", kind));
            out.sample(name, &all, us as f64 / 1e6);
        }
    }
}

/// `slave/<res>_total` and `slave/<res>_used` (revocable ones:
/// `slave/cpus_revocable_total`).
fn resource_keys(res: &str) -> (String, String) {
    (format!("slave/{res}_total"), format!("slave/{res}_used"))
}

/// A metric name from a snapshot key: `[a-zA-Z0-9_:]`, the rest as `_`.
fn sanitize(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The exposition text being written.
#[derive(Default)]
struct Text {
    text: String,
}

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
    }

    fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (bound, n) in BUCKETS.iter().zip(h.counts) {
            self.sample(&bucket, &[("le", &number(*bound))], n as f64);
        }
        self.sample(&bucket, &[("le", "+Inf")], h.count as f64);
        self.sample(&format!("{name}_sum"), &[], h.sum);
        self.sample(&format!("{name}_count"), &[], h.count as f64);
    }
}

/// A sample value as Prometheus reads it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        // Shortest text that reads back as the same float.
        format!("{v}")
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Pressure;

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let mut h = Histogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(40));
        h.observe(Duration::from_secs(200));
        let mut t = Text::default();
        t.histogram("x_seconds", "X.", &h);
        let text = t.text;
        assert!(
            text.contains("x_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("x_seconds_bucket{le=\"0.05\"} 2\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"120\"} 2\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("x_seconds_count 3\n"), "{text}");
        assert!(text.contains("x_seconds_sum 200.043"), "{text}");
        assert!(text.starts_with("# HELP x_seconds X.\n# TYPE x_seconds histogram\n"));
    }

    #[test]
    fn labels_and_help_are_escaped_and_names_sanitized() {
        let mut t = Text::default();
        t.family("n", "gauge", "a\nb \\ c");
        t.sample("n", &[("id", "a\"b\\c\nd")], 1.5);
        assert_eq!(
            t.text,
            "# HELP n a\\nb \\\\ c\n# TYPE n gauge\nn{id=\"a\\\"b\\\\c\\nd\"} 1.5\n"
        );
        assert_eq!(
            sanitize("containerizer/mesos/disk-x.y"),
            "containerizer_mesos_disk_x_y"
        );
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(3.0), "3");
    }

    #[test]
    fn snapshot_keys_get_mesos_exporter_names_and_the_rest_keep_theirs() {
        let metrics = serde_json::json!({
            "slave/cpus_total": 2.0, "slave/cpus_used": 0.5,
            "slave/registered": 1.0, "slave/tasks_running": 3.0,
            "slave/tasks_finished": 7.0, "slave/executors_running": 3.0,
            "slave/valid_status_updates": 9.0,
            "system/load_1min": 0.25,
        });
        let snapshot = super::super::tests::snapshot();
        let ex = super::super::tests::executor("e1", vec![]);
        let stats = ResourceStats {
            pressure: Some(Pressure {
                cpu_some_us: 2_500_000,
                ..Default::default()
            }),
            ..Default::default()
        };
        let figures = [ExecutorFigures {
            executor: &ex,
            statistics: serde_json::json!({"mem_rss_bytes": 4096.0, "cpus_user_time_secs": 1.5}),
            stats,
        }];
        let text = render(&snapshot, &metrics, &figures);
        for line in [
            "mesos_slave_cpus{type=\"free\"} 1.5\n",
            "mesos_slave_cpus{type=\"used\"} 0.5\n",
            "mesos_slave_registered 1\n",
            "mesos_slave_task_states_current{state=\"running\"} 3\n",
            "mesos_slave_task_states_exit_total{state=\"finished\"} 7\n",
            "mesos_slave_executor_state{state=\"running\"} 3\n",
            "mesos_slave_messages_outcomes_total{type=\"status\",outcome=\"valid\"} 9\n",
            "mesos_system_load_1min 0.25\n",
            "mem_rss_bytes{id=\"e1\",framework_id=\"F\",source=\"e1\"} 4096\n",
            "cpu_user_seconds_total{id=\"e1\",framework_id=\"F\",source=\"e1\"} 1.5\n",
            "butte_container_pressure_seconds_total{id=\"e1\",framework_id=\"F\",source=\"e1\",resource=\"cpu\",kind=\"some\"} 2.5\n",
            "butte_launch_seconds_count 0\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        // Mapped keys are not repeated under their raw names.
        assert!(!text.contains("mesos_slave_cpus_total"), "{text}");
        // Every sample line belongs to a declared family.
        let declared: BTreeSet<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| declared.contains(f)))
                .unwrap_or(name);
            assert!(declared.contains(family), "{name} has no # TYPE");
        }
    }
}
