//! OpenSM's `partitions.conf`, shared with the site: the one block ib-kubernetes owns, found between two
//! marker lines, parsed and rendered; and the site's text around it, kept byte for byte and checked for
//! what would make OpenSM refuse the whole file.
//!
//! Pure: bytes in, bytes or errors out. Reading, writing and reloading are elsewhere.
//!
//! Ownership rule: exactly one `BEGIN`/`END` pair of marker lines delimits our block. Everything else is
//! the site's and is never changed. A block that holds anything this module would not have written
//! (a site partition moved inside, a hand edit, a forged marker pair around site lines) is refused as a
//! whole, so that rewriting the block can never delete a line someone else wrote. Lines that look like
//! markers but are not exactly ours, a second pair, or an `END` without its `BEGIN` are refused too.
//!
//! OpenSM reads the file as statements ended by `;`, comments from `#` to the end of the line, and a
//! statement may span lines. A single statement it cannot parse makes it drop the whole file and fall
//! back to the default partition only, so the site's text is checked before anything is written: an
//! unterminated statement before our block would swallow our first partition, a malformed one would
//! take every partition of the fabric, the site's included, away at the next reload.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::ops::Range;

use ib_model::{Guid, PKey};

/// First line of our block, exactly.
pub const BEGIN_MARKER: &str = "# BEGIN ib-kubernetes partitions: written by ib-kubernetes, edits inside are refused";
/// Last line of our block, exactly.
pub const END_MARKER: &str = "# END ib-kubernetes partitions";
/// A site line starting like this (after blanks) but not exactly a marker is refused: it is either a
/// damaged marker or a forgery, and guessing which could lose site lines.
const MARKER_LOOKALIKES: [&str; 2] = ["# BEGIN ib-kubernetes", "# END ib-kubernetes"];
/// Our partitions are named `ib-kubernetes-0x0005`; OpenSM logs the name, and merges definitions of the
/// same P_Key whatever their names, so a site partition of the same key keeps its own members.
pub const NAME_PREFIX: &str = "ib-kubernetes-";
/// GUIDs per line in our block: keeps lines short for OpenSM's line reader and for people.
const GUIDS_PER_LINE: usize = 4;

/// Why the file cannot be used. Line numbers count from 1 in the whole file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionsError {
    /// The ib-kubernetes marker lines are missing one half, repeated or out of order.
    #[error("line {line}: {reason}; nothing was changed, fix or remove the marker lines by hand")]
    Marker {
        /// The line number, counting from 1.
        line: usize,
        /// Why, in words.
        reason: String,
    },
    #[error(
        "line {line} inside the ib-kubernetes block is not one ib-kubernetes writes ({reason}): {text:?}; the block \
         is left as it is, move site partitions above the {BEGIN_MARKER:?} line"
    )]
    /// A line inside our block is not one this writes.
    Block {
        /// The line number, counting from 1.
        line: usize,
        /// The line.
        text: String,
        /// Why, in words.
        reason: String,
    },
    #[error(
        "line {line}: OpenSM would refuse this site partition ({reason}) and fall back to the default partition \
         for the whole fabric; nothing was changed"
    )]
    /// A site partition outside our block is one OpenSM would refuse.
    Site {
        /// The line number, counting from 1.
        line: usize,
        /// Why, in words.
        reason: String,
    },
}

/// Membership written for each of our GUIDs (`=full`, `=limited`).
pub use ib_model::partition::Membership;

/// Our partitions: each P_Key with its member GUIDs. Partitions without members are not kept.
pub type Memberships = BTreeMap<PKey, BTreeSet<Guid>>;

/// One of our partitions as the block holds it: the flags after its P_Key (`ipoib`, `indx0`, `mtu=5`)
/// and each member with its own membership.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Partition {
    /// The flags after the P_Key, as written.
    pub flags: Vec<String>,
    /// Each member GUID with its membership.
    pub members: BTreeMap<Guid, Membership>,
}

/// Our whole block. Partitions without members are not written.
pub type Block = BTreeMap<PKey, Partition>;

/// The GUIDs of each partition, memberships left out.
pub fn memberships_of(block: &Block) -> Memberships {
    block.iter().map(|(pkey, p)| (*pkey, p.members.keys().copied().collect())).collect()
}

/// Where our block is in the file, as byte ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The lines between the two markers; `None` when the file has no block yet.
    pub block: Option<Range<usize>>,
    /// Line number of the first line of the block's content (the one after `BEGIN`).
    pub block_first_line: usize,
}

/// One line of `bytes`: its range without the terminator, and the range with it.
fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, Range<usize>, Range<usize>)> + '_ {
    let mut start = 0;
    let mut number = 0;
    std::iter::from_fn(move || {
        if start >= bytes.len() {
            return None;
        }
        number += 1;
        let end = bytes[start..].iter().position(|b| *b == b'\n').map_or(bytes.len(), |i| start + i);
        let next = (end + 1).min(bytes.len());
        let item = (number, start..end, start..next);
        start = if end == bytes.len() { bytes.len() } else { end + 1 };
        Some(item)
    })
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// Finds our block and refuses any doubtful marker: a second `BEGIN`, an `END` without `BEGIN`, a
/// `BEGIN` never closed, or a line that starts like a marker without being one.
pub fn layout(bytes: &[u8]) -> Result<Layout, PartitionsError> {
    let mut begin: Option<(usize, usize)> = None; // (line, byte after the BEGIN line)
    let mut block: Option<Range<usize>> = None;
    for (number, content, whole) in lines(bytes) {
        let line = &bytes[content.clone()];
        let marker = |reason: &str| PartitionsError::Marker { line: number, reason: reason.to_owned() };
        if line == BEGIN_MARKER.as_bytes() {
            if block.is_some() {
                return Err(marker("a second ib-kubernetes BEGIN marker; the file may hold only one block"));
            }
            if let Some((first, _)) = begin {
                return Err(marker(&format!("a BEGIN marker while the one of line {first} is still open")));
            }
            begin = Some((number, whole.end));
        } else if line == END_MARKER.as_bytes() {
            match begin.take() {
                Some((_, start)) => block = Some(start..whole.start),
                None if block.is_some() => {
                    return Err(marker("a second ib-kubernetes END marker; the file may hold only one block"));
                }
                None => return Err(marker("an ib-kubernetes END marker without a BEGIN marker before it")),
            }
        } else {
            let trimmed = trim_ascii(line);
            if MARKER_LOOKALIKES.iter().any(|m| trimmed.starts_with(m.as_bytes())) {
                return Err(marker("looks like an ib-kubernetes marker but is not exactly one"));
            }
        }
    }
    if let Some((line, _)) = begin {
        return Err(PartitionsError::Marker {
            line,
            reason: "an ib-kubernetes BEGIN marker without an END marker after it".into(),
        });
    }
    // The number of the block's first content line, for error messages.
    let block_first_line = match &block {
        Some(range) => 1 + bytes[..range.start].iter().filter(|b| **b == b'\n').count(),
        None => 0,
    };
    Ok(Layout { block, block_first_line })
}

/// Renders our block's content (without the markers), every partition with `flags` and every member
/// with `membership`. Empty memberships render nothing.
pub fn render(memberships: &Memberships, flags: &[String], membership: Membership) -> String {
    let block: Block = memberships
        .iter()
        .map(|(pkey, guids)| {
            let members = guids.iter().map(|g| (*g, membership)).collect();
            (*pkey, Partition { flags: flags.to_vec(), members })
        })
        .collect();
    render_block(&block)
}

/// Renders our block's content (without the markers), each partition with its own flags and each
/// member with its own membership. Partitions without members render nothing.
pub fn render_block(block: &Block) -> String {
    let mut out = String::new();
    for (pkey, partition) in block {
        if partition.members.is_empty() {
            continue;
        }
        let _ = write!(out, "{NAME_PREFIX}{pkey}={pkey}");
        for flag in &partition.flags {
            let _ = write!(out, ",{flag}");
        }
        out.push_str(" :\n");
        let all: Vec<(&Guid, &Membership)> = partition.members.iter().collect();
        let chunks = all.chunks(GUIDS_PER_LINE).count();
        for (i, chunk) in all.chunks(GUIDS_PER_LINE).enumerate() {
            out.push_str("   ");
            for (j, (guid, membership)) in chunk.iter().enumerate() {
                let _ = write!(out, " 0x{:016x}={}", guid.as_u64(), membership.as_str());
                let last = i + 1 == chunks && j + 1 == chunk.len();
                out.push_str(if last { " ;" } else { "," });
            }
            out.push('\n');
        }
    }
    out
}

/// Parses our block's content as [`render`] writes it, with any flags and either membership (the
/// configuration may have changed since it was written). Anything else is refused, naming the line.
pub fn parse_block(bytes: &[u8], first_line: usize) -> Result<Memberships, PartitionsError> {
    parse_block_full(bytes, first_line).map(|block| memberships_of(&block))
}

/// [`parse_block`] keeping each partition's flags and each member's membership.
pub fn parse_block_full(bytes: &[u8], first_line: usize) -> Result<Block, PartitionsError> {
    let mut out = Block::new();
    // The partition whose member lines are being read; `None` between partitions.
    let mut open: Option<PKey> = None;
    for (number, content, _) in lines(bytes) {
        let line_no = first_line + number - 1;
        let raw = &bytes[content];
        let refuse = |reason: &str| PartitionsError::Block {
            line: line_no,
            text: excerpt(&String::from_utf8_lossy(raw)),
            reason: reason.to_owned(),
        };
        let text = std::str::from_utf8(raw).map_err(|_| refuse("not UTF-8"))?;
        match open {
            None => {
                let (pkey, flags) = parse_header(text).map_err(|r| refuse(&r))?;
                if out.contains_key(&pkey) {
                    return Err(refuse("a second definition of the same partition"));
                }
                out.insert(pkey, Partition { flags, members: BTreeMap::new() });
                open = Some(pkey);
            }
            Some(pkey) => {
                let (members, closed) = parse_members(text).map_err(|r| refuse(&r))?;
                let partition = out.entry(pkey).or_default();
                for (guid, membership) in members {
                    if partition.members.insert(guid, membership).is_some() {
                        return Err(refuse("a GUID listed twice in one partition"));
                    }
                }
                if closed {
                    open = None;
                }
            }
        }
    }
    if let Some(pkey) = open {
        return Err(PartitionsError::Block {
            line: first_line + lines(bytes).count().saturating_sub(1),
            text: String::new(),
            reason: format!("partition {pkey} is not ended by ';'"),
        });
    }
    Ok(out)
}

/// `ib-kubernetes-0x0005=0x0005,ipoib,mtu=4 :` → the P_Key and its flags.
fn parse_header(text: &str) -> Result<(PKey, Vec<String>), String> {
    let rest = text.strip_prefix(NAME_PREFIX).ok_or_else(|| format!("expected a partition named {NAME_PREFIX}0x…"))?;
    let rest = rest.strip_suffix(" :").ok_or("expected the definition to end with ' :'")?;
    let mut items = rest.split(',');
    let first = items.next().unwrap_or_default();
    let (name_key, key) = first.split_once('=').ok_or("expected name=P_Key")?;
    let pkey =
        parse_pkey(key).ok_or_else(|| format!("{key:?} is not a P_Key in ib-kubernetes' form (0x0001-0x7FFE)"))?;
    if name_key != key {
        return Err(format!("the name {NAME_PREFIX}{name_key} does not match the P_Key {key}"));
    }
    let mut flags = Vec::new();
    for flag in items {
        check_flag(flag).map_err(|r| format!("flag {flag:?}: {r}"))?;
        flags.push(flag.to_owned());
    }
    Ok((pkey, flags))
}

/// `0x0005`: exactly how [`PKey`]'s `Display` writes it.
fn parse_pkey(text: &str) -> Option<PKey> {
    let digits = text.strip_prefix("0x")?;
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)) {
        return None;
    }
    PKey::new(u32::from_str_radix(digits, 16).ok()?).ok()
}

/// `    0x0200000000000002=full, 0x0200000000000003=limited ;` → the members, and whether `;` ends the line.
fn parse_members(text: &str) -> Result<(Vec<(Guid, Membership)>, bool), String> {
    let body = text.strip_prefix("   ").ok_or("expected a member line indented by three spaces")?;
    let (body, closed) = match body.strip_suffix(" ;") {
        Some(b) => (b, true),
        None => (body.strip_suffix(',').ok_or("expected the member line to end with ',' or ' ;'")?, false),
    };
    let mut guids = Vec::new();
    for item in body.split(',') {
        let item = item.strip_prefix(' ').ok_or("expected one space before each member")?;
        let (guid, membership) = item.split_once('=').ok_or("expected GUID=membership")?;
        let membership = Membership::parse(membership)
            .ok_or_else(|| format!("membership {membership:?} is neither full nor limited"))?;
        let digits = guid.strip_prefix("0x").ok_or("expected a GUID as 0x and 16 hex digits")?;
        if digits.len() != 16 || !digits.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(format!("{guid:?} is not a GUID as 0x and 16 lower-case hex digits"));
        }
        guids.push((Guid::from_u64(u64::from_str_radix(digits, 16).map_err(|e| e.to_string())?), membership));
    }
    Ok((guids, closed))
}

/// The partition flags ib-kubernetes writes, as OpenSM documents them. `defmember` is not among them:
/// every member is written with its membership.
pub fn check_flag(flag: &str) -> Result<(), String> {
    let (key, value) = match flag.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (flag, None),
    };
    match (key, value) {
        ("ipoib" | "indx0", None) => Ok(()),
        ("mtu" | "rate" | "sl" | "scope" | "Q_Key" | "TClass" | "FlowLabel", Some(v)) => match parse_number(v) {
            Some(n) if n <= 0xFFFF_FFFF => Ok(()),
            _ => Err(format!("{v:?} is not a number (decimal or 0x hex)")),
        },
        ("mtu" | "rate" | "sl" | "scope" | "Q_Key" | "TClass" | "FlowLabel", None) => Err("needs a value".into()),
        ("ipoib" | "indx0", Some(_)) => Err("takes no value".into()),
        _ => Err("unknown; expected ipoib, indx0, mtu=, rate=, sl=, scope=, Q_Key=, TClass= or FlowLabel=".into()),
    }
}

/// A number as OpenSM reads them: `0x` hex or decimal.
fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => u64::from_str_radix(hex, 16).ok(),
        Some(_) => None,
        None if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
        None => None,
    }
}

fn excerpt(text: &str) -> String {
    crate::manager::excerpt(text, 120)
}

/// Checks the site's text (everything outside our block) for what would make OpenSM drop the file:
/// a statement without `:`, a P_Key or a port GUID that is not a number, and, before our block, a
/// statement left open (it would run into our first partition).
pub fn check_site(bytes: &[u8], layout: &Layout) -> Result<(), PartitionsError> {
    match &layout.block {
        Some(block) => {
            // The BEGIN line is the last line before the block's content; its own text is a comment.
            check_statements(&bytes[..block.start], 1)?;
            let after_end =
                bytes[block.end..].iter().position(|b| *b == b'\n').map_or(bytes.len(), |i| block.end + i + 1);
            let line = 1 + bytes[..after_end].iter().filter(|b| **b == b'\n').count();
            check_statements(&bytes[after_end..], line)
        }
        None => check_statements(bytes, 1),
    }
}

fn check_statements(bytes: &[u8], first_line: usize) -> Result<(), PartitionsError> {
    let text = String::from_utf8_lossy(bytes);
    let mut statement = String::new();
    let mut start_line = first_line;
    for (i, line) in text.split('\n').enumerate() {
        let number = first_line + i;
        let code = line.split_once('#').map_or(line, |(code, _)| code);
        let mut rest = code;
        while let Some((head, tail)) = rest.split_once(';') {
            if statement.trim().is_empty() {
                start_line = number;
            }
            statement.push_str(head);
            check_statement(&statement).map_err(|reason| PartitionsError::Site { line: start_line, reason })?;
            statement.clear();
            rest = tail;
        }
        if statement.trim().is_empty() && !rest.trim().is_empty() {
            start_line = number;
        }
        statement.push_str(rest);
        statement.push('\n');
    }
    if !statement.trim().is_empty() {
        return Err(PartitionsError::Site {
            line: start_line,
            reason: "a partition definition that no ';' ends".into(),
        });
    }
    Ok(())
}

const PORT_KEYWORDS: [&str; 5] = ["ALL", "ALL_CAS", "ALL_SWITCHES", "ALL_ROUTERS", "SELF"];

fn check_statement(statement: &str) -> Result<(), String> {
    if statement.trim().is_empty() {
        return Ok(());
    }
    let (header, members) = statement.split_once(':').ok_or_else(|| {
        format!("no ':' between the partition definition and its members in {:?}", excerpt(statement.trim()))
    })?;
    let first = header.split(',').next().unwrap_or_default();
    if let Some((_, key)) = first.split_once('=') {
        let key = key.trim();
        if parse_number(key).is_none_or(|n| n > 0xFFFF) {
            return Err(format!("P_Key {key:?} is not a number up to 0xFFFF"));
        }
    }
    for item in members.split([',', '\n']) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let port = item.split_once('=').map_or(item, |(port, _)| port).trim();
        let numeric = port.as_bytes().first().is_some_and(u8::is_ascii_digit);
        if numeric {
            if parse_number(port).is_none() {
                return Err(format!("port GUID {port:?} is not a number"));
            }
        } else if !item.contains('=') && !PORT_KEYWORDS.contains(&port) {
            return Err(format!("{port:?} is neither a port GUID nor one of {}", PORT_KEYWORDS.join(", ")));
        }
    }
    Ok(())
}

/// The file with our block's content replaced by `content`, every other byte as it was. Without a
/// block yet, the block is appended at the end (after a line break, should the last site line lack
/// one).
pub fn replace_block(bytes: &[u8], layout: &Layout, content: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + content.len() + 128);
    match &layout.block {
        Some(block) => {
            out.extend_from_slice(&bytes[..block.start]);
            out.extend_from_slice(content.as_bytes());
            out.extend_from_slice(&bytes[block.end..]);
        }
        None => {
            out.extend_from_slice(bytes);
            if !bytes.is_empty() && !bytes.ends_with(b"\n") {
                out.push(b'\n');
            }
            out.extend_from_slice(BEGIN_MARKER.as_bytes());
            out.push(b'\n');
            out.extend_from_slice(content.as_bytes());
            out.extend_from_slice(END_MARKER.as_bytes());
            out.push(b'\n');
        }
    }
    out
}

/// The partition keys the site's statements (everything outside our block) define, without the
/// membership bit: partitions that exist whether or not ib-kubernetes has members in them.
pub fn site_pkeys(bytes: &[u8], layout: &Layout) -> BTreeSet<u16> {
    let site: Vec<u8> = match &layout.block {
        Some(block) => {
            // Our block's lines, the BEGIN line (a comment) before them and the END line after them
            // are left out.
            let after_end =
                bytes[block.end..].iter().position(|b| *b == b'\n').map_or(bytes.len(), |i| block.end + i + 1);
            [&bytes[..block.start], &bytes[after_end..]].concat()
        }
        None => bytes.to_vec(),
    };
    let text = String::from_utf8_lossy(&site);
    let code: String =
        text.split('\n').map(|line| line.split_once('#').map_or(line, |(code, _)| code)).collect::<Vec<_>>().join("\n");
    code.split(';')
        .filter_map(|statement| statement.split_once(':').map(|(header, _)| header))
        .filter_map(|header| header.split(',').next()?.split_once('=').map(|(_, key)| key.trim().to_owned()))
        .filter_map(|key| parse_number(&key).filter(|n| *n <= 0xFFFF).map(|n| (n & 0x7FFF) as u16))
        .collect()
}

/// Our memberships in the file; empty without a block.
pub fn read_block(bytes: &[u8]) -> Result<(Layout, Memberships), PartitionsError> {
    read_block_full(bytes).map(|(layout, block)| (layout, memberships_of(&block)))
}

/// Our partitions in the file, with flags and memberships; empty without a block.
pub fn read_block_full(bytes: &[u8]) -> Result<(Layout, Block), PartitionsError> {
    let layout = layout(bytes)?;
    let block = match &layout.block {
        Some(block) => parse_block_full(&bytes[block.clone()], layout.block_first_line)?,
        None => Block::new(),
    };
    Ok((layout, block))
}

#[cfg(test)]
mod tests;
