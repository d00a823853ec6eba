//! `yurt version`.

use crate::version::{NOMAD_COMPAT_VERSION, VERSION};

/// What `yurt version` prints: yurt's version and the Nomad API version it speaks.
pub fn version_text() -> String {
    format!("Yurt v{VERSION}\nNomad API compatibility: v{NOMAD_COMPAT_VERSION}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_both_versions() {
        let t = version_text();
        assert!(t.starts_with(&format!("Yurt v{VERSION}")));
        assert!(t.contains(NOMAD_COMPAT_VERSION));
    }
}
