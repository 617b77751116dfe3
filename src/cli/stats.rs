//! `butte stats`: each container's CPU, memory and processes, from the
//! agent's GET_CONTAINERS, refreshed every second as `docker stats`.

use super::client::{AgentArgs, Client};
use super::table::{self, or_dash};
use super::view::{self, ContainerView, Usage};
use anyhow::Context;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

/// Between two samples.
const INTERVAL: Duration = Duration::from_secs(1);

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Print one table and exit.
    #[arg(long)]
    pub no_stream: bool,
    /// Show whole container ids.
    #[arg(long)]
    pub no_trunc: bool,
}

/// The table for containers sampled now and, a moment before, `earlier`
/// (by container id): CPU% is the CPU time used in between.
pub fn render(now: &[ContainerView], earlier: &BTreeMap<String, Usage>, no_trunc: bool) -> String {
    let rows: Vec<Vec<String>> = now
        .iter()
        .map(|c| {
            let id = if no_trunc {
                c.id.clone()
            } else {
                c.id.chars().take(12).collect()
            };
            let u = c.usage;
            let cpu = u.and_then(|u| earlier.get(&c.id).and_then(|e| u.cpu_percent(e)));
            let mem_pct = u
                .filter(|u| u.mem_limit_bytes > 0)
                .map(|u| u.mem_rss_bytes as f64 / u.mem_limit_bytes as f64 * 100.0);
            vec![
                id,
                or_dash(Some(c.executor_id.clone())),
                table::percent(cpu),
                or_dash(u.map(|u| table::memory(u.mem_rss_bytes, u.mem_limit_bytes))),
                table::percent(mem_pct),
                or_dash(u.and_then(|u| u.processes).map(|p| p.to_string())),
            ]
        })
        .collect();
    table::render(
        &[
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "PIDS",
        ],
        &rows,
    )
}

fn sample(client: &Client) -> anyhow::Result<Vec<ContainerView>> {
    let list = client
        .containers()
        .context("reading the agent's containers")?;
    Ok(view::containers(&list))
}

pub fn main(args: StatsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.agent)?;
    let mut earlier = view::usage_by_container(&sample(&client)?);
    let clear = !args.no_stream && std::io::stdout().is_terminal();
    loop {
        std::thread::sleep(INTERVAL);
        let now = sample(&client)?;
        let table = render(&now, &earlier, args.no_trunc);
        let mut out = std::io::stdout().lock();
        if clear {
            // Home and clear the screen, as `docker stats` redraws.
            write!(out, "\x1b[H\x1b[2J")?;
        } else if !args.no_stream {
            writeln!(out)?;
        }
        write!(out, "{table}")?;
        out.flush()?;
        if args.no_stream {
            return Ok(ExitCode::SUCCESS);
        }
        earlier = view::usage_by_container(&now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stats_show_cpu_between_samples_memory_against_its_limit_and_pids() {
        let stats = |t: f64, cpu: f64| {
            json!({"timestamp": t, "cpus_user_time_secs": cpu, "cpus_system_time_secs": 0.0,
                   "mem_rss_bytes": 16777216, "mem_limit_bytes": 67108864, "processes": 2})
        };
        let before = view::containers(&[json!({
            "framework_id": {"value": "fw"}, "executor_id": {"value": "web-1"},
            "container_id": {"value": "0529e474-282a-492f-b5ee-3d5049301e2f"},
            "resource_statistics": stats(10.0, 1.0)})]);
        let now = view::containers(&[
            json!({"framework_id": {"value": "fw"}, "executor_id": {"value": "web-1"},
                   "container_id": {"value": "0529e474-282a-492f-b5ee-3d5049301e2f"},
                   "resource_statistics": stats(11.0, 1.25)}),
            json!({"container_id": {"value": "new"}}),
        ]);
        let earlier = view::usage_by_container(&before);
        assert_eq!(
            render(&now, &earlier, false),
            "CONTAINER ID   NAME    CPU %    MEM USAGE / LIMIT     MEM %    PIDS\n\
             0529e474-282   web-1   25.00%   16.0 MiB / 64.0 MiB   25.00%   2\n\
             new            -       --       -                     --       -\n"
        );
        assert!(render(&now, &earlier, true).contains("0529e474-282a-492f-b5ee-3d5049301e2f"));
    }
}
