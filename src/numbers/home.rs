//! The home dial plan: which country (and area) national and local numbers are dialled in.
//!
//! Switches report numbers as the trunk delivered them: a German trunk gives `030 1234567`
//! (national, with the national prefix `0`) or `1234567` (local, in the switch's own area).
//! SAP's account search needs `+49301234567`. Which prefixes, lengths and ranges are valid
//! in which country is what Google's libphonenumber maintains (the `phonenumber` crate
//! ships its data); nothing here is a hand-made table.

use std::str::FromStr;

use phonenumber::country::Id;
use phonenumber::{Mode, PhoneNumber};

use super::E164;

/// Numbers of at most this many digits are internal extensions by default (`2001`), never
/// local numbers of the home area.
pub const DEFAULT_EXTENSION_MAX_DIGITS: usize = 4;

/// The longest number E.164 allows (ITU-T E.164 §6): also the most an extension can have.
pub const MAX_DIGITS: usize = 15;

/// Why a home dial plan cannot be built (the config module names the key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HomeError {
    #[error(
        "{0:?} is not a country the phone-number library knows (ISO 3166 alpha-2, e.g. \"DE\")"
    )]
    UnknownCountry(String),
    #[error("{0:?} is not an area code: digits only, e.g. \"30\"")]
    AreaNotDigits(String),
    #[error("{0} is more digits than a phone number has (at most {MAX_DIGITS})")]
    TooManyDigits(usize),
}

/// Where the switch stands: its country, optionally its area, and how long internal
/// extensions are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    region: Id,
    /// The area code (`30` or `030` for Berlin, `317` for Indianapolis): the library strips
    /// a national prefix written with it.
    area_code: Option<String>,
    /// The national prefix of the country (`0` in Germany, `1` in the US), if it has one.
    national_prefix: Option<String>,
    /// Numbers with at most this many digits are extensions: the vendor's rules only.
    pub extension_max_digits: usize,
}

impl Home {
    /// `country` is an ISO 3166 alpha-2 code as libphonenumber names regions (`DE`, `US`,
    /// `GB`); `area_code` may be written with or without the national prefix.
    pub fn new(
        country: &str,
        area_code: Option<&str>,
        extension_max_digits: usize,
    ) -> Result<Home, HomeError> {
        let region =
            Id::from_str(country).map_err(|_| HomeError::UnknownCountry(country.to_string()))?;
        let national_prefix = phonenumber::metadata::DATABASE
            .by_id(region.as_ref())
            .ok_or_else(|| HomeError::UnknownCountry(country.to_string()))?
            .national_prefix()
            .map(str::to_string);
        if let Some(area) = area_code
            && (area.is_empty() || !area.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(HomeError::AreaNotDigits(area.to_string()));
        }
        if extension_max_digits > MAX_DIGITS {
            return Err(HomeError::TooManyDigits(extension_max_digits));
        }
        Ok(Home {
            region,
            area_code: area_code.map(str::to_string),
            national_prefix,
            extension_max_digits,
        })
    }

    /// The international number for `digits` dialled at home (no leading `+`): local first
    /// when an area code is configured and the number does not start with the national
    /// prefix, then national (which includes the international prefix, `00…`). `None` when
    /// it is an extension or the library finds no valid number.
    pub(super) fn international(&self, digits: &str) -> Option<E164> {
        if digits.len() <= self.extension_max_digits {
            return None;
        }
        let national = self
            .national_prefix
            .as_deref()
            .is_some_and(|prefix| digits.starts_with(prefix));
        let local = self
            .area_code
            .as_deref()
            .filter(|_| !national)
            .and_then(|area| parse(self.region, &format!("{area}{digits}")));
        local
            .or_else(|| parse(self.region, digits))
            .map(|number| E164(number.format().mode(Mode::E164).to_string().into()))
    }
}

/// The number `text` as dialled in `region`, when the library finds it valid.
fn parse(region: Id, text: &str) -> Option<PhoneNumber> {
    phonenumber::parse(Some(region), text)
        .ok()
        .filter(phonenumber::is_valid)
}

#[cfg(test)]
mod tests;
