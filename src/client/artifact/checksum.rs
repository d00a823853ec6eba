//! The `checksum` getter option: `type:hex` (md5, sha1, sha256, sha512) or a bare hex digest
//! whose length names its type, checked against the downloaded file before anything is
//! unpacked.

use std::io::Read;
use std::path::Path;

use md5::Digest as _;

/// A digest algorithm the `checksum` option can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "md5" => Some(Self::Md5),
            "sha1" => Some(Self::Sha1),
            "sha256" => Some(Self::Sha256),
            "sha512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// A bare digest is typed by its hex length, as go-getter does.
    fn from_hex_len(len: usize) -> Option<Self> {
        match len {
            32 => Some(Self::Md5),
            40 => Some(Self::Sha1),
            64 => Some(Self::Sha256),
            128 => Some(Self::Sha512),
            _ => None,
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Self::Md5 => 32,
            Self::Sha1 => 40,
            Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Md5 => "md5",
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }
}

/// An expected digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: Algorithm,
    /// Lower-case hex.
    pub hex: String,
}

impl Checksum {
    /// Parses the `checksum` option.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (algorithm, hex) = match s.split_once(':') {
            Some(("file", _)) => {
                return Err("checksum files (checksum=file:...) are not supported".into());
            }
            Some((name, hex)) => {
                let alg = Algorithm::from_name(&name.to_ascii_lowercase())
                    .ok_or_else(|| format!("unsupported checksum type {name:?}"))?;
                (alg, hex)
            }
            None => {
                let alg = Algorithm::from_hex_len(s.len()).ok_or_else(|| {
                    format!("checksum {s:?} has no type and its length matches none")
                })?;
                (alg, s)
            }
        };
        if hex.len() != algorithm.hex_len() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "invalid {} checksum {hex:?}: want {} hex digits",
                algorithm.name(),
                algorithm.hex_len()
            ));
        }
        Ok(Checksum {
            algorithm,
            hex: hex.to_ascii_lowercase(),
        })
    }

    /// Hashes `file` and compares.
    pub fn verify(&self, file: &Path) -> Result<(), String> {
        let f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let got = digest_hex(self.algorithm, f).map_err(|e| format!("{}: {e}", file.display()))?;
        if got == self.hex {
            Ok(())
        } else {
            Err(format!(
                "checksums did not match for {}: expected {}:{}, got {}:{got}",
                file.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                self.algorithm.name(),
                self.hex,
                self.algorithm.name()
            ))
        }
    }
}

/// The hex digest of everything `r` yields.
pub fn digest_hex(alg: Algorithm, mut r: impl Read) -> std::io::Result<String> {
    let mut buf = vec![0u8; 64 * 1024];
    let bytes: Vec<u8> = match alg {
        Algorithm::Md5 => {
            let mut h = md5::Md5::new();
            loop {
                let n = r.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            h.finalize().to_vec()
        }
        Algorithm::Sha1 | Algorithm::Sha256 | Algorithm::Sha512 => {
            let ring_alg = match alg {
                Algorithm::Sha1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
                Algorithm::Sha256 => &ring::digest::SHA256,
                _ => &ring::digest::SHA512,
            };
            let mut ctx = ring::digest::Context::new(ring_alg);
            loop {
                let n = r.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                ctx.update(&buf[..n]);
            }
            ctx.finish().as_ref().to_vec()
        }
    };
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &[u8] = b"hello artifact\n";

    fn write(data: &[u8]) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("yurt-cksum-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("blob");
        std::fs::write(&f, data).unwrap();
        (dir, f)
    }

    #[test]
    fn every_algorithm_verifies_its_own_digest_and_rejects_another() {
        let (dir, f) = write(DATA);
        for alg in [
            Algorithm::Md5,
            Algorithm::Sha1,
            Algorithm::Sha256,
            Algorithm::Sha512,
        ] {
            let hex = digest_hex(alg, DATA).unwrap();
            assert_eq!(hex.len(), alg.hex_len());
            let typed = Checksum::parse(&format!("{}:{hex}", alg.name())).unwrap();
            typed.verify(&f).unwrap();
            let bare = Checksum::parse(&hex.to_uppercase()).unwrap();
            assert_eq!(bare.algorithm, alg);
            bare.verify(&f).unwrap();
            let wrong = digest_hex(alg, &b"other"[..]).unwrap();
            let err = Checksum::parse(&format!("{}:{wrong}", alg.name()))
                .unwrap()
                .verify(&f)
                .unwrap_err();
            assert!(err.contains("checksums did not match"), "{err}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn known_vectors() {
        assert_eq!(
            digest_hex(Algorithm::Md5, &b"abc"[..]).unwrap(),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            digest_hex(Algorithm::Sha256, &b"abc"[..]).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn malformed_checksums_are_refused() {
        assert!(
            Checksum::parse("sha256:abc")
                .unwrap_err()
                .contains("sha256")
        );
        assert!(
            Checksum::parse("crc32:00000000")
                .unwrap_err()
                .contains("crc32")
        );
        assert!(Checksum::parse("abc").is_err());
        assert!(Checksum::parse(&format!("md5:{}", "z".repeat(32))).is_err());
        assert!(Checksum::parse("file:http://x/SHA256SUMS").is_err());
    }
}
