//! Fuzz target `uri`: see fuzz/README.md and butte::fuzzing.

fn main() {
    let run = butte::fuzzing::target("uri").expect("a target of butte::fuzzing");
    afl::fuzz!(|data: &[u8]| run(data));
}
