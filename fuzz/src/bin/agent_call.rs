//! Fuzz target `agent_call`: see fuzz/README.md and butte::fuzzing.

fn main() {
    let run = butte::fuzzing::target("agent_call").expect("a target of butte::fuzzing");
    afl::fuzz!(|data: &[u8]| run(data));
}
