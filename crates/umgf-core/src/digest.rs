//! Content digests (BLAKE3, 256 bits, shown as 64 hex characters) and the canonical form of parameters.
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, IoContext, Result};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// Digest of a file's content, streamed (artifacts can be large).
    pub fn of_file(path: &Path) -> Result<Self> {
        let mut hasher = blake3::Hasher::new();
        let mut file = File::open(path).at(path)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).at(path)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(Self(*hasher.finalize().as_bytes()))
    }

    /// Digest of a sequence of strings, each length-prefixed so that ["ab","c"] != ["a","bc"].
    pub fn of_strings<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Self {
        let mut hasher = blake3::Hasher::new();
        for item in items {
            let item = item.as_ref().as_bytes();
            hasher.update(&(item.len() as u64).to_le_bytes());
            hasher.update(item);
        }
        Self(*hasher.finalize().as_bytes())
    }

    /// Digest of a serialisable value in canonical JSON: object keys sorted (serde_json's map is a
    /// BTreeMap), no whitespace. Two equal parameter sets always give the same digest.
    pub fn of_canonical_json<T: Serialize>(value: &T) -> Self {
        Self::of_bytes(canonical_json(value).as_bytes())
    }

    /// The digest whose 32 bytes are `bytes` (as read back from a binary index).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn hex(&self) -> String {
        self.to_string()
    }

    /// The first 12 hex characters: enough to tell runs apart in logs and tables.
    pub fn short(&self) -> String {
        self.to_string()[..12].to_owned()
    }
}

/// Canonical JSON text of a value (sorted keys, compact).
pub fn canonical_json<T: Serialize>(value: &T) -> String {
    // Serialising a Serialize value to a Value cannot fail for our parameter types (string keys only);
    // a failure would be a programming error, reported as the JSON null that no real parameter set is.
    let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    value.to_string()
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Store(format!("not a digest (64 hex characters): {s:?}"));
        if s.len() != 64 || !s.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let d = Digest::of_bytes(b"umgf");
        assert_eq!(d.hex().parse::<Digest>().unwrap(), d);
        assert!("xyz".parse::<Digest>().is_err());
    }

    #[test]
    fn strings_are_length_prefixed() {
        assert_ne!(
            Digest::of_strings(["ab", "c"]),
            Digest::of_strings(["a", "bc"])
        );
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let a = serde_json::json!({"b": 1, "a": [1, 2]});
        let b = serde_json::json!({"a": [1, 2], "b": 1});
        assert_eq!(canonical_json(&a), r#"{"a":[1,2],"b":1}"#);
        assert_eq!(Digest::of_canonical_json(&a), Digest::of_canonical_json(&b));
    }
}
