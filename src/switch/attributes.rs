//! A call's attributes (ANI, DNIS, IVR data such as `Sap_Cad`) as one shared, compact
//! value.
//!
//! Every leg snapshot of a call carries the call's attributes, and the same snapshot is held
//! by the switch adapter (the simulator's last-sent state) and by the session manager (the
//! agent's interactions). A `BTreeMap<String, String>` per copy cost a 544-byte B-tree leaf
//! plus an allocation per name and value, three times per call: about a third of the memory
//! a logged-in agent with six calls needed. Here all entries are packed into one string
//! behind an `Arc`: a call's attributes are a single small allocation, cloning a snapshot
//! only counts a reference, an empty set allocates nothing, and the rare change (the
//! simulator's `SetCallData`) builds a new one.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;

/// Name → value, raw as the switch gives them. Names are unique and kept sorted, so
/// iteration is in name order (as a `BTreeMap`'s); lookups are exact (case-sensitive).
#[derive(Clone, Default)]
pub struct Attributes {
    /// Every entry as `<name length>:<name><value length>:<value>` (lengths in bytes,
    /// decimal), in name order; `None` when there are none. Lengths, not separators, so a
    /// name or value may hold any character; the form is canonical, so equal sets have
    /// equal strings.
    packed: Option<Arc<str>>,
}

impl Attributes {
    /// No attributes.
    pub fn new() -> Attributes {
        Attributes::default()
    }

    /// Packs entries that are in name order with unique names.
    fn from_sorted<'a>(entries: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Attributes {
        let size: usize = entries
            .clone()
            .map(|(k, v)| k.len() + v.len() + 2 * (1 + decimal_digits(k.len().max(v.len()))))
            .sum();
        if size == 0 {
            return Attributes::default();
        }
        let mut packed = String::with_capacity(size);
        for (k, v) in entries {
            for field in [k, v] {
                let _ = write!(packed, "{}:{field}", field.len());
            }
        }
        Attributes {
            packed: Some(Arc::from(packed)),
        }
    }

    /// The value of attribute `name` (exact match).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Whether attribute `name` is set.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Name and value of every attribute, in name order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            rest: self.packed.as_deref().unwrap_or_default(),
        }
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.packed.is_none()
    }

    /// Sets `name` to `value` (replacing its old value). Builds a new set: other holders of
    /// this one keep seeing the old entries.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.extend([(name.into(), value.into())]);
    }

    /// A map with the same entries (for the simulator's control API).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

/// The number of decimal digits of `n` (at least 1).
fn decimal_digits(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// The entries of an [`Attributes`], in name order.
#[derive(Clone)]
pub struct Iter<'a> {
    rest: &'a str,
}

impl<'a> Iter<'a> {
    /// The next length-prefixed field.
    fn field(&mut self) -> &'a str {
        let (len, rest) = self.rest.split_once(':').expect("packed attributes");
        let (field, rest) = rest.split_at(len.parse().expect("packed attributes"));
        self.rest = rest;
        field
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        if self.rest.is_empty() {
            return None;
        }
        let name = self.field();
        Some((name, self.field()))
    }
}

/// Later entries replace earlier ones of the same name, as `BTreeMap::extend` does.
impl Extend<(String, String)> for Attributes {
    fn extend<I: IntoIterator<Item = (String, String)>>(&mut self, iter: I) {
        let mut added = iter.into_iter().peekable();
        if added.peek().is_none() {
            return;
        }
        let mut map: BTreeMap<String, String> = self.to_map();
        map.extend(added);
        *self = Attributes::from(map);
    }
}

impl FromIterator<(String, String)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Attributes {
        let mut attributes = Attributes::new();
        attributes.extend(iter);
        attributes
    }
}

impl From<BTreeMap<String, String>> for Attributes {
    fn from(map: BTreeMap<String, String>) -> Attributes {
        Attributes::from_sorted(map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

impl<const N: usize> From<[(String, String); N]> for Attributes {
    fn from(entries: [(String, String); N]) -> Attributes {
        entries.into_iter().collect()
    }
}

impl PartialEq for Attributes {
    fn eq(&self, other: &Attributes) -> bool {
        self.packed.as_deref() == other.packed.as_deref()
    }
}

impl Eq for Attributes {}

/// Shown as a map, as the `BTreeMap` it replaces was.
impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn behaves_as_a_sorted_map() {
        let mut a = attrs(&[("dnis", "5000"), ("ani", "555"), ("dnis", "6000")]);
        assert_eq!(a.len(), 2);
        assert_eq!(a.get("dnis"), Some("6000"), "the later value wins");
        assert_eq!(a.get("ani"), Some("555"));
        assert_eq!(a.get("ANI"), None, "names are exact");
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            [("ani", "555"), ("dnis", "6000")]
        );
        let before = a.clone();
        a.insert("Sap_Cad", "<ItemAttachedData/>");
        a.insert("ani", "777");
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            [
                ("Sap_Cad", "<ItemAttachedData/>"),
                ("ani", "777"),
                ("dnis", "6000")
            ]
        );
        assert_eq!(
            before.get("ani"),
            Some("555"),
            "a clone keeps the old entries"
        );
        assert_ne!(a, before);
        assert_eq!(Attributes::from(a.to_map()), a);
        assert_eq!(format!("{before:?}"), r#"{"ani": "555", "dnis": "6000"}"#);
    }

    #[test]
    fn any_character_in_names_and_values() {
        let a = attrs(&[("a:1", "x:2:y"), ("", ""), ("ü", "12:ä\u{0}")]);
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            [("", ""), ("a:1", "x:2:y"), ("ü", "12:ä\u{0}")]
        );
        assert_eq!(a.get(""), Some(""));
        assert!(!a.is_empty());
        let long = "x".repeat(1234);
        let b = attrs(&[("Sap_Cad", &long), ("ani", "5")]);
        assert_eq!(b.get("Sap_Cad"), Some(long.as_str()));
        assert_eq!(b.get("ani"), Some("5"));
    }

    #[test]
    fn empty_allocates_nothing() {
        let mut a = Attributes::new();
        a.extend(std::iter::empty());
        assert!(a.is_empty() && a.packed.is_none());
        assert_eq!(a, attrs(&[]));
        assert_eq!(a.get("ani"), None);
        assert_eq!(a.iter().count(), 0);
    }
}
