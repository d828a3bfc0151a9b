//! ICI versions as exchangeProductInformation carries them.
//!
//! What is known (ICI.md section 4; the vendor guide's SLD registration shows
//! `ProductVersion 3.00`): a version is written `major.minor`, the minor with two digits
//! (`3.00`, `3.06`). Nothing public says how SAP reacts to a minor difference, and the
//! vendor's connector (3.00) works with SAP releases that speak later 3.x versions, so the
//! major version decides: every `3.x` is one we can speak (we answer ours, `3.06`, and use
//! nothing newer than what SAP sent), any other major is refused with a fault that names
//! both versions.

use std::fmt;

/// The ICI version this connector speaks, answered to exchangeProductInformation.
pub const SPOKEN: IciVersion = IciVersion { major: 3, minor: 6 };

/// Longest version text read; anything longer is not a version (and not worth a log line).
const MAX_VERSION_LEN: usize = 16;

/// A parsed ICI version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IciVersion {
    pub major: u16,
    pub minor: u16,
}

/// Why SAP's version was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionProblem {
    /// Not `major` or `major.minor` in digits.
    Malformed,
    /// A version of another major: we cannot speak it.
    Unsupported(IciVersion),
}

impl IciVersion {
    /// Reads `3`, `3.0`, `3.00` or `3.06` (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Option<IciVersion> {
        let text = text.trim();
        if text.is_empty() || text.len() > MAX_VERSION_LEN {
            return None;
        }
        let (major, minor) = text.split_once('.').unwrap_or((text, "0"));
        let number = |part: &str| {
            (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse::<u16>().ok())
                .flatten()
        };
        Some(IciVersion {
            major: number(major)?,
            minor: number(minor)?,
        })
    }

    /// Whether we can speak with a partner that speaks `self`.
    pub fn compatible(self) -> bool {
        self.major == SPOKEN.major
    }

    /// Checks the version SAP sent.
    pub fn check(text: &str) -> Result<IciVersion, VersionProblem> {
        let version = IciVersion::parse(text).ok_or(VersionProblem::Malformed)?;
        if version.compatible() {
            Ok(version)
        } else {
            Err(VersionProblem::Unsupported(version))
        }
    }
}

/// `3.06`: the two-digit minor SAP writes.
impl fmt::Display for IciVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoken_version_reads_as_sap_writes_it() {
        assert_eq!(SPOKEN.to_string(), "3.06");
        assert_eq!(IciVersion::parse("3.06"), Some(SPOKEN));
        assert_eq!(crate::ici::ICI_VERSION, SPOKEN.to_string());
    }

    #[test]
    fn every_3x_is_accepted_other_majors_are_not() {
        for ok in ["3", "3.0", "3.00", " 3.06 ", "3.10"] {
            assert!(IciVersion::check(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            IciVersion::check("2.00"),
            Err(VersionProblem::Unsupported(IciVersion {
                major: 2,
                minor: 0
            }))
        );
        assert!(matches!(
            IciVersion::check("4.00"),
            Err(VersionProblem::Unsupported(_))
        ));
        for bad in [
            "", "three", "3.", ".3", "3.0.1", "+3", "3.-1", "99999", "3.06.00",
        ] {
            assert_eq!(
                IciVersion::check(bad),
                Err(VersionProblem::Malformed),
                "{bad}"
            );
        }
    }
}
