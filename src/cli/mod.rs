//! The subcommands that talk to a running agent over its HTTP API, in the
//! style of `docker`/`podman`: `ps`, `logs`, `stats`, `kill`, `exec`. Each takes
//! `--agent URL` (default the local agent) and HTTP Basic credentials.
//! Part of the `butte` program (main.rs), not of the library.

mod client;
mod exec;
mod kill;
mod logs;
mod ps;
mod stats;
mod table;
mod view;

pub use exec::{main as exec, ExecArgs};

/// The running standalone container NAME names (its id, or a prefix of
/// one id), for the commands that take a task or a container.
fn standalone_container(
    client: &client::Client,
    name: &str,
) -> anyhow::Result<view::ContainerView> {
    use anyhow::Context;
    let list = client
        .containers()
        .context("reading the agent's containers")?;
    let standalone: Vec<_> = view::containers(&list)
        .into_iter()
        .filter(|c| c.standalone())
        .collect();
    Ok(view::find(&standalone, |c| c.id.as_str(), name, "task or container")?.clone())
}
pub use kill::{main as kill, KillArgs};
pub use logs::{main as logs, LogsArgs};
pub use ps::{main as ps, PsArgs};
pub use stats::{main as stats, StatsArgs};

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(clap::Subcommand)]
    enum Command {
        Ps(PsArgs),
        Logs(LogsArgs),
        Stats(StatsArgs),
        Kill(KillArgs),
        Exec(ExecArgs),
    }

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("butte").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .command
    }

    #[test]
    fn the_subcommands_take_docker_like_options() {
        let Command::Logs(l) = parse(&["logs", "-f", "--stderr", "-n", "20", "web"]) else {
            panic!("not logs")
        };
        assert!(l.follow && l.stderr);
        assert_eq!((l.tail, l.task.as_str()), (Some(20), "web"));
        let Command::Kill(k) = parse(&["kill", "-s", "TERM", "--agent", "10.0.0.2:5051", "web"])
        else {
            panic!("not kill")
        };
        assert_eq!((k.signal, k.agent.agent.as_str()), (15, "10.0.0.2:5051"));
        assert_eq!(k.wait, std::time::Duration::from_secs(30));
        let Command::Ps(p) = parse(&["ps", "-a", "--json", "--principal", "ops"]) else {
            panic!("not ps")
        };
        assert!(p.all && p.json);
        assert_eq!(p.agent.principal.as_deref(), Some("ops"));
        let Command::Stats(s) = parse(&["stats", "--no-stream"]) else {
            panic!("not stats")
        };
        assert!(s.no_stream && !s.no_trunc);
        assert!(Cli::try_parse_from(["butte", "kill", "-s", "NOPE", "web"]).is_err());
        assert!(Cli::try_parse_from(["butte", "logs"]).is_err());
        let Command::Exec(e) = parse(&["exec", "-it", "web", "--", "sh", "-c", "echo hi"]) else {
            panic!("not exec")
        };
        assert!(e.interactive && e.tty);
        assert_eq!(e.task, "web");
        assert_eq!(e.command, ["sh", "-c", "echo hi"]);
        assert!(Cli::try_parse_from(["butte", "exec", "web"]).is_err());
    }
}
