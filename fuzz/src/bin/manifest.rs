//! Fuzz target `manifest`: see fuzz/README.md and butte::fuzzing.

fn main() {
    let run = butte::fuzzing::target("manifest").expect("a target of butte::fuzzing");
    afl::fuzz!(|data: &[u8]| run(data));
}
