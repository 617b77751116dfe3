//! butte: a Mesos agent and its container runtime. See ARCHITECTURE.md for
//! the layers; each module's doc says what it owns.

pub mod agent;
pub mod api;
pub mod archive;
pub mod containerizer;
pub mod executors;
pub mod fetch;
pub mod image;
pub mod mount;
pub mod proto;
pub mod runtime;
pub mod state;
pub mod support;
pub mod wire;
