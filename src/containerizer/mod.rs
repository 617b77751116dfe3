//! Mesos semantics on top of the runtime: turns what a task asks for into
//! a `SandboxSpec` (sandbox directory and its mount, `MESOS_*`
//! environment, limits) and reports how it ended. `standalone` serves
//! `butte run`, the single-machine entry point with no master.

pub mod docker;
pub mod mesos;
pub mod network;
pub mod provisioner;
pub mod security;
pub mod standalone;
