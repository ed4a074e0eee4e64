//! InfiniBand GUIDs: 64-bit port identifiers.
//!
//! Accepted text forms are exactly the 8-byte forms of Go's `net.ParseMAC`, which is what the Go daemon
//! and Multus use: `xx:xx:xx:xx:xx:xx:xx:xx`, `xx-xx-xx-xx-xx-xx-xx-xx` and `xxxx.xxxx.xxxx.xxxx`, hex
//! digits in any case. The canonical form written into pod annotations is lowercase and colon-separated
//! (what ib-sriov-cni's regex expects); UFM takes 16 hex digits with no separators.

use std::fmt;
use std::str::FromStr;

/// A 64-bit InfiniBand GUID, big-endian from its textual bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Guid(u64);

/// Why a GUID string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(
    missing_docs,
    reason = "each variant's #[error] message is its documentation; its fields are the values the message names"
)]
pub enum GuidError {
    #[error("invalid GUID {value:?}: {reason}")]
    Invalid { value: String, reason: &'static str },
    #[error("invalid GUID {value:?}: {bytes}-byte address, an InfiniBand GUID has 8 bytes (xx:xx:xx:xx:xx:xx:xx:xx)")]
    WrongLength { value: String, bytes: usize },
}

impl Guid {
    /// The GUID with this numeric value.
    pub const fn from_u64(value: u64) -> Self {
        Guid(value)
    }

    /// The GUID's numeric value.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Parses any of the accepted forms (see the module documentation).
    pub fn parse(text: &str) -> Result<Self, GuidError> {
        let invalid = |reason| GuidError::Invalid { value: text.to_owned(), reason };
        let bytes = if text.len() >= 3 && matches!(text.as_bytes()[2], b':' | b'-') {
            let sep = text.as_bytes()[2] as char;
            parse_groups(text, sep, 2).map_err(invalid)?
        } else if text.len() >= 5 && text.as_bytes()[4] == b'.' {
            parse_groups(text, '.', 4).map_err(invalid)?
        } else {
            return Err(invalid(
                "expected 8 hex bytes separated by ':' or '-', or four groups of 4 hex digits separated by '.'",
            ));
        };
        if bytes.len() != 8 {
            return Err(GuidError::WrongLength { value: text.to_owned(), bytes: bytes.len() });
        }
        Ok(Guid(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))))
    }

    /// Parses UFM's rendering: 16 hex digits without separators, any case.
    pub fn parse_ufm(text: &str) -> Result<Self, GuidError> {
        if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(GuidError::Invalid { value: text.to_owned(), reason: "expected 16 hex digits (UFM form)" });
        }
        u64::from_str_radix(text, 16)
            .map(Guid)
            .map_err(|_| GuidError::Invalid { value: text.to_owned(), reason: "expected 16 hex digits (UFM form)" })
    }

    /// UFM's rendering: 16 lowercase hex digits, no separators.
    pub fn to_ufm(self) -> String {
        format!("{:016x}", self.0)
    }
}

/// Splits `text` on `sep` into groups of exactly `digits` hex digits and returns the bytes.
fn parse_groups(text: &str, sep: char, digits: usize) -> Result<Vec<u8>, &'static str> {
    let mut bytes = Vec::with_capacity(8);
    for group in text.split(sep) {
        if group.len() != digits || !group.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(if digits == 2 {
                "every byte must be exactly 2 hex digits, all with the same separator"
            } else {
                "every group must be exactly 4 hex digits"
            });
        }
        for pair in group.as_bytes().chunks(2) {
            let hex = std::str::from_utf8(pair).map_err(|_| "not ASCII")?;
            bytes.push(u8::from_str_radix(hex, 16).map_err(|_| "not hex")?);
        }
        // A 20-byte address is the longest form ParseMAC knows; stop early on hostile input.
        if bytes.len() > 20 {
            return Err("too many bytes");
        }
    }
    Ok(bytes)
}

impl FromStr for Guid {
    type Err = GuidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Guid::parse(s)
    }
}

/// The canonical form: lowercase, colon-separated bytes.
impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0.to_be_bytes();
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_go_form_in_any_case() {
        let want = Guid::from_u64(0x0200_0000_0000_abcd);
        for text in [
            "02:00:00:00:00:00:ab:cd",
            "02:00:00:00:00:00:AB:CD",
            "02-00-00-00-00-00-Ab-cD",
            "0200.0000.0000.abcd",
            "0200.0000.0000.ABCD",
        ] {
            assert_eq!(Guid::parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn canonical_and_ufm_renderings() {
        let g = Guid::parse("02:00:0F:F0:00:FF:00:09").unwrap();
        assert_eq!(g.to_string(), "02:00:0f:f0:00:ff:00:09");
        assert_eq!(g.to_ufm(), "02000ff000ff0009");
        assert_eq!(Guid::parse_ufm("02000FF000FF0009"), Ok(g));
    }

    #[test]
    fn rejects_mac_and_long_forms_with_the_length() {
        for (text, bytes) in [
            ("00:11:22:33:44:55", 6),
            ("0011.2233.4455", 6),
            ("00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33", 20),
        ] {
            match Guid::parse(text) {
                Err(GuidError::WrongLength { value, bytes: got }) => {
                    assert_eq!((value.as_str(), got), (text, bytes));
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        let msg = Guid::parse("00:11:22:33:44:55").unwrap_err().to_string();
        assert!(msg.contains("00:11:22:33:44:55") && msg.contains("6-byte"), "{msg}");
    }

    #[test]
    fn rejects_malformed_text_naming_the_value() {
        for text in [
            "",
            "0",
            "02:00:00:00:00:00:00:0",
            "02:00:00:00:00:00:00:000",
            "02:00-00:00:00:00:00:00",
            "02:00:00:00:00:00:00:zz",
            "0200000000000000",
            "02:00:00:00:00:00:00:00:",
            " 02:00:00:00:00:00:00:00",
            "0200.0000.0000.00",
            "é2:00:00:00:00:00:00:00",
        ] {
            let err = Guid::parse(text).expect_err(text);
            assert!(err.to_string().contains(&format!("{text:?}")), "{err}");
        }
        assert!(Guid::parse_ufm("02:00").is_err());
        assert!(Guid::parse_ufm("+200000000000000").is_err());
    }

    proptest! {
        #[test]
        fn display_round_trips(v: u64) {
            let g = Guid::from_u64(v);
            prop_assert_eq!(Guid::parse(&g.to_string()), Ok(g));
            prop_assert_eq!(Guid::parse(&g.to_string().to_uppercase().replace(':', "-")), Ok(g));
            prop_assert_eq!(Guid::parse_ufm(&g.to_ufm()), Ok(g));
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = Guid::parse(&s);
            let _ = Guid::parse_ufm(&s);
        }
    }
}
