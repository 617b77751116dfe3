//! The agent's state on disk: the work directory layout (`paths`), and,
//! with the agent issue, checkpoints and recovery.

pub mod paths;
