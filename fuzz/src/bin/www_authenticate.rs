//! Fuzz target `www_authenticate`: see fuzz/README.md and butte::fuzzing.

fn main() {
    let run = butte::fuzzing::target("www_authenticate").expect("a target of butte::fuzzing");
    afl::fuzz!(|data: &[u8]| run(data));
}
