//! The subcommands that talk to a running agent over its HTTP API, in the
//! style of `docker`/`podman`: `ps`, `logs`, `stats`, `kill`. Each takes
//! `--agent URL` (default the local agent) and HTTP Basic credentials.
//! Part of the `butte` program (main.rs), not of the library.

mod client;
mod kill;
mod logs;
mod ps;
mod stats;
mod table;
mod view;

pub use kill::{main as kill, KillArgs};
pub use logs::{main as logs, LogsArgs};
pub use ps::{main as ps, PsArgs};
pub use stats::{main as stats, StatsArgs};
