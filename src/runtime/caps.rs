//! Capability names and the default set a sandboxed process keeps.

use caps::Capability;

pub use crate::support::caps::DEFAULT;

/// Parses `CAP_CHOWN` or `chown`.
pub fn parse(name: &str) -> Option<Capability> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    full.parse().ok()
}

/// The bit mask of a set, as `/proc/<pid>/status` prints it.
pub fn mask(set: &[Capability]) -> u64 {
    set.iter().fold(0, |m, c| m | c.bitmask())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mask_matches_docker() {
        // CapEff of a root process in a default Docker container.
        assert_eq!(mask(DEFAULT), 0x00000000a80425fb);
    }

    #[test]
    fn parses_names() {
        assert_eq!(parse("chown"), Some(Capability::CAP_CHOWN));
        assert_eq!(parse("CAP_SYS_ADMIN"), Some(Capability::CAP_SYS_ADMIN));
        assert_eq!(parse("CAP_NOPE"), None);
    }
}
