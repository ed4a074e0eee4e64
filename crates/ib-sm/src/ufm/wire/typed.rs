//! The partition listing read straight into GUIDs: no JSON tree of the body is built, and nothing is
//! allocated per membership but the GUID itself. At 275,000 memberships the tree (`serde_json::Value`, a
//! map with three strings per membership) took hundreds of bytes each, several times the body.
//!
//! Only the shapes UFM answers are read: an object of partitions, each an object whose `guids` is a list
//! (or `null`, or missing) of objects with a `guid` string. Anything else is an error without detail;
//! the caller then reads the body the slow way, which names the culprit (`super::value_listing`). Fields
//! that are not read are skipped without being kept, however deeply nested.

use std::collections::HashMap;
use std::fmt;

use ib_model::{Guid, SmListing};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// `GET /resources/pkeys/?guids_data=true`, partition by partition in the order listed. A partition
/// named twice keeps its first place and its last value, as the slow way does.
pub(super) fn listing(body: &[u8]) -> Result<SmListing, serde_json::Error> {
    let pairs = serde_json::from_slice::<Partitions>(body)?.0;
    let mut listing = SmListing::new();
    for (name, guids) in pairs {
        listing.push(name, guids);
    }
    Ok(listing)
}

/// `GET /resources/pkeys/<pkey>?guids_data=true`: `None` for `{}`, else the partition's GUIDs.
pub(super) fn partition(body: &[u8]) -> Result<Option<Vec<Guid>>, serde_json::Error> {
    serde_json::from_slice::<Partition>(body).map(|p| p.0)
}

struct Partitions(Vec<(String, Vec<Guid>)>);

impl<'de> de::Deserialize<'de> for Partitions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PartitionsVisitor)
    }
}

struct PartitionsVisitor;

impl<'de> Visitor<'de> for PartitionsVisitor {
    type Value = Partitions;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of partitions")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Partitions, A::Error> {
        let mut out: Vec<(String, Vec<Guid>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        while let Some(name) = map.next_key::<String>()? {
            let guids = map.next_value_seed(EntrySeed)?.unwrap_or_default();
            match index.get(&name) {
                Some(&at) => out[at].1 = guids,
                None => {
                    index.insert(name.clone(), out.len());
                    out.push((name, guids));
                }
            }
        }
        Ok(Partitions(out))
    }
}

/// One partition's answer on its own: its `guids`, or `None` when it has no field at all (`{}`).
struct Partition(Option<Vec<Guid>>);

impl<'de> de::Deserialize<'de> for Partition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EntryVisitor { empty_is_none: true }).map(Partition)
    }
}

/// A partition's entry: its GUIDs (`Some`, possibly empty), or `None` for an empty object when
/// `empty_is_none`.
struct EntrySeed;

impl<'de> DeserializeSeed<'de> for EntrySeed {
    type Value = Option<Vec<Guid>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(EntryVisitor { empty_is_none: false })
    }
}

struct EntryVisitor {
    empty_is_none: bool,
}

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = Option<Vec<Guid>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a partition object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut guids: Option<Vec<Guid>> = None;
        let (mut seen_guids, mut any) = (false, false);
        while let Some(is_guids) = map.next_key_seed(IsKey("guids"))? {
            any = true;
            if !is_guids {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if std::mem::replace(&mut seen_guids, true) {
                return Err(de::Error::duplicate_field("guids"));
            }
            guids = map.next_value::<Option<Members>>()?.map(|m| m.0);
        }
        if self.empty_is_none && !any {
            return Ok(None);
        }
        Ok(Some(guids.unwrap_or_default()))
    }
}

/// A `guids` list, each member read into its GUID.
struct Members(Vec<Guid>);

impl<'de> de::Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of members")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Members, A::Error> {
        // Not sized from the answer's hint: a hostile length must not reserve memory.
        let mut out = Vec::new();
        while let Some(guid) = seq.next_element_seed(MemberSeed)? {
            out.push(guid);
        }
        Ok(Members(out))
    }
}

/// `{"guid": "946dae03005985c8", "membership": "full", "index0": true}`: the GUID.
struct MemberSeed;

impl<'de> DeserializeSeed<'de> for MemberSeed {
    type Value = Guid;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Guid, D::Error> {
        d.deserialize_map(MemberVisitor)
    }
}

struct MemberVisitor;

impl<'de> Visitor<'de> for MemberVisitor {
    type Value = Guid;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Guid, A::Error> {
        let mut guid = None;
        while let Some(is_guid) = map.next_key_seed(IsKey("guid"))? {
            if !is_guid {
                map.next_value::<IgnoredAny>()?;
            } else if guid.replace(map.next_value_seed(GuidText)?).is_some() {
                return Err(de::Error::duplicate_field("guid"));
            }
        }
        guid.ok_or_else(|| de::Error::missing_field("guid"))
    }
}

/// A GUID as UFM writes it (16 hex digits), read from the string in place.
struct GuidText;

impl<'de> DeserializeSeed<'de> for GuidText {
    type Value = Guid;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Guid, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for GuidText {
    type Value = Guid;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a GUID string")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Guid, E> {
        Guid::parse_ufm(text).map_err(|_| E::custom("bad GUID"))
    }
}

/// Whether an object's key is `.0`, read without keeping the key.
struct IsKey(&'static str);

impl<'de> DeserializeSeed<'de> for IsKey {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for IsKey {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}
