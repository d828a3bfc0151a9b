//! Configuration errors, each tied to the dotted TOML key it is about, so that
//! `check-config` can print every problem as `key: message`.

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One problem with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted TOML path of the offending key, e.g. `agents.max_interactions` or
    /// `workmodes.custom[1].id`; empty when the problem is not about one key (unreadable
    /// file, TOML syntax error).
    pub key: String,
    /// What is wrong, and where it helps, what would be right.
    pub message: String,
}

impl ConfigError {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }

    /// Turn the single error of the TOML parser / serde layer into a keyed problem.
    /// `input` is the document that failed, used to find the key under the error's span.
    pub(crate) fn from_toml(err: &toml::de::Error, input: &str) -> Self {
        let message = err.message().trim().to_owned();
        let Some(span) = err.span() else {
            return ConfigError::new("", message);
        };
        let Ok(doc) = DeTable::parse(input) else {
            // The document itself is not TOML: no key to name, so point at the text.
            let (line, column) = line_column(input, span.start);
            return ConfigError::new(
                "",
                format!("TOML syntax error at line {line}, column {column}: {message}"),
            );
        };
        let mut path = find_path(doc.get_ref(), &span);

        if let Some(rest) = message.strip_prefix("unknown field `") {
            let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
            if path.last().map(String::as_str) != Some(name) {
                path.push(name.to_owned());
            }
            return ConfigError::new(
                join_path(&path),
                format!("unknown key{}", expected_list(expected)),
            );
        }
        if let Some(rest) = message.strip_prefix("missing field `") {
            let name = rest.split('`').next().unwrap_or(rest);
            path.push(name.to_owned());
            return ConfigError::new(join_path(&path), "required key is missing");
        }
        if let Some(rest) = message.strip_prefix("unknown variant `") {
            let (value, expected) = rest.split_once('`').unwrap_or((rest, ""));
            return ConfigError::new(
                join_path(&path),
                format!("unknown value \"{value}\"{}", expected_list(expected)),
            );
        }
        if path.is_empty() {
            let (line, column) = line_column(input, span.start);
            return ConfigError::new("", format!("line {line}, column {column}: {message}"));
        }
        ConfigError::new(join_path(&path), plain_types(&message))
    }
}

/// Replace Rust type names in serde's messages by what an admin writes in TOML.
fn plain_types(message: &str) -> String {
    const NAMES: [(&str, &str); 5] = [
        ("expected u8", "expected an integer from 0 to 255"),
        ("expected u16", "expected an integer from 0 to 65535"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected usize", "expected a non-negative integer"),
    ];
    for (rust, plain) in NAMES {
        if let Some(head) = message.strip_suffix(rust) {
            return format!("{head}{plain}");
        }
    }
    message.to_owned()
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one configuration; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The problems, in document order of the checks.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// How many problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no problem (only for a value built by hand).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(err: ConfigError) -> Self {
        ConfigErrors(vec![err])
    }
}

impl fmt::Display for ConfigErrors {
    /// One line per problem, `key: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Render serde's "`a`, `b`" list of expected names as " (expected one of a, b)".
fn expected_list(expected: &str) -> String {
    let names: Vec<&str> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| !s.is_empty())
        .collect();
    match names.as_slice() {
        [] if expected.contains("there are no") => " (this table takes no keys)".to_owned(),
        [] => String::new(),
        [one] => format!(" (expected {one})"),
        many => format!(" (expected one of {})", many.join(", ")),
    }
}

/// Join path segments: keys with `.`, array indexes as `[i]`; keys that are not bare TOML
/// keys are quoted (`agents.users."jane.doe"`).
pub(crate) fn join_path(segments: &[String]) -> String {
    let mut out = String::new();
    for seg in segments {
        if seg.starts_with('[') {
            out.push_str(seg);
            continue;
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(&quote_key(seg));
    }
    out
}

/// A key as it would be written in TOML.
pub(crate) fn quote_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer.start < outer.end
}

/// Find the deepest key whose key span, value span or array item span holds `span`, and
/// return its path. The parser's spans of tables cover only their `[header]`, not their
/// body, so the whole tree is searched rather than only the enclosing spans.
fn find_path(root: &DeTable<'_>, span: &Range<usize>) -> Vec<String> {
    let mut best = Vec::new();
    search_table(root, span, &mut Vec::new(), &mut best);
    best
}

fn consider(path: &[String], best: &mut Vec<String>) {
    if path.len() > best.len() {
        *best = path.to_vec();
    }
}

fn search_table(
    table: &DeTable<'_>,
    span: &Range<usize>,
    path: &mut Vec<String>,
    best: &mut Vec<String>,
) {
    for (key, value) in table.iter() {
        path.push(key.get_ref().to_string());
        if contains(&key.span(), span) || contains(&value.span(), span) {
            consider(path, best);
        }
        search_value(value, span, path, best);
        path.pop();
    }
}

fn search_value(
    value: &Spanned<DeValue<'_>>,
    span: &Range<usize>,
    path: &mut Vec<String>,
    best: &mut Vec<String>,
) {
    match value.get_ref() {
        DeValue::Table(table) => search_table(table, span, path, best),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(format!("[{i}]"));
                if contains(&item.span(), span) {
                    consider(path, best);
                }
                search_value(item, span, path, best);
                path.pop();
            }
        }
        _ => {}
    }
}

/// 1-based line and column of a byte offset.
fn line_column(input: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(input.len());
    while !input.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &input[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
