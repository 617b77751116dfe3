//! Fuzz target `image_reference`: see fuzz/README.md and butte::fuzzing.

fn main() {
    let run = butte::fuzzing::target("image_reference").expect("a target of butte::fuzzing");
    afl::fuzz!(|data: &[u8]| run(data));
}
