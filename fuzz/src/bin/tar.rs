//! Fuzz target `tar`: see fuzz/README.md and butte::fuzzing.

fn main() {
    let run = butte::fuzzing::target("tar").expect("a target of butte::fuzzing");
    afl::fuzz!(|data: &[u8]| run(data));
}
