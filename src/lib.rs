//! butte: a Mesos agent and its container runtime. See ARCHITECTURE.md for
//! the layers; each module's doc says what it owns.

pub mod agent;
pub mod api;
pub mod archive;
pub mod containerizer;
pub mod executors;
pub mod fetch;
pub mod image;
pub mod mount;
pub mod net;
pub mod proto;
pub mod runtime;
pub mod state;
pub mod support;
pub mod wire;

/// The fuzz targets' entry points (see `fuzz/`): each takes arbitrary
/// bytes, runs one parser of untrusted input, and panics only when an
/// invariant breaks. `fuzz/corpus/<name>/` holds each one's seeds;
/// `tests/fuzz_corpus.rs` runs them without a fuzzing engine.
#[doc(hidden)]
pub mod fuzzing {
    /// A target's entry point.
    pub type Entry = fn(&[u8]);

    /// Every target, by the name of its binary and corpus directory.
    pub const TARGETS: &[(&str, Entry)] = &[
        ("libprocess", crate::agent::fuzz::libprocess),
        ("recordio", crate::api::recordio::fuzz),
        ("executor_call", crate::api::executor::fuzz::call),
        ("agent_call", crate::api::operator::v1::fuzz::call),
        ("image_reference", crate::image::fuzz::reference),
        ("manifest", crate::image::fuzz::manifest),
        ("www_authenticate", crate::image::fuzz::www_authenticate),
        ("tar", crate::archive::fuzz::tar),
        ("zip", crate::archive::fuzz::zip),
        ("uri", crate::fetch::fuzz::uri),
    ];

    /// The entry point named `name`.
    pub fn target(name: &str) -> Option<Entry> {
        TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }
}
