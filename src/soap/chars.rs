//! The characters XML 1.0 allows (the `Char` production, XML 1.0 section 2.2):
//! tab, line feed, carriage return, U+0020–U+D7FF, U+E000–U+FFFD and U+10000–U+10FFFF.
//!
//! Anything else (NUL and the other C0 controls, U+FFFE, U+FFFF; surrogates cannot occur
//! in a Rust string) makes a document that a conforming parser, SAP's among them, refuses
//! as a whole, raw or written as a character reference (`&#1;`). A refused event would
//! block its subscription, so such characters are refused on input and never written.

use std::borrow::Cow;
use std::fmt;

/// What the writer puts in place of a character XML 1.0 does not allow (input never
/// has one; values from the switch may).
pub const REPLACEMENT: char = '\u{FFFD}';

/// Whether XML 1.0 allows `c` in a document.
pub fn is_xml_char(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..
    )
}

/// The first character of `text` that XML 1.0 does not allow.
///
/// Scans bytes: in UTF-8 only bytes below 0x20 and the encodings of U+FFFE and U+FFFF
/// (`EF BF BE`, `EF BF BF`) can be such a character, so a valid document costs one pass
/// over its bytes and no decoding.
pub fn first_invalid(text: &str) -> Option<char> {
    let bytes = text.as_bytes();
    let suspect = |b: &u8| (*b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || *b == 0xEF;
    let mut from = 0;
    while let Some(pos) = bytes[from..].iter().position(suspect) {
        let at = from + pos;
        if bytes[at] != 0xEF {
            return Some(char::from(bytes[at]));
        }
        if bytes.get(at + 1) == Some(&0xBF) && matches!(bytes.get(at + 2), Some(0xBE | 0xBF)) {
            return text[at..].chars().next();
        }
        from = at + 1;
    }
    None
}

/// `text` with every character XML 1.0 does not allow replaced by [`REPLACEMENT`], and
/// how many were replaced (borrowed and 0 in the normal case).
pub fn replace_invalid(text: &str) -> (Cow<'_, str>, usize) {
    if first_invalid(text).is_none() {
        return (Cow::Borrowed(text), 0);
    }
    let mut replaced = 0;
    let clean = text
        .chars()
        .map(|c| {
            if is_xml_char(c) {
                c
            } else {
                replaced += 1;
                REPLACEMENT
            }
        })
        .collect();
    (Cow::Owned(clean), replaced)
}

/// A character (or a character reference to a code point) that XML 1.0 does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidChar(pub u32);

impl fmt::Display for InvalidChar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "character U+{:04X} is not allowed in XML 1.0", self.0)
    }
}

/// Checks an XML fragment kept as text (attached data, relayed to SAP as it came): no
/// character XML 1.0 refuses, neither raw nor as a character reference (`&#1;`,
/// `&#x1b;`), in text or attribute values. A reference that does not parse as a number is
/// refused too. Conservative inside CDATA sections, where `&#1;` is plain text: such a
/// document is refused although it would be well-formed.
pub fn check_fragment(text: &str) -> Result<(), InvalidChar> {
    if let Some(c) = first_invalid(text) {
        return Err(InvalidChar(c.into()));
    }
    let mut rest = text;
    while let Some(at) = rest.find("&#") {
        rest = &rest[at + 2..];
        let end = rest.find(';').unwrap_or(rest.len());
        let number = &rest[..end];
        let (digits, radix) = match number.strip_prefix('x') {
            Some(hex) => (hex, 16),
            None => (number, 10),
        };
        let code = digits
            .chars()
            .all(|c| c.is_digit(radix))
            .then(|| u32::from_str_radix(digits, radix).ok())
            .flatten();
        match code {
            Some(code) if char::from_u32(code).is_some_and(is_xml_char) => {}
            Some(code) => return Err(InvalidChar(code)),
            None => return Err(InvalidChar(u32::MAX)),
        }
        rest = &rest[end..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_char_production() {
        for c in [
            '\t', '\n', '\r', ' ', '\u{7f}', '\u{85}', '\u{D7FF}', '\u{E000}',
        ] {
            assert!(is_xml_char(c), "{c:?}");
        }
        for c in ['\u{FFFD}', '\u{10000}', '\u{10FFFF}'] {
            assert!(is_xml_char(c), "{c:?}");
        }
        for c in ['\0', '\u{1}', '\u{8}', '\u{b}', '\u{c}', '\u{1b}', '\u{1f}'] {
            assert!(!is_xml_char(c), "{c:?}");
        }
        assert!(!is_xml_char('\u{FFFE}') && !is_xml_char('\u{FFFF}'));
    }

    #[test]
    fn first_invalid_agrees_with_the_char_production() {
        let samples = [
            "plain",
            "tab\tlf\ncr\r",
            "ä€😀\u{FFFD}",
            "a\u{1}b",
            "\u{0}",
            "x\u{FFFE}",
            "\u{FFFF}",
            "\u{EFBF}\u{FFBF}ok",
            "é\u{1b}[2J",
        ];
        for s in samples {
            assert_eq!(
                first_invalid(s),
                s.chars().find(|c| !is_xml_char(*c)),
                "{s:?}"
            );
        }
    }

    #[test]
    fn replacement_keeps_everything_else() {
        assert_eq!(replace_invalid("ok"), (Cow::Borrowed("ok"), 0));
        let (text, n) = replace_invalid("a\u{1}b\u{0}\u{FFFF}c\n");
        assert_eq!(text, "a\u{FFFD}b\u{FFFD}\u{FFFD}c\n");
        assert_eq!(n, 3);
    }

    #[test]
    fn fragments_with_references() {
        assert_eq!(
            check_fragment("<a b='&#65;'>&#x1F600;&#10;&amp;</a>"),
            Ok(())
        );
        assert_eq!(check_fragment("<a>&#1;</a>"), Err(InvalidChar(1)));
        assert_eq!(check_fragment("<a>&#x1b;</a>"), Err(InvalidChar(0x1b)));
        assert_eq!(check_fragment("<a b='&#x0;'/>"), Err(InvalidChar(0)));
        assert!(check_fragment("<a>&#+65;</a>").is_err());
        assert_eq!(check_fragment("<a>&#xD800;</a>"), Err(InvalidChar(0xD800)));
        assert_eq!(check_fragment("<a>&#xFFFE;</a>"), Err(InvalidChar(0xFFFE)));
        assert!(check_fragment("<a>&#zz;</a>").is_err());
        assert!(check_fragment("<a>&#").is_err());
        assert_eq!(check_fragment("<a>\u{1b}</a>"), Err(InvalidChar(0x1b)));
    }
}
