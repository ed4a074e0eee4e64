//! A pod's networks annotation kept as its shape and its GUIDs: the text with every GUID written the
//! way ib-kubernetes writes them (`02:00:…`, lower case) cut out, shared by every pod of the same
//! shape, and the GUIDs as numbers. Pods of one job or tenant differ only in their GUIDs, so at
//! 100,000 configured pods the annotations, a third of what the state keeps, shrink to 8 bytes per
//! GUID.
//!
//! Invariant: the text is given back exactly, byte for byte ([`Shaped::of`] keeps a shape only after
//! checking that), so nothing decided from an annotation can change.

use std::sync::Arc;

use crate::guid::Guid;
use crate::names::Names;

/// Where a GUID was cut out of the template. No annotation with this byte is shaped, so it marks
/// nothing else.
const HOLE: char = '\0';
/// `xx:xx:xx:xx:xx:xx:xx:xx`.
const GUID_CHARS: usize = 23;

/// See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shaped {
    template: Arc<str>,
    guids: Box<[Guid]>,
}

/// Whether `text` is a GUID as [`Guid`]'s `Display` writes it.
fn is_written_guid(text: &[u8]) -> bool {
    text.len() == GUID_CHARS
        && text
            .iter()
            .enumerate()
            .all(|(i, b)| if i % 3 == 2 { *b == b':' } else { b.is_ascii_digit() || (b'a'..=b'f').contains(b) })
}

/// Appends `guid` as [`Guid`]'s `Display` writes it, without the formatting machinery (this runs for
/// every GUID of every pod planned).
fn write_guid(text: &mut String, guid: Guid) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in guid.as_u64().to_be_bytes().into_iter().enumerate() {
        if i > 0 {
            text.push(':');
        }
        text.push(char::from(HEX[usize::from(b >> 4)]));
        text.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

impl Shaped {
    /// The shape of `text`, its template shared through `names`; `None` when the text has no GUID to
    /// cut out, or would not come back exactly.
    pub(crate) fn of(text: &str, names: &mut Names) -> Option<Shaped> {
        if text.contains(HOLE) {
            return None;
        }
        let bytes = text.as_bytes();
        let mut template = String::with_capacity(text.len());
        let mut guids = Vec::new();
        let (mut at, mut copied) = (0, 0);
        while at + GUID_CHARS <= bytes.len() {
            let window = &bytes[at..at + GUID_CHARS];
            // Most positions are passed over at the first two separators.
            if window[2] == b':'
                && window[5] == b':'
                && is_written_guid(window)
                && let Some(guid) = text.get(at..at + GUID_CHARS).and_then(|g| Guid::parse(g).ok())
            {
                template.push_str(text.get(copied..at)?);
                template.push(HOLE);
                guids.push(guid);
                at += GUID_CHARS;
                copied = at;
            } else {
                at += 1;
            }
        }
        if guids.is_empty() {
            return None;
        }
        template.push_str(text.get(copied..)?);
        let shaped = Shaped { template: names.share(&Arc::from(template)), guids: guids.into_boxed_slice() };
        (shaped.text() == text).then_some(shaped)
    }

    /// The annotation, exactly as it was given.
    pub(crate) fn text(&self) -> String {
        let mut text = String::with_capacity(self.template.len() + self.guids.len() * GUID_CHARS);
        let mut guids = self.guids.iter();
        let mut parts = self.template.split(HOLE);
        if let Some(first) = parts.next() {
            text.push_str(first);
        }
        for part in parts {
            if let Some(g) = guids.next() {
                write_guid(&mut text, *g);
            }
            text.push_str(part);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any text, GUID-like or not, is either left whole or given back exactly, and never panics.
        #[test]
        fn any_text_is_given_back_exactly(text in "([0-9a-f:]{0,30}|\"|é|\\u0000|02:00:00:00:00:00:00:0[0-9a-fA-F]){0,12}") {
            let mut names = Names::default();
            if let Some(shaped) = Shaped::of(&text, &mut names) {
                prop_assert_eq!(shaped.text(), text);
            }
        }
    }

    const CONFIGURED: &str = r#"[{"name":"ib-0","interface":"net1","cni-args":{"guid":"02:00:00:00:10:00:00:07","mellanox.infiniband.app":"configured","pkey":"0x10"}},{"name":"ib-0","interface":"net2","cni-args":{"guid":"02:00:00:00:10:00:00:08","mellanox.infiniband.app":"configured","pkey":"0x10"}}]"#;

    #[test]
    fn pods_of_one_shape_share_the_template_and_keep_their_guids() {
        let mut names = Names::default();
        let a = Shaped::of(CONFIGURED, &mut names).unwrap();
        let other = CONFIGURED.replace(":07\"", ":17\"").replace(":08\"", ":18\"");
        let b = Shaped::of(&other, &mut names).unwrap();
        assert!(Arc::ptr_eq(&a.template, &b.template));
        assert_eq!((a.text(), b.text()), (CONFIGURED.to_owned(), other));
        assert_eq!(a.guids.len(), 2);
    }

    #[test]
    fn guids_are_written_as_guid_writes_them() {
        for v in [0, 1, 0x0200_0000_1000_00ab, u64::MAX] {
            let mut text = String::new();
            write_guid(&mut text, Guid::from_u64(v));
            assert_eq!(text, Guid::from_u64(v).to_string());
        }
    }

    #[test]
    fn only_text_that_comes_back_exactly_is_shaped() {
        let mut names = Names::default();
        // Nothing to cut out: upper case, other separators, too short, a NUL already in the text.
        for text in [
            r#"[{"name":"ib"}]"#,
            r#"[{"name":"ib","cni-args":{"guid":"02:00:00:00:10:00:00:AB"}}]"#,
            r#"[{"name":"ib","cni-args":{"guid":"02-00-00-00-10-00-00-ab"}}]"#,
            "02:00:00:00:10:00:00",
            "02:00:00:00:10:00:00:07\u{0}",
        ] {
            assert_eq!(Shaped::of(text, &mut names), None, "{text}");
        }
        // GUIDs anywhere, next to each other, inside longer runs, in invalid JSON: all come back.
        for text in [
            "02:00:00:00:10:00:00:07",
            "02:00:00:00:10:00:00:0702:00:00:00:10:00:00:08",
            "x02:00:00:00:10:00:00:07:ff:ee",
            "[{\"name\":\"02:00:00:00:10:00:00:07\"",
            "é02:00:00:00:10:00:00:07é",
        ] {
            let shaped = Shaped::of(text, &mut names).unwrap();
            assert_eq!(shaped.text(), text);
        }
    }
}
