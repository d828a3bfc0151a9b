//! Domain types: once a SOAP parameter is converted into one of these, it is valid.

use std::fmt;

use compact_str::CompactString;

/// A value SAP sent that is not a valid domain value. Each carries what the client sent,
/// so the fault can name it back; the ICI layer maps it to a SOAP fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("invalid user id {0:?}")]
    InvalidUserId(String),
    #[error("unknown workmode {0}")]
    InvalidWorkmode(i64),
    #[error("invalid appURL {0:?}")]
    InvalidAppUrl(String),
    /// Not an `ItemAttachedData` document; the reason says what is wrong with it.
    #[error("invalid attached data: {0}")]
    InvalidAttachedData(String),
}

/// A SAP user id (the agent). SAP user names are case-insensitive and stored upper-case,
/// so we upper-case too: `crmfosout` and `CRMFOSOUT` are one agent. Inline up to 24
/// bytes (SAP's are at most 12 characters): parsing one, which every request does, and
/// keeping one per agent cost no allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(CompactString);

impl UserId {
    /// SAP user names are at most 12 characters; we allow more for other front ends but
    /// refuse anything that could not be a user name.
    const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<UserId, DomainError> {
        let raw = raw.trim();
        if raw.is_empty()
            || raw.chars().count() > Self::MAX_LEN
            || raw.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(DomainError::InvalidUserId(raw.to_string()));
        }
        // What `str::to_uppercase` does, into the inline string.
        let mut id = CompactString::with_capacity(raw.len());
        id.extend(raw.chars().flat_map(char::to_uppercase));
        Ok(UserId(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// SAP workmode id: 1 logged off, 2 ready, 3 not ready, 4 and above mapped by config.
/// The ids are SAP's (ICI.md section 8), defined here once; `[workmodes]` uses these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Workmode(pub u32);

impl Workmode {
    pub const LOGGED_OFF: Workmode = Workmode(1);
    pub const READY: Workmode = Workmode(2);
    pub const NOT_READY: Workmode = Workmode(3);
    /// The lowest id `[[workmodes.custom]]` may use; the ones below are SAP's.
    pub const FIRST_CUSTOM: Workmode = Workmode(4);

    pub fn parse(value: i64) -> Result<Workmode, DomainError> {
        u32::try_from(value)
            .ok()
            .filter(|v| *v >= 1)
            .map(Workmode)
            .ok_or(DomainError::InvalidWorkmode(value))
    }
}

/// `ready (2)`, `not ready (3)`, `custom (4)`: what the id means, then the id SAP uses.
/// A custom workmode's text is in the configuration, not here.
impl fmt::Display for Workmode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let meaning = match *self {
            Workmode::LOGGED_OFF => "logged off",
            Workmode::READY => "ready",
            Workmode::NOT_READY => "not ready",
            _ => "custom",
        };
        write!(f, "{meaning} ({})", self.0)
    }
}

/// SAP's event endpoint for one IC session: an absolute http(s) URL. Kept parsed too, so
/// handing it to the notifier cannot fail. Equal, ordered and hashed by its text.
#[derive(Debug, Clone)]
pub struct AppUrl {
    text: String,
    uri: http::Uri,
}

impl AppUrl {
    pub fn parse(raw: &str) -> Result<AppUrl, DomainError> {
        let bad = || DomainError::InvalidAppUrl(raw.to_string());
        let uri: http::Uri = raw.trim().parse().map_err(|_| bad())?;
        match (uri.scheme_str(), uri.authority()) {
            (Some("http" | "https"), Some(_)) => Ok(AppUrl {
                text: uri.to_string(),
                uri,
            }),
            _ => Err(bad()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn uri(&self) -> http::Uri {
        self.uri.clone()
    }
}

impl PartialEq for AppUrl {
    fn eq(&self, other: &AppUrl) -> bool {
        self.text == other.text
    }
}

impl Eq for AppUrl {}

impl std::hash::Hash for AppUrl {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl PartialOrd for AppUrl {
    fn partial_cmp(&self, other: &AppUrl) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AppUrl {
    fn cmp(&self, other: &AppUrl) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl fmt::Display for AppUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Item attached data (ICI.md section 6): one `<Application id>` element per SAP
/// application, in the order the applications were first set. There is no schema below
/// `Application`, so each one is kept as the exact text SAP (or the IVR) sent and relayed
/// unchanged; reading and writing the document is the ICI layer's job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachedData {
    /// (application id, the whole `<Application ...>...</Application>` element as text)
    applications: Vec<(String, String)>,
}

impl AttachedData {
    /// Sets one application's element: replaces the one with the same id, or appends.
    pub fn set(&mut self, id: String, element: String) {
        match self.applications.iter_mut().find(|(i, _)| *i == id) {
            Some(slot) => slot.1 = element,
            None => self.applications.push((id, element)),
        }
    }

    /// Replaces the applications `other` names and adds the new ones (setAttachedData).
    pub fn merge(&mut self, other: AttachedData) {
        for (id, element) in other.applications {
            self.set(id, element);
        }
    }

    /// Removes the named applications (deleteAttachedData).
    pub fn remove(&mut self, ids: &[String]) {
        self.applications.retain(|(id, _)| !ids.contains(id));
    }

    /// The application ids, in order.
    pub fn ids(&self) -> Vec<String> {
        self.applications.iter().map(|(id, _)| id.clone()).collect()
    }

    /// The applications' elements as text, in order.
    pub fn elements(&self) -> impl Iterator<Item = &str> {
        self.applications
            .iter()
            .map(|(_, element)| element.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.applications.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids() {
        assert_eq!(UserId::parse(" crmfosout ").unwrap().as_str(), "CRMFOSOUT");
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a b").is_err());
        assert!(UserId::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn user_ids_display_as_the_bare_id() {
        // The id alone: log fields `user=AGENT1` are what `trace --user` matches.
        assert_eq!(UserId::parse("agent1").unwrap().to_string(), "AGENT1");
    }

    #[test]
    fn workmodes_display_their_meaning_and_id() {
        let shown = |id| Workmode(id).to_string();
        assert_eq!(shown(1), "logged off (1)");
        assert_eq!(shown(2), "ready (2)");
        assert_eq!(shown(3), "not ready (3)");
        assert_eq!(shown(4), "custom (4)");
        assert_eq!(shown(17), "custom (17)");
    }

    #[test]
    fn workmodes() {
        assert_eq!(Workmode::parse(2).unwrap(), Workmode::READY);
        assert!(Workmode::parse(0).is_err());
        assert!(Workmode::parse(-1).is_err());
        assert!(Workmode::parse(i64::MAX).is_err());
    }

    #[test]
    fn app_urls() {
        assert!(AppUrl::parse("http://sap:8000/sap/bc/ici?x=1").is_ok());
        assert!(AppUrl::parse("https://sap/").is_ok());
        assert!(AppUrl::parse("ftp://sap/").is_err());
        assert!(AppUrl::parse("/relative").is_err());
        assert!(AppUrl::parse("not a url").is_err());
    }
}
