//! Shortening user-supplied text before it goes into a log line or an Event.

use std::borrow::Cow;

/// `s` cut to at most `max_chars` characters, with the original size appended when cut.
pub fn shorten(s: &str, max_chars: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max_chars) {
        None => Cow::Borrowed(s),
        Some((cut, _)) => Cow::Owned(format!("{}…({} bytes)", &s[..cut], s.len())),
    }
}
