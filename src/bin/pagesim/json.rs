//! The hex numbers of `pagesim at`'s JSON, read and written through serde.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use pagesim::linux::script::{parse_number_with, BareRadix};

/// A 64-bit value: a JSON hex string (`"0x1f"` or `"1f"`, read by the script language's
/// number parser with hex as the bare radix) or a JSON number; written as `"0x1f"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hex(pub u64);

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Hex, D::Error> {
        struct HexVisitor;
        impl Visitor<'_> for HexVisitor {
            type Value = Hex;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a hex string or an unsigned integer")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Hex, E> {
                parse_number_with(s, BareRadix::Hex)
                    .map(Hex)
                    .map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Hex, E> {
                Ok(Hex(v))
            }
        }
        d.deserialize_any(HexVisitor)
    }
}

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:#x}", self.0))
    }
}
