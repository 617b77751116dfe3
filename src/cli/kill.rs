//! `butte kill`: ends a task by signalling its executor's container
//! (KILL_CONTAINER, as Mesos' agent serves it for any top-level
//! container; the agent then sends the task's terminal update), or a
//! standalone container.

use super::client::{AgentArgs, Client};
use super::view::{self, MatchError, TaskView};
use anyhow::{bail, Context};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct KillArgs {
    #[command(flatten)]
    pub agent: AgentArgs,
    /// The signal: a name (KILL, SIGTERM) or a number.
    #[arg(short, long, default_value = "KILL", value_parser = parse_signal)]
    pub signal: i32,
    /// Kill a task of a group even though the other tasks of its executor
    /// end with it (they share its container).
    #[arg(long)]
    pub group: bool,
    /// How long to wait for the task's terminal state.
    #[arg(long, default_value = "30s", value_parser = crate::parse_duration_arg)]
    pub wait: Duration,
    /// The task (its id or a unique prefix), or a standalone container.
    pub task: String,
}

/// A signal by name (with or without `SIG`, any case) or number.
pub fn parse_signal(s: &str) -> Result<i32, String> {
    if let Ok(n) = s.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n)
            .map(|s| s as i32)
            .map_err(|_| format!("{n} is not a signal number"));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&name)
        .map(|s| s as i32)
        .map_err(|_| format!("'{s}' is not a signal name"))
}

/// The other live tasks that share `task`'s executor container.
pub fn sharing<'a>(task: &TaskView, tasks: &'a [TaskView]) -> Vec<&'a TaskView> {
    tasks
        .iter()
        .filter(|t| !t.terminal() && t.id != task.id)
        .filter(|t| t.framework_id == task.framework_id && t.container_id == task.container_id)
        .collect()
}

fn kill_task(
    client: &Client,
    args: &KillArgs,
    task: &TaskView,
    tasks: &[TaskView],
) -> anyhow::Result<()> {
    if task.terminal() {
        bail!("task {} has already ended ({})", task.id, task.state);
    }
    if task.container_id.is_empty() {
        bail!(
            "task {} has no container yet ({}): nothing to kill",
            task.id,
            task.state
        );
    }
    let others = sharing(task, tasks);
    if !others.is_empty() && !args.group {
        let ids: Vec<&str> = others.iter().map(|t| t.id.as_str()).collect();
        bail!(
            "task {} shares its executor's container {} with {}: killing it ends them too \
             (pass --group to do so)",
            task.id,
            task.container_id,
            ids.join(", ")
        );
    }
    client
        .kill_container(&task.container_id, args.signal)
        .with_context(|| format!("killing task {} (container {})", task.id, task.container_id))?;
    let deadline = Instant::now() + args.wait;
    loop {
        let state = client.state().context("reading the agent's state")?;
        let now = view::tasks(&state)
            .into_iter()
            .find(|t| t.id == task.id && t.framework_id == task.framework_id);
        match now {
            Some(t) if !t.terminal() => {
                if Instant::now() >= deadline {
                    bail!(
                        "task {} is still {} {:?} after the signal",
                        t.id,
                        t.state,
                        args.wait
                    );
                }
            }
            Some(t) => {
                println!("{} {}", t.id, t.state);
                return Ok(());
            }
            None => {
                println!("{}", task.id);
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn main(args: KillArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.agent)?;
    let state = client.state().context("reading the agent's state")?;
    let tasks = view::tasks(&state);
    match view::find(&tasks, |t| t.id.as_str(), &args.task, "task") {
        Ok(task) => kill_task(&client, &args, task, &tasks)?,
        Err(MatchError::None { .. }) => {
            let c = super::standalone_container(&client, &args.task)?;
            client
                .kill_container(&c.id, args.signal)
                .with_context(|| format!("killing container {}", c.id))?;
            println!("{}", c.id);
        }
        Err(e) => return Err(e.into()),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_taken_by_name_or_number() {
        assert_eq!(parse_signal("KILL"), Ok(9));
        assert_eq!(parse_signal("sigterm"), Ok(15));
        assert_eq!(parse_signal("TERM"), Ok(15));
        assert_eq!(parse_signal("10"), Ok(10));
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("999").is_err());
    }

    fn task(id: &str, container: &str, state: &str) -> TaskView {
        TaskView {
            id: id.into(),
            name: String::new(),
            framework_id: "fw".into(),
            framework: "fw".into(),
            executor_id: "ex".into(),
            executor_type: "DEFAULT".into(),
            container_id: container.into(),
            directory: String::new(),
            state: state.into(),
            image: None,
            started: None,
        }
    }

    #[test]
    fn the_live_tasks_of_the_same_container_are_the_ones_a_kill_would_take() {
        let tasks = vec![
            task("a", "c1", "TASK_RUNNING"),
            task("b", "c1", "TASK_RUNNING"),
            task("c", "c1", "TASK_FINISHED"),
            task("d", "c2", "TASK_RUNNING"),
        ];
        let ids: Vec<&str> = sharing(&tasks[0], &tasks)
            .iter()
            .map(|t| t.id.as_str())
            .collect();
        assert_eq!(ids, ["b"]);
        assert!(sharing(&tasks[3], &tasks).is_empty());
    }
}
