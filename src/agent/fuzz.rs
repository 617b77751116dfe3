//! The fuzz entry for master messages (see `fuzz/`): one HTTP request from
//! the agent's libprocess port through the transport's parser (with its own
//! checks, `wire::fuzz::request`) and then the agent's decoding by name.
//! A message that decodes must encode to bytes that decode to the same
//! message, required fields and all.

use prost::Message as _;

use super::messages::{decode, Incoming};

/// One request through the transport and the decoder. Panics when an
/// invariant breaks.
pub fn libprocess(data: &[u8]) {
    let Some(message) = crate::wire::fuzz::request(data) else {
        return;
    };
    let Ok(incoming) = decode(&message.name, &message.body) else {
        return;
    };
    // A message taken but deliberately not decoded has nothing to re-encode.
    let Some(bytes) = encoded(&incoming) else {
        return;
    };
    let again = decode(&message.name, &bytes)
        .unwrap_or_else(|e| panic!("{} does not decode once re-encoded: {e}", message.name));
    assert_eq!(encoded(&again), Some(bytes), "{}", message.name);
}

fn encoded(incoming: &Incoming) -> Option<Vec<u8>> {
    Some(match incoming {
        Incoming::Registered(m) => m.encode_to_vec(),
        Incoming::Reregistered(m) => m.encode_to_vec(),
        Incoming::Ping(m) => m.encode_to_vec(),
        Incoming::RunTask(m) => m.encode_to_vec(),
        Incoming::RunTaskGroup(m) => m.encode_to_vec(),
        Incoming::KillTask(m) => m.encode_to_vec(),
        Incoming::Acknowledgement(m) => m.encode_to_vec(),
        Incoming::ShutdownFramework(m) => m.encode_to_vec(),
        Incoming::ShutdownExecutor(m) => m.encode_to_vec(),
        Incoming::FrameworkToExecutor(m) => m.encode_to_vec(),
        Incoming::UpdateFramework(m) => m.encode_to_vec(),
        Incoming::Shutdown(m) => m.encode_to_vec(),
        Incoming::CheckpointResources(m) => m.encode_to_vec(),
        Incoming::Drain(m) => m.encode_to_vec(),
        Incoming::Ignored(..) => return None,
    })
}
