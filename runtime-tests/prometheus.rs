//! Issue 14, item 4: `/metrics` in the Prometheus text format, scraped
//! from a running agent: `mesos_exporter`'s names for the agent's and the
//! executors' figures, the launch histograms, and a well-formed exposition
//! (every sample of a declared family, one value each).

use crate::support::master::{self, command_task, shell, AgentProcess, FakeMaster};
use crate::support::{enabled, Fixture};
use butte::proto::mesos::{command_info, TaskState};
use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

/// A scraped sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

fn scrape(agent: &AgentProcess) -> (String, Vec<Sample>, Vec<String>) {
    let url = format!("http://{}/metrics", agent.endpoint());
    let resp = ureq::get(&url)
        .timeout(Duration::from_secs(10))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}; {}", agent.log_tail(40)));
    let kind = resp.header("Content-Type").unwrap_or("").to_string();
    let text = resp.into_string().unwrap();
    let mut samples = Vec::new();
    let mut families = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families.push(rest.split_whitespace().next().unwrap().to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        samples.push(parse(line));
    }
    (kind, samples, families)
}

/// `name{k="v",...} value` (label values here hold no `"` or `,`).
fn parse(line: &str) -> Sample {
    let (head, value) = line.rsplit_once(' ').expect("a value");
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    let (name, labels) = match head.split_once('{') {
        None => (head.to_string(), BTreeMap::new()),
        Some((n, rest)) => {
            let body = rest.strip_suffix('}').expect("closing brace");
            let labels = body
                .split(',')
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("k=v");
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            (n.to_string(), labels)
        }
    };
    (name, labels, value)
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
}

#[test]
fn metrics_speak_prometheus_with_mesos_exporter_names_and_launch_histograms() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let agent = AgentProcess::start(&fx, &master, &[]);
    master.register();
    let fw = master::framework("prometheus");

    // A task with a URI to fetch, which finishes, and one that runs on.
    let payload = fx.work.path().join("payload.txt");
    fs::write(&payload, "fetched\n").unwrap();
    let mut fetched = command_task("fetched", "cat payload");
    let mut command = shell("cat payload");
    command.uris.push(command_info::Uri {
        value: payload.display().to_string(),
        extract: Some(false),
        output_file: Some("payload".into()),
        ..Default::default()
    });
    fetched.command = Some(command);
    master.run_task(&fw, &fetched);
    master.ack_until("fetched", TaskState::TaskFinished);
    master.run_task(&fw, &command_task("steady", "sleep 600"));
    master.ack_until("steady", TaskState::TaskRunning);

    let (kind, samples, families) = scrape(&agent);
    assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
    for (name, _, _) in &samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| families.iter().any(|x| x == f))
            })
            .unwrap_or(name);
        assert!(families.iter().any(|f| f == family), "{name} has no # TYPE");
    }
    let get = |name: &str, labels: &[(&str, &str)]| {
        value(&samples, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?}"))
    };
    assert_eq!(get("mesos_slave_registered", &[]), 1.0);
    assert_eq!(
        get("mesos_slave_task_states_current", &[("state", "running")]),
        1.0
    );
    assert_eq!(
        get(
            "mesos_slave_task_states_exit_total",
            &[("state", "finished")]
        ),
        1.0
    );
    assert!(get("mesos_slave_cpus", &[("type", "used")]) > 0.0);
    assert!(get("mesos_system_load_1min", &[]) >= 0.0);
    // The running executor's figures, labelled as mesos_exporter does.
    let steady = [("id", "steady"), ("source", "steady")];
    assert!(get("mem_rss_bytes", &steady) > 0.0);
    assert!(get("mem_total_bytes", &steady) >= get("mem_rss_bytes", &steady));
    assert!(get("processes", &steady) >= 2.0);
    assert!(get("cpu_user_seconds_total", &steady) >= 0.0);
    // Both launches timed, one fetch among them.
    assert_eq!(get("butte_launch_seconds_count", &[]), 2.0);
    assert_eq!(get("butte_launch_seconds_bucket", &[("le", "+Inf")]), 2.0);
    assert_eq!(get("butte_fetch_seconds_count", &[]), 1.0);
    assert_eq!(get("butte_image_provision_seconds_count", &[]), 0.0);
    assert!(get("butte_launch_seconds_sum", &[]) > 0.0);
    master::finish(fx, master, agent);
}
