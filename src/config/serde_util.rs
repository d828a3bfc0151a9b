//! Field codecs shared by the config structs: human durations ("5s", "500ms", "2m") and
//! optional settings that an admin switches off with the string "off" (TOML has no null,
//! so `None` needs a spelling of its own for a field whose default is `Some`).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serializer};

/// The spelling of `None` for optional settings.
pub const OFF: &str = "off";

const DURATION_HINT: &str = "expected a duration such as \"500ms\", \"5s\" or \"2m\"";

fn parse_duration<E: de::Error>(s: &str) -> Result<Duration, E> {
    humantime::parse_duration(s.trim())
        .map_err(|err| E::custom(format!("invalid duration \"{s}\": {err} ({DURATION_HINT})")))
}

fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        // humantime prints "0s" too, but say it outright: it is a legal value for some fields.
        "0s".to_owned()
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// `Duration` as a human string.
pub mod duration {
    use super::*;

    /// Serialize as e.g. "1m 30s".
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    /// Parse "500ms", "5s", "2m", "1h 30m".
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
    }
}

/// `Option<Duration>` as a human string, `None` spelled "off".
pub mod duration_or_off {
    use super::*;

    /// Serialize `None` as "off".
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_str(OFF),
        }
    }

    /// Parse a duration or "off".
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim() == OFF {
            Ok(None)
        } else {
            parse_duration(&s).map(Some)
        }
    }
}

/// `Option<u32>` (an SAP workmode id) as an integer, `None` spelled "off".
pub mod workmode_or_off {
    use super::*;

    /// Serialize `None` as "off".
    pub fn serialize<S: Serializer>(w: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        match w {
            Some(id) => s.serialize_u32(*id),
            None => s.serialize_str(OFF),
        }
    }

    /// Parse a non-negative integer or "off".
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        d.deserialize_any(WorkmodeVisitor)
    }

    struct WorkmodeVisitor;

    impl Visitor<'_> for WorkmodeVisitor {
        type Value = Option<u32>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a workmode id (integer) or \"{OFF}\"")
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u32::try_from(v)
                .map(Some)
                .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            u32::try_from(v)
                .map(Some)
                .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            if v.trim() == OFF {
                Ok(None)
            } else {
                Err(E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
    }
}
