//! The read of one partition (`GET /resources/pkeys/<pkey>?guids_data=true`) without building a JSON
//! tree. A change on UFM is confirmed by reading its partition back, so this runs once per change and
//! reads every member of the partition each time: decoding it into `serde_json::Value` (a map per GUID
//! entry) was most of the controller's CPU at a thousand pods a second. Here only the `guid` strings
//! are looked at, borrowed from the body; every other field is skipped unread.
//!
//! Only the well-formed shape is read here. Anything else (`None`) is read again by the tree parser,
//! which names what is wrong, so both give the same answer for every body (tested in `fuzz.rs`).

use std::borrow::Cow;
use std::fmt;

use ib_model::Guid;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

/// One entry of `guids`: its other fields (membership, index0) are skipped.
#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow)]
    guid: Cow<'a, str>,
}

/// The partition object: how many keys it has (UFM answers `{}` for a partition it does not have)
/// and its `guids` (the last one, as a JSON map keeps it, if the key repeats).
struct Reply<'a> {
    keys: usize,
    guids: Option<Vec<Entry<'a>>>,
}

impl<'de> Deserialize<'de> for Reply<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ReplyVisitor;
        impl<'de> Visitor<'de> for ReplyVisitor {
            type Value = Reply<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a partition object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Reply<'de>, A::Error> {
                let mut reply = Reply { keys: 0, guids: None };
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    reply.keys += 1;
                    if key == "guids" {
                        reply.guids = map.next_value()?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(reply)
            }
        }
        deserializer.deserialize_map(ReplyVisitor)
    }
}

/// The partition's GUIDs (`Some(None)`: UFM does not have it), or `None` when the body is not the
/// well-formed shape and must be read by the tree parser for its error.
pub(super) fn parse(body: &[u8]) -> Option<Option<Vec<Guid>>> {
    let reply: Reply<'_> = serde_json::from_slice(body).ok()?;
    if reply.keys == 0 {
        return Some(None);
    }
    let entries = reply.guids.unwrap_or_default();
    let mut guids = Vec::with_capacity(entries.len());
    for entry in &entries {
        guids.push(Guid::parse_ufm(&entry.guid).ok()?);
    }
    Some(Some(guids))
}
