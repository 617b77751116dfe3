//! Fuzz target `executor_call`: see fuzz/README.md and butte::fuzzing.

fn main() {
    let run = butte::fuzzing::target("executor_call").expect("a target of butte::fuzzing");
    afl::fuzz!(|data: &[u8]| run(data));
}
