//! Partition keys.
//!
//! A PKey is a 15-bit partition number; the 16th bit of the wire value is the membership bit, which UFM
//! takes separately (`membership: full|limited`), so it must never be part of the number we send.
//! NADs write it as `0x…` (the Go daemon's syntax: `0x`/`0X`, then hex digits only).

use std::fmt;

/// Highest value a partition number can have (15 bits).
const PARTITION_MASK: u32 = 0x7FFF;
/// The default (management) partition: every port is already in it, and making a pod a full member of
/// it would let that pod talk to every node of the fabric, so it is never a pod's partition.
pub const DEFAULT_PARTITION: u16 = 0x7FFF;

/// A partition key a pod interface may be made a member of: 0x0001–0x7FFE.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PKey(u16);

/// Why a partition key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(
    missing_docs,
    reason = "each variant's #[error] message is its documentation; its fields are the values the message names"
)]
pub enum PKeyError {
    #[error("invalid pkey {value:?}: must be 0x followed by hex digits, e.g. \"0x5\" or \"0x00FF\"")]
    Syntax { value: String },
    #[error("invalid pkey {value:?}: 0x0000 is not a valid partition")]
    Zero { value: String },
    #[error(
        "invalid pkey {value:?}: 0x7FFF is the default (management) partition; a pod may not join it because that would break fabric isolation"
    )]
    DefaultPartition { value: String },
    #[error(
        "invalid pkey {value:?}: larger than 0x7FFF; a partition number has 15 bits (write the partition without the membership bit, 0x0001-0x7FFE)"
    )]
    TooLarge { value: String },
}

impl PKey {
    /// Parses the NAD syntax and checks the value is usable for membership.
    pub fn parse(text: &str) -> Result<Self, PKeyError> {
        let value = parse_number(text).ok_or_else(|| PKeyError::Syntax { value: text.to_owned() })?;
        Self::new(value).map_err(|e| match e {
            PKeyError::Zero { .. } => PKeyError::Zero { value: text.to_owned() },
            PKeyError::DefaultPartition { .. } => PKeyError::DefaultPartition { value: text.to_owned() },
            _ => PKeyError::TooLarge { value: text.to_owned() },
        })
    }

    /// Checks a numeric value is a usable partition.
    pub fn new(value: u32) -> Result<Self, PKeyError> {
        let text = || format!("0x{value:04X}");
        match value {
            0 => Err(PKeyError::Zero { value: text() }),
            v if v == u32::from(DEFAULT_PARTITION) => Err(PKeyError::DefaultPartition { value: text() }),
            v if v > PARTITION_MASK => Err(PKeyError::TooLarge { value: text() }),
            v => Ok(PKey(v as u16)),
        }
    }

    /// The partition number (15 bits, without the membership bit).
    pub const fn get(self) -> u16 {
        self.0
    }
}

/// Parses `0x…` as the Go daemon does (`utils.ParsePKey`): `0x` or `0X`, then one or more hex digits,
/// at most 32 bits. Returns the number without any range check.
pub fn parse_number(text: &str) -> Option<u32> {
    let digits = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// UFM's rendering in requests: `0x` and four upper-case hex digits (`0x0005`, `0x0A30`).
impl fmt::Display for PKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04X}", self.0)
    }
}

impl fmt::Debug for PKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PKey({self})")
    }
}

/// An inclusive range of partition keys, written `0x1000-0x1FFF`: the partitions ib-kubernetes may
/// allocate, one per network that asks for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PKeyRange {
    first: PKey,
    last: PKey,
}

/// Why a partition-key range was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(
    missing_docs,
    reason = "each variant's #[error] message is its documentation; its fields are the values the message names"
)]
pub enum PKeyRangeError {
    #[error("invalid pkey range {value:?}: must be two partition keys joined by '-', e.g. \"0x1000-0x1FFF\"")]
    Syntax { value: String },
    #[error("invalid pkey range: {0}")]
    Bound(#[from] PKeyError),
    #[error("invalid pkey range {value:?}: the first key is larger than the last")]
    Reversed { value: String },
}

impl PKeyRange {
    /// The keys from `first` to `last`, both included; `None` when `first > last`.
    pub fn new(first: PKey, last: PKey) -> Option<Self> {
        (first <= last).then_some(PKeyRange { first, last })
    }

    /// Parses `0xA-0xB` (spaces around either key allowed).
    pub fn parse(text: &str) -> Result<Self, PKeyRangeError> {
        let syntax = || PKeyRangeError::Syntax { value: crate::text::echo(text) };
        let (a, b) = text.split_once('-').ok_or_else(syntax)?;
        let (a, b) = (a.trim(), b.trim());
        if a.len() > 10 || b.len() > 10 {
            return Err(syntax());
        }
        let (first, last) = (PKey::parse(a)?, PKey::parse(b)?);
        PKeyRange::new(first, last).ok_or_else(|| PKeyRangeError::Reversed { value: crate::text::echo(text.trim()) })
    }

    /// Whether `pkey` lies in the range.
    pub fn contains(&self, pkey: PKey) -> bool {
        self.first <= pkey && pkey <= self.last
    }

    /// The first key.
    pub fn first(&self) -> PKey {
        self.first
    }

    /// The last key.
    pub fn last(&self) -> PKey {
        self.last
    }

    /// How many keys the range has.
    pub fn len(&self) -> usize {
        usize::from(self.last.0 - self.first.0) + 1
    }

    /// Never empty: a range holds at least its first key.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every key of the range, in order.
    pub fn iter(&self) -> impl Iterator<Item = PKey> + use<> {
        (self.first.0..=self.last.0).map(PKey)
    }
}

impl fmt::Display for PKeyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_go_syntax_with_hex_letters() {
        for (text, want) in [("0x5", 5), ("0xa30", 0xA30), ("0X7f00", 0x7F00), ("0x00FF", 0xFF), ("0x0001", 1)] {
            assert_eq!(PKey::parse(text).map(PKey::get), Ok(want), "{text}");
        }
        assert_eq!(PKey::parse("0x7ffe").map(PKey::get), Ok(0x7FFE));
    }

    #[test]
    fn renders_for_ufm() {
        assert_eq!(PKey::parse("0x5").unwrap().to_string(), "0x0005");
        assert_eq!(PKey::parse("0xa30").unwrap().to_string(), "0x0A30");
    }

    #[test]
    fn refuses_syntax_errors_naming_the_value() {
        for text in ["1234", "", "0x", "0x12zz", "x5", "0x-1", "0x+1", " 0x5", "0x5 ", "0x1_0"] {
            let err = PKey::parse(text).expect_err(text);
            assert_eq!(err, PKeyError::Syntax { value: text.into() });
            assert!(err.to_string().contains(&format!("{text:?}")));
        }
        // More than 32 bits overflows the Go parser too.
        assert!(matches!(PKey::parse("0x100000000"), Err(PKeyError::Syntax { .. })));
    }

    #[test]
    fn refuses_out_of_range_values_with_the_reason() {
        let zero = PKey::parse("0x0").unwrap_err();
        assert!(matches!(&zero, PKeyError::Zero { value } if value == "0x0"), "{zero}");
        let default = PKey::parse("0x7fff").unwrap_err();
        assert!(default.to_string().contains("default (management) partition"), "{default}");
        assert!(default.to_string().contains("\"0x7fff\""));
        for text in ["0x8000", "0xFFFF", "0x8005", "0xffffffff"] {
            let err = PKey::parse(text).unwrap_err();
            assert!(matches!(&err, PKeyError::TooLarge { value } if value == text), "{err}");
            assert!(err.to_string().contains("15 bits"));
        }
        assert!(matches!(PKey::new(0x7FFF), Err(PKeyError::DefaultPartition { value }) if value == "0x7FFF"));
    }

    #[test]
    fn ranges_parse_and_refuse_naming_the_value() {
        let r = PKeyRange::parse("0x1000 - 0x1fff").unwrap();
        assert_eq!((r.first().get(), r.last().get(), r.len()), (0x1000, 0x1FFF, 0x1000));
        assert!(r.contains(PKey::new(0x1000).unwrap()) && r.contains(PKey::new(0x1FFF).unwrap()));
        assert!(!r.contains(PKey::new(0x2000).unwrap()));
        assert_eq!(r.to_string(), "0x1000-0x1FFF");
        assert_eq!(PKeyRange::parse("0x5-0x5").unwrap().iter().count(), 1);
        for bad in ["0x10", "0x10-", "0x20-0x10", "0x1-0x7fff", "0x0-0x5", "x-y", &"9".repeat(100_000)] {
            let e = PKeyRange::parse(bad).expect_err(bad);
            assert!(e.to_string().len() < 400, "{e}");
        }
        assert!(matches!(PKeyRange::parse("0x20-0x10"), Err(PKeyRangeError::Reversed { .. })));
        assert!(matches!(
            PKeyRange::parse("0x1-0x7fff"),
            Err(PKeyRangeError::Bound(PKeyError::DefaultPartition { .. }))
        ));
    }

    proptest! {
        #[test]
        fn every_usable_value_round_trips(v in 1u32..0x7FFF) {
            let p = PKey::new(v).unwrap();
            prop_assert_eq!(PKey::parse(&p.to_string()), Ok(p));
            prop_assert_eq!(PKey::parse(&format!("0x{v:x}")), Ok(p));
        }

        #[test]
        fn never_panics(s in "\\PC{0,20}") {
            let _ = PKey::parse(&s);
        }
    }
}
