//! Phone numbers between the switch and SAP: pure functions, no I/O, no config types.
//!
//! Three directions, one function each:
//! - switch → SAP: [`E164::normalize`] turns whatever the switch calls a party (a SIP URI, a
//!   `tel:` URI, a dialled string, "PrivateNumber") into the `+digits` form SAP needs for its
//!   account lookup. The result loses information (`+0`), so callers keep the raw string
//!   beside it. With a [`Home`] dial plan (home country, optional area code),
//!   [`E164::normalize_at`] also turns national and local numbers into international ones,
//!   through the `phonenumber` crate (a port of Google's libphonenumber and its data).
//! - which attribute holds the number: [`pick_attribute`] searches the configured call
//!   attributes in order (remote attributes for the ANI, dialed attributes for the DNIS).
//! - SAP → switch: [`make_call_number`] prepares the address SAP dials or transfers to, with
//!   the "reformat make-call number" flag and the dial-plan [`DialPrefix`] rules.
//!
//! Everything takes plain parameters so the config module can feed them without this module
//! knowing its types.

use compact_str::CompactString;
use std::fmt;

pub mod home;

pub use home::{Home, HomeError};

/// A phone number in the form SAP's account lookup accepts: `+` followed by one or more ASCII
/// digits, never anything else (so `^\+[0-9]+$`, never `++`, never a bare `+`).
///
/// The only way to build one is [`E164::normalize`], so holding an `E164` proves the value is
/// safe to put on the wire. `+0` means "no usable number" (anonymous, a name, an empty
/// attribute): SAP then finds no account instead of the wrong one. This is not a validated
/// ITU E.164 number (no country code or 15-digit check): internal extensions such as `+1234`
/// must pass, as they do with the vendor's integration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(CompactString);

/// URI schemes removed before anything else, matched case-insensitively because URI schemes
/// are case-insensitive (RFC 3986 §3.1, RFC 3261 §19.1.4) and switches do send `SIP:`.
/// The vendor names only `sip:`; `sips:` (SIP over TLS) and `tel:` (RFC 3966) carry the same
/// number, and without this `sips:555@host` would become `+0` instead of `+555`.
/// `sips:` is listed before `sip:` only for readability: `sip:` is not a prefix of `sips:`.
const SCHEMES: [&str; 3] = ["sips:", "sip:", "tel:"];

/// Characters people and switches put inside a number for readability (RFC 3966's
/// visual separators plus spaces). Removing them never changes which number is meant.
fn is_visual_separator(c: char) -> bool {
    matches!(c, '-' | '.' | '(' | ')') || c.is_whitespace()
}

/// What the vendor's rules make of an unusable value (ICI.md section 7).
const UNUSABLE: &str = "+0";

/// A party after the vendor's cleaning (steps 1 to 7 of [`E164::normalize`]).
struct Cleaned {
    /// It was written with a leading `+`: already international.
    international: bool,
    /// `+` and ASCII digits, at least one. Written once, `+` first: a number of up to 23
    /// digits stays inline (no allocation; answers normalize every number they show,
    /// BENCHMARKS.md benchmark 1).
    plus_digits: CompactString,
}

impl Cleaned {
    fn digits(&self) -> &str {
        &self.plus_digits[1..]
    }
}

/// Steps 1 to 7 of [`E164::normalize`]; `None` for a value that is not a number.
fn clean(raw: &str) -> Option<Cleaned> {
    let mut s = raw.trim();
    for scheme in SCHEMES {
        if s.get(..scheme.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(scheme))
        {
            s = &s[scheme.len()..];
            break;
        }
    }
    if let Some(at) = s.find('@') {
        s = &s[..at];
    }
    if let Some(param) = s.find([';', '?']) {
        s = &s[..param];
    }
    let mut plus_digits = CompactString::with_capacity(s.len() + 1);
    plus_digits.push('+');
    let mut international = false;
    let mut leading = true;
    for c in s.chars().filter(|&c| c != '/' && !is_visual_separator(c)) {
        if leading && c == '+' {
            international = true;
            continue;
        }
        leading = false;
        if !c.is_ascii_digit() {
            return None;
        }
        plus_digits.push(c);
    }
    (plus_digits.len() > 1).then_some(Cleaned {
        international,
        plus_digits,
    })
}

impl E164 {
    /// Normalizes a party as the switch reports it into the form SAP wants. Never fails: a
    /// value that is not a number becomes `+0`, like the vendor's `PrivateNumber`.
    ///
    /// The vendor's rules, in order, with what we add (marked *ours*) to guarantee the
    /// `^\+[0-9]+$` shape for any input:
    /// 1. *ours*: trim surrounding whitespace.
    /// 2. Remove a leading `sip:` (*ours*: also `sips:`, `tel:`; any letter case).
    /// 3. Remove `@` and everything after it (the SIP host part).
    /// 4. *ours*: remove `;` or `?` and everything after it: URI parameters and headers
    ///    (`;user=phone`, `;ext=22`, `;phone-context=...`) are not part of the number; an
    ///    extension parameter is lost, the raw value keeps it.
    /// 5. Remove every `/` (`/1234` is how some switches write an extension).
    /// 6. *ours*: remove visual separators (space, `-`, `.`, `(`, `)`), so
    ///    `+1 (317) 222-2222` becomes `+13172222222`.
    /// 7. A value that begins with a letter becomes `0`. *Ours*, generalizing it: so does
    ///    any value that, after removing its leading `+` signs, is empty or is not all ASCII
    ///    digits (`555abc`, `*67`, `1-800-FLOWERS`, `00+1`, an empty attribute). Dropping the
    ///    odd characters instead would invent a plausible but wrong number and could pop the
    ///    wrong customer; `+0` makes SAP find nothing, and the raw value is kept elsewhere.
    /// 8. Prefix `+`, never twice: any number of leading `+` collapse to one.
    ///
    /// No dial-plan knowledge is applied (a national `0317...` or `00...` stays as dialled):
    /// that is the switch's and SAP's business. The result is a fixed point:
    /// normalizing `e.as_str()` again gives `e`.
    pub fn normalize(raw: &str) -> E164 {
        match clean(raw) {
            Some(number) => E164(number.plus_digits),
            None => E164(CompactString::const_new(UNUSABLE)),
        }
    }

    /// Like [`E164::normalize`], and with a home dial plan: a national number
    /// (`030 1234567`, dialled with the home country's national prefix) or, with an area
    /// code, a local one (`1234567`) becomes the international number (`+49301234567`),
    /// as the maintained phone-number library (libphonenumber's data) reads it. A number
    /// that already starts with `+`, an internal extension (at most
    /// [`Home::extension_max_digits`] digits) and anything the library does not find
    /// valid keep the vendor's rules, so nothing is lost that `normalize` would keep.
    pub fn normalize_at(raw: &str, home: Option<&Home>) -> E164 {
        let Some(number) = clean(raw) else {
            return E164(CompactString::const_new(UNUSABLE));
        };
        if let Some(home) = home
            && !number.international
            && let Some(international) = home.international(number.digits())
        {
            return international;
        }
        E164(number.plus_digits)
    }

    /// The normalized number, e.g. `+13172222222`, for writing into SOAP.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Shows the normalized number (`+555`), so an `E164` can go straight into logs and XML.
impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Finds the party number among a call's attributes: the value of the first name in `names`
/// (the configured order) whose value is non-empty after trimming, returned trimmed.
///
/// This is how the ANI (remote attributes) and the DNIS (dialed attributes) are located:
/// switches spread the number over several attributes depending on call type, so the
/// administrator lists them by preference and the search stops at the first usable one. A
/// present but blank attribute is skipped, not returned, because an empty ANI would
/// hide a later attribute that has the number.
///
/// Names match exactly, case-sensitively: attribute names are the switch's identifiers,
/// `get` (the call's attribute lookup) is exact, and guessing at case could pick an
/// unrelated attribute. `None` when no listed attribute has a value; the caller decides
/// (typically `E164::normalize("")`, i.e. `+0`).
pub fn pick_attribute<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    names: &[String],
) -> Option<&'a str> {
    names
        .iter()
        .filter_map(|name| get(name))
        .map(|value| value.trim())
        .find(|value| !value.is_empty())
}

/// One dial-plan rule for outbound numbers: a number that starts with `from` has that start
/// replaced by `to` (e.g. `from = "1317"`, `to = "9"` dials local numbers with an outside-line
/// code). Plain data so the config module can build it from its own types.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialPrefix {
    /// Literal start to match, case-sensitive, compared after reformatting. Empty matches
    /// every number, which makes an empty-`from` rule a catch-all (put it last) that only
    /// prepends `to`.
    pub from: String,
    /// Replacement for `from`; empty just removes the matched start.
    pub to: String,
}

/// The address to hand the switch when SAP dials or blind-transfers to `address`.
///
/// Steps, in order:
/// 1. Trim surrounding whitespace (SAP's agents paste numbers).
/// 2. With `reformat` (the vendor's "reformat make-call number" flag): if the address is
///    a phone number in visual form, i.e. an optional single leading `+`, then only ASCII
///    digits and visual separators (space, `-`, `.`, `(`, `)`), with at least one digit,
///    the `+` and the separators are removed: `+1 (317) 222-2222` → `13172222222`. Anything
///    else (`sip:` URIs, `*67...`, `555,,12` pauses, names) is left alone, because the
///    switch may understand it and a blind strip would dial something else.
/// 3. The first rule in `prefixes` (in order) whose `from` starts the number replaces that
///    start with its `to`; later rules are not tried, so the order is the precedence. Rules
///    apply with or without `reformat`; without it they see the `+` (`from = "+1"`).
///
/// Without `reformat` and without a matching rule the trimmed address passes unchanged.
/// No other dial plan is assumed: the switch's own dial plan still applies.
pub fn make_call_number(address: &str, reformat: bool, prefixes: &[DialPrefix]) -> String {
    let trimmed = address.trim();
    let number = if reformat {
        reformat_e164(trimmed).unwrap_or_else(|| trimmed.to_owned())
    } else {
        trimmed.to_owned()
    };
    match prefixes.iter().find_map(|rule| {
        number
            .strip_prefix(rule.from.as_str())
            .map(|rest| (rule, rest))
    }) {
        Some((rule, rest)) => format!("{}{}", rule.to, rest),
        None => number,
    }
}

/// The digits of a visually formatted number (`+1 (317) 222-2222` → `13172222222`), or
/// `None` if `s` is not one; see [`make_call_number`] step 2.
fn reformat_e164(s: &str) -> Option<String> {
    let body = s.strip_prefix('+').unwrap_or(s);
    if !body
        .chars()
        .all(|c| c.is_ascii_digit() || is_visual_separator(c))
    {
        return None;
    }
    let digits: String = body.chars().filter(char::is_ascii_digit).collect();
    (!digits.is_empty()).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::switch::Attributes;
    use proptest::prelude::*;

    fn norm(raw: &str) -> String {
        E164::normalize(raw).as_str().to_owned()
    }

    /// `^\+[0-9]+$` without a regex crate.
    fn is_plus_digits(s: &str) -> bool {
        s.strip_prefix('+')
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    }

    #[test]
    fn vendor_table() {
        for (raw, want) in [
            ("sip:555@example.com", "+555"),
            ("sip:bob@example.com", "+0"),
            ("/1234", "+1234"),
            ("1234", "+1234"),
            ("+1234", "+1234"),
            ("PrivateNumber", "+0"),
            ("aa111", "+0"),
            ("sip:1234@example.com", "+1234"),
        ] {
            assert_eq!(norm(raw), want, "normalize({raw:?})");
        }
    }

    #[test]
    fn schemes_any_case() {
        for raw in [
            "SIP:555@example.com",
            "Sip:555",
            "sips:555@example.com",
            "SIPS:555",
            "tel:555",
            "TEL:+555",
            "  sip:555@example.com  ",
        ] {
            assert_eq!(norm(raw), "+555", "normalize({raw:?})");
        }
        // Only a leading scheme is removed; the rest then is not a number.
        assert_eq!(norm("555sip:1"), "+0");
        // `sip:` removed once: a second scheme is a letter-led value.
        assert_eq!(norm("sip:sip:555"), "+0");
    }

    #[test]
    fn visual_separators_and_params() {
        for (raw, want) in [
            ("+1 (317) 222-2222", "+13172222222"),
            ("317.222.2222", "+3172222222"),
            ("tel:+1-317-222-2222;ext=22", "+13172222222"),
            ("sip:+13172222222;user=phone@example.com", "+13172222222"),
            ("sip:+13172222222@example.com;user=phone", "+13172222222"),
            ("sip:555?subject=x", "+555"),
            ("12/34", "+1234"),
            ("++1234", "+1234"),
            ("+ +1234", "+1234"),
        ] {
            assert_eq!(norm(raw), want, "normalize({raw:?})");
        }
    }

    #[test]
    fn unusable_becomes_plus_zero() {
        for raw in [
            "",
            "   ",
            "+",
            "++",
            "/",
            "sip:",
            "@example.com",
            "555abc",
            "*67555",
            "1+2",
            "00+1",
            "1-800-FLOWERS",
            "Émile",
            "١٢٣",
            "sip:;user=phone",
        ] {
            assert_eq!(norm(raw), "+0", "normalize({raw:?})");
        }
    }

    #[test]
    fn display_is_as_str() {
        let e = E164::normalize("sip:555@example.com");
        assert_eq!(e.to_string(), "+555");
        assert_eq!(e.to_string(), e.as_str());
    }

    fn attrs(pairs: &[(&str, &str)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pick_attribute_first_non_empty_in_configured_order() {
        let a = attrs(&[
            ("Eic_RemoteTn", "  "),
            ("Eic_RemoteId", " sip:555@example.com "),
            ("Eic_LocalTn", "1234"),
        ]);
        // Blank and missing attributes are skipped; the value comes back trimmed.
        assert_eq!(
            pick_attribute(
                |n| a.get(n),
                &names(&["Missing", "Eic_RemoteTn", "Eic_RemoteId"])
            ),
            Some("sip:555@example.com")
        );
        // Configured order wins over map order.
        assert_eq!(
            pick_attribute(|n| a.get(n), &names(&["Eic_LocalTn", "Eic_RemoteId"])),
            Some("1234")
        );
        // Case-sensitive names.
        assert_eq!(pick_attribute(|n| a.get(n), &names(&["eic_localtn"])), None);
        assert_eq!(
            pick_attribute(|n| a.get(n), &names(&["Eic_RemoteTn"])),
            None
        );
        assert_eq!(pick_attribute(|n| a.get(n), &[]), None);
    }

    fn rule(from: &str, to: &str) -> DialPrefix {
        DialPrefix {
            from: from.to_owned(),
            to: to.to_owned(),
        }
    }

    #[test]
    fn make_call_reformat() {
        assert_eq!(make_call_number("+13172222222", true, &[]), "13172222222");
        assert_eq!(
            make_call_number(" +1 (317) 222-2222 ", true, &[]),
            "13172222222"
        );
        assert_eq!(make_call_number("317.222.2222", true, &[]), "3172222222");
        // Not a visual phone number: left alone (trimmed).
        for addr in [
            "sip:555@example.com",
            "*67555",
            "555,,12",
            "++1234",
            "+",
            "Bob",
        ] {
            assert_eq!(make_call_number(addr, true, &[]), addr, "{addr:?}");
        }
        assert_eq!(make_call_number("  ", true, &[]), "");
    }

    #[test]
    fn make_call_without_reformat_is_unchanged() {
        for addr in [
            "+13172222222",
            "+1 (317) 222-2222",
            "sip:555@example.com",
            "",
        ] {
            assert_eq!(make_call_number(addr, false, &[]), addr, "{addr:?}");
        }
        assert_eq!(
            make_call_number("\t+13172222222 \n", false, &[]),
            "+13172222222"
        );
    }

    #[test]
    fn make_call_prefix_rules() {
        let rules = [rule("1317", "9"), rule("1", "91"), rule("+49", "0049")];
        // First matching rule in order wins, after reformat.
        assert_eq!(make_call_number("+13172222222", true, &rules), "92222222");
        assert_eq!(
            make_call_number("+12125550100", true, &rules),
            "912125550100"
        );
        // Without reformat the rules see the `+`.
        assert_eq!(
            make_call_number("+13172222222", false, &rules),
            "+13172222222"
        );
        assert_eq!(make_call_number("+4930123", false, &rules), "004930123");
        // Only the leading `from` is replaced.
        assert_eq!(make_call_number("5551317", true, &rules), "5551317");
        // Empty `from` is a catch-all that prepends; empty `to` strips.
        let catch_all = [rule("0049", ""), rule("", "9")];
        assert_eq!(make_call_number("004930123", false, &catch_all), "30123");
        assert_eq!(make_call_number("+15550100", true, &catch_all), "915550100");
    }

    proptest! {
        #[test]
        fn normalize_shape_and_idempotent(raw in any::<String>()) {
            let e = E164::normalize(&raw);
            prop_assert!(is_plus_digits(e.as_str()), "{raw:?} -> {e}");
            prop_assert!(!e.as_str().contains("++"));
            prop_assert_eq!(E164::normalize(e.as_str()), e);
        }

        #[test]
        fn normalize_shape_on_number_like_input(
            raw in r"(?i)(sips?:|tel:)?[+ /()0-9a-z.\-]{0,20}([;?@][a-z=.;@]{0,10})?"
        ) {
            let e = E164::normalize(&raw);
            prop_assert!(is_plus_digits(e.as_str()), "{raw:?} -> {e}");
            prop_assert!(!e.as_str().contains("++"));
            prop_assert_eq!(E164::normalize(e.as_str()), e);
        }

        #[test]
        fn normalize_keeps_plain_digits(digits in "[0-9]{1,15}") {
            prop_assert_eq!(norm(&digits), format!("+{digits}"));
            prop_assert_eq!(norm(&format!("sip:+{digits}@host")), format!("+{digits}"));
        }

        #[test]
        fn reformat_undoes_normalize(digits in "[0-9]{1,15}") {
            let e = E164::normalize(&digits);
            prop_assert_eq!(make_call_number(e.as_str(), true, &[]), digits);
        }

        #[test]
        fn no_reformat_no_rules_only_trims(addr in any::<String>()) {
            prop_assert_eq!(make_call_number(&addr, false, &[]), addr.trim());
        }
    }
}
