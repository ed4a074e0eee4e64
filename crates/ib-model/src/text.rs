//! User-supplied text in log lines, Events and error messages.
//!
//! Pod and NAD authors choose annotation values, names and configs; echoed whole, a 200 KB value becomes
//! a 200 KB log line or Event. Everything that repeats such a value goes through [`shorten`].

use std::borrow::Cow;

/// How many characters of a user value an error message keeps: enough to recognise the value, and more
/// than any valid GUID (23), pkey or interface name (15) is long, so a valid value is never cut.
pub const ECHO_CHARS: usize = 64;

/// `s` itself when it has at most `max_chars` characters; otherwise its first `max_chars` characters
/// (cut on a char boundary, never inside a multi-byte character) followed by `…(N bytes)`, N being the
/// length of the whole of `s`.
///
/// The work is proportional to `max_chars`, not to the length of `s`. Control characters are kept as
/// they are: format the result with `{:?}` where a value may hold line breaks or NULs.
pub fn shorten(s: &str, max_chars: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max_chars) {
        None => Cow::Borrowed(s),
        Some((cut, _)) => Cow::Owned(format!("{}…({} bytes)", &s[..cut], s.len())),
    }
}

/// [`shorten`] to [`ECHO_CHARS`], as an owned string to keep in an error value.
pub(crate) fn echo(s: &str) -> String {
    shorten(s, ECHO_CHARS).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_values_are_borrowed_unchanged() {
        assert!(matches!(shorten("", 0), Cow::Borrowed("")));
        assert!(matches!(shorten("abc", 3), Cow::Borrowed("abc")));
        assert!(matches!(shorten("abc", 64), Cow::Borrowed("abc")));
        // Three characters, nine bytes: counted in characters.
        assert!(matches!(shorten("äöü", 3), Cow::Borrowed("äöü")));
    }

    #[test]
    fn long_values_are_cut_and_say_how_long_they_were() {
        assert_eq!(shorten("abcdef", 3), "abc…(6 bytes)");
        assert_eq!(shorten("abcdef", 0), "…(6 bytes)");
        let big = "x".repeat(200 * 1024);
        assert_eq!(shorten(&big, 8), "xxxxxxxx…(204800 bytes)");
    }

    #[test]
    fn multi_byte_input_is_cut_on_a_char_boundary() {
        // 2-, 3- and 4-byte characters: a byte-indexed cut would split them and panic.
        assert_eq!(shorten("ééé", 1), "é…(6 bytes)");
        assert_eq!(shorten("日本語のテキスト", 2), "日本…(24 bytes)");
        assert_eq!(shorten("🦀🦀🦀", 2), "🦀🦀…(12 bytes)");
        assert_eq!(shorten("a🦀b", 2), "a🦀…(6 bytes)");
        // NUL and line breaks are characters like any other.
        assert_eq!(shorten("\0\n\0\n", 2), "\0\n…(4 bytes)");
    }

    proptest! {
        #[test]
        fn a_cut_keeps_a_prefix_of_at_most_max_chars(s in "\\PC{0,40}", max in 0usize..48) {
            let out = shorten(&s, max);
            if s.chars().count() <= max {
                prop_assert_eq!(out.as_ref(), s.as_str());
            } else {
                let suffix = format!("…({} bytes)", s.len());
                let kept = out.strip_suffix(&suffix).expect("cut values end with their size");
                prop_assert!(s.starts_with(kept));
                prop_assert_eq!(kept.chars().count(), max);
            }
        }
    }
}
