//! Protocol types: prost code generated from our own `.proto` files under
//! `proto/` (same packages, names and field numbers as Apache Mesos).
//!
//! | package | Rust path |
//! | --- | --- |
//! | `mesos` | [`mesos`] |
//! | `mesos.internal` | [`mesos::internal`] |
//! | `mesos.v1` | [`mesos::v1`] |
//! | `mesos.v1.executor` | [`mesos::v1::executor`] |
//! | `mesos.v1.agent` | [`mesos::v1::agent`] |
//!
//! Every message implements [`prost::Name`] (`full_name()` is the Mesos
//! name, e.g. `mesos.internal.RunTaskMessage`, which is also the libprocess
//! message name) and [`prost_reflect::ReflectMessage`].
//!
//! Helpers: [`decode`] (prost decoding plus proto2 `required` checks),
//! [`to_json`] / [`from_json`] (Mesos' JSON mapping), [`evolve`] /
//! [`devolve`] (v0 <-> v1 by re-encoding), and [`launch`], the values the
//! containerizer hands the executors.

mod codec;
mod error;
mod json;
pub mod launch;
mod required;
#[cfg(test)]
pub(crate) mod test_fixtures;
mod wire_json;

use std::sync::LazyLock;

pub use codec::{decode, devolve, evolve};
pub use error::ProtoError;
#[cfg(test)]
pub use json::with_reflective_json;
pub use json::{from_json, to_json, write_json, write_json_encoded, write_json_reflective};

use prost_reflect::DescriptorPool;

/// Descriptors of every generated message, written by `build.rs`.
pub static DESCRIPTOR_POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(
        include_bytes!(concat!(env!("OUT_DIR"), "/file_descriptor_set.bin")).as_ref(),
    )
    .expect("the descriptor set written by build.rs decodes")
});

/// Package `mesos` (v0 types, as the master and agent speak them).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod mesos {
    include!(concat!(env!("OUT_DIR"), "/mesos.rs"));

    /// Package `mesos.internal` (libprocess messages).
    #[allow(clippy::all, clippy::pedantic, missing_docs)]
    pub mod internal {
        include!(concat!(env!("OUT_DIR"), "/mesos.internal.rs"));
    }

    /// Package `mesos.v1` (v1 HTTP API types).
    #[allow(clippy::all, clippy::pedantic, missing_docs)]
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/mesos.v1.rs"));

        /// Package `mesos.v1.executor` (the v1 executor API).
        #[allow(clippy::all, clippy::pedantic, missing_docs)]
        pub mod executor {
            include!(concat!(env!("OUT_DIR"), "/mesos.v1.executor.rs"));
        }

        /// Package `mesos.v1.agent` (the v1 operator API of the agent).
        #[allow(clippy::all, clippy::pedantic, missing_docs)]
        pub mod agent {
            include!(concat!(env!("OUT_DIR"), "/mesos.v1.agent.rs"));
        }
    }
}

/// The descriptor of a generated message, by full name (used by the
/// `ReflectMessage` impls `build.rs` writes; the name always exists).
pub(crate) fn message_descriptor(full_name: &str) -> prost_reflect::MessageDescriptor {
    DESCRIPTOR_POOL
        .get_message_by_name(full_name)
        .unwrap_or_else(|| panic!("message {full_name} is in the descriptor set"))
}

#[cfg(test)]
mod tests {
    use prost::Name;
    use prost_reflect::ReflectMessage;

    use super::mesos::{self, internal, v1};

    fn same_name<M: Name + ReflectMessage + Default>() {
        assert_eq!(M::default().descriptor().full_name(), M::full_name());
    }

    #[test]
    fn reflection_agrees_with_prost_names_in_every_package() {
        same_name::<mesos::Resource>();
        same_name::<mesos::resource::disk_info::Source>();
        same_name::<mesos::secret::Value>();
        same_name::<internal::ReregisterSlaveMessage>();
        same_name::<internal::update_slave_message::ResourceProvider>();
        same_name::<v1::AgentInfo>();
        same_name::<v1::executor::Event>();
        same_name::<v1::executor::event::LaunchGroup>();
        same_name::<v1::agent::Call>();
        same_name::<v1::agent::response::get_containers::Container>();
    }
}
