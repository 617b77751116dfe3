//! HTTP surfaces of the agent: the v1 executor API and its RecordIO codec.

pub mod executor;
pub mod recordio;
