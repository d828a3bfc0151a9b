//! `ici-connector trace --user U [--since 10m] [--call ID]`: reads the log files (text or
//! JSON lines, any mix) and tells one agent's story in time order, for support staff who
//! must answer "what happened to user X's call at 10:42".
//!
//! A line belongs to the story when it carries `user=U`, or names a call (`call=`) or a
//! subscription (`subscription=`) that a line of U named: the call id is the correlation
//! id that ties the switch's events to SAP's requests and to the events we pushed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Width of the story's label column (`SAP -> us`, `switch`, `events`, or a log level),
/// so that the texts after it line up.
const LABEL_WIDTH: usize = 11;
/// Indent of captured SOAP body lines: under the story text, one column further in.
const BODY_INDENT: usize = 26;
/// Fraction digits of the story's times: milliseconds are enough to order what one user
/// did, and keep the column short.
const FRACTION_DIGITS: usize = 3;

/// What to show.
#[derive(Debug, Clone)]
pub struct TraceQuery {
    /// The SAP user (agent) whose story is told.
    pub user: String,
    /// Only lines newer than this.
    pub since: Option<Duration>,
    /// Only lines about this call.
    pub call: Option<String>,
    /// Include the captured SOAP bodies (when capture was on for the user).
    pub bodies: bool,
}

/// Why the story could not be told.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no log files (ici-connector*) in {0}")]
    NoFiles(String),
}

/// One parsed log line.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub time: SystemTime,
    /// The timestamp as written (RFC 3339, UTC).
    pub stamp: String,
    pub level: String,
    pub target: String,
    pub message: String,
    /// Event fields, over the fields of the spans it was in.
    pub fields: BTreeMap<String, String>,
}

impl LogLine {
    fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty() && *v != "-")
    }
}

/// Reads every log file in `dir` and renders the story of `query.user`.
pub fn story_from_dir(dir: &Path, query: &TraceQuery) -> Result<String, TraceError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| TraceError::Read {
            path: dir.display().to_string(),
            source,
        })?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(crate::logging::FILE_PREFIX))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(TraceError::NoFiles(dir.display().to_string()));
    }
    let mut lines = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).map_err(|source| TraceError::Read {
            path: file.display().to_string(),
            source,
        })?;
        lines.extend(
            String::from_utf8_lossy(&bytes)
                .lines()
                .filter_map(parse_line),
        );
    }
    Ok(render(&select(lines, query, SystemTime::now()), query))
}

/// The lines of the story, in time order.
pub fn select(mut lines: Vec<LogLine>, query: &TraceQuery, now: SystemTime) -> Vec<LogLine> {
    let user = query.user.as_str();
    let mut calls = BTreeSet::new();
    let mut subscriptions = BTreeSet::new();
    for line in lines.iter().filter(|l| l.field("user") == Some(user)) {
        if let Some(call) = line.field("call") {
            calls.insert(call.to_string());
        }
        if let Some(sub) = line.field("subscription") {
            subscriptions.insert(sub.to_string());
        }
    }
    let since = query.since.and_then(|d| now.checked_sub(d));
    lines.retain(|l| {
        let ours = match l.field("user") {
            Some(u) => u == user,
            None => {
                l.field("call").is_some_and(|c| calls.contains(c))
                    || l.field("subscription")
                        .is_some_and(|s| subscriptions.contains(s))
            }
        };
        ours && since.is_none_or(|s| l.time >= s)
            && query
                .call
                .as_deref()
                .is_none_or(|c| l.field("call") == Some(c))
    });
    lines.sort_by_key(|l| l.time);
    lines
}

/// Renders the story, one or two lines per log line.
pub fn render(lines: &[LogLine], query: &TraceQuery) -> String {
    let mut out = String::new();
    let _ = write!(out, "Story of SAP user {}", query.user);
    if let Some(call) = &query.call {
        let _ = write!(out, ", call {call}");
    }
    if let Some(since) = query.since {
        let _ = write!(out, ", last {}", humantime::format_duration(since));
    }
    let _ = writeln!(out, " (times in UTC)");
    if lines.is_empty() {
        out.push_str("  nothing logged\n");
        return out;
    }
    for line in lines {
        let time = short_time(&line.stamp);
        let f = |k: &str| line.field(k).unwrap_or("?");
        let call = line
            .field("call")
            .map(|c| format!(" call {c}"))
            .unwrap_or_default();
        let text = match line.message.as_str() {
            "soap request" => format!(
                "{:<width$} {}{call}: {} ({} ms)",
                // The agent desktop's requests take the SOAP path too; say whose they are.
                match line.field("via") {
                    Some("agent-desktop") => "desk -> us",
                    _ => "SAP -> us",
                },
                f("op"),
                f("result"),
                f("duration_ms"),
                width = LABEL_WIDTH,
            ),
            m if m.starts_with("event delivered") => format!(
                "us -> SAP   {} #{}{call}: delivered, HTTP {} ({} ms, attempt {})",
                f("event"),
                f("sequence"),
                f("status"),
                f("latency_ms"),
                f("attempt")
            ),
            m if m.starts_with("delivery failed") => format!(
                "us -> SAP   {} #{}{call}: FAILED attempt {}: {}{}",
                f("event"),
                f("sequence"),
                f("attempt"),
                f("error"),
                line.field("retry_in_ms")
                    .map(|r| format!("; retry in {r} ms"))
                    .unwrap_or_default()
            ),
            m if m.starts_with("SAP refused the event") => format!(
                "us -> SAP   {} #{}{call}: HTTP {}: REFUSED by SAP, event dropped ({})",
                f("event"),
                f("sequence"),
                f("status"),
                f("answer")
            ),
            "SAP no longer knows this session" => format!(
                "us -> SAP   {} #{}{call}: HTTP {}: SAP's session has ended",
                f("event"),
                f("sequence"),
                f("status")
            ),
            "switch event" => format!(
                "switch      {} at {}{call}{}",
                f("state"),
                f("extension"),
                line.field("cause")
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            ),
            "subscribed" => format!(
                "events      subscription {} for {} -> {}",
                f("subscription"),
                f("target"),
                f("url")
            ),
            "workmode changed" => format!(
                "agent       workmode {}{}",
                f("workmode"),
                line.field("reason")
                    .map(|r| format!(", reason {r}"))
                    .unwrap_or_default()
            ),
            "soap capture" => {
                let mut text = format!("capture     {} {}{call}", f("direction"), f("op"));
                if query.bodies {
                    for body_line in f("body").lines() {
                        let _ = write!(text, "\n{:>BODY_INDENT$}{body_line}", "");
                    }
                }
                text
            }
            other => {
                let rest: Vec<String> = line
                    .fields
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "user" | "url" | "body"))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                format!("{:<LABEL_WIDTH$} {other} {}", line.level, rest.join(" "))
            }
        };
        let _ = writeln!(out, "{time}  {}", text.trim_end());
    }
    out
}

/// `2026-05-01T10:42:01.123456Z` → `2026-05-01 10:42:01.123`.
fn short_time(stamp: &str) -> String {
    let stamp = stamp.trim_end_matches('Z').replace('T', " ");
    match stamp.find('.') {
        Some(dot) => stamp[..(dot + 1 + FRACTION_DIGITS).min(stamp.len())].to_string(),
        None => stamp,
    }
}

/// Parses one line of either log format; `None` for anything else.
pub fn parse_line(line: &str) -> Option<LogLine> {
    let line = line.trim();
    if line.starts_with('{') {
        parse_json(line)
    } else {
        parse_text(line)
    }
}

fn parse_time(stamp: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(stamp.trim_end_matches('Z')).ok()
}

fn parse_json(line: &str) -> Option<LogLine> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let stamp = value.get("timestamp")?.as_str()?.to_string();
    let mut fields = BTreeMap::new();
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for span in value
        .get("spans")
        .and_then(|s| s.as_array())
        .into_iter()
        .flatten()
    {
        for (k, v) in span.as_object().into_iter().flatten() {
            if k != "name" {
                fields.insert(k.clone(), text(v));
            }
        }
    }
    let mut message = String::new();
    for (k, v) in value
        .get("fields")
        .and_then(|f| f.as_object())
        .into_iter()
        .flatten()
    {
        if k == "message" {
            message = text(v);
        } else {
            fields.insert(k.clone(), text(v));
        }
    }
    Some(LogLine {
        time: parse_time(&stamp)?,
        stamp,
        level: value.get("level").map(text).unwrap_or_default(),
        target: value.get("target").map(text).unwrap_or_default(),
        message,
        fields,
    })
}

/// The default `tracing-subscriber` text line:
/// `<time> <LEVEL> [span{k=v}:...:] <target>: <message> k=v k="quoted" ...`
fn parse_text(line: &str) -> Option<LogLine> {
    let (stamp, rest) = line.split_once(' ')?;
    let time = parse_time(stamp)?;
    let rest = rest.trim_start();
    let (level, rest) = rest.split_once(' ')?;
    if !matches!(level, "TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR") {
        return None;
    }
    let mut fields = BTreeMap::new();
    let mut tokens = tokenize(rest.trim_start()).into_iter().peekable();
    // Spans: `outbox{subscription=1 url=...}:notify{event="x" attempt=1}:`
    while let Some(token) = tokens.peek() {
        if token.contains('{') && token.ends_with("}:") {
            for inner in span_bodies(token) {
                for t in tokenize(inner) {
                    if let Some((k, v)) = key_value(&t) {
                        fields.insert(k, v);
                    }
                }
            }
            tokens.next();
        } else {
            break;
        }
    }
    let target = match tokens.peek() {
        Some(t) if t.ends_with(':') => tokens.next().map(|t| t.trim_end_matches(':').to_string()),
        _ => None,
    }
    .unwrap_or_default();
    // The message comes first, then the fields. A value written with `%` is not quoted, so
    // a word after a field that is no `key=value` itself continues that field's value
    // (`target=user AGENT1`, `error=request failed: connection refused`).
    let mut message = Vec::new();
    let mut last_key: Option<String> = None;
    for token in tokens {
        match (key_value(&token), &last_key) {
            (Some((k, v)), _) => {
                fields.insert(k.clone(), v);
                last_key = Some(k);
            }
            (None, Some(key)) => {
                if let Some(value) = fields.get_mut(key) {
                    value.push(' ');
                    value.push_str(&token);
                }
            }
            (None, None) => message.push(token),
        }
    }
    Some(LogLine {
        time,
        stamp: stamp.to_string(),
        level: level.to_string(),
        target,
        message: message.join(" "),
        fields,
    })
}

/// Splits on spaces outside quotes and braces.
fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut escaped, mut depth) = (false, false, 0usize);
    for c in text.chars() {
        if quoted {
            current.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = false;
            }
            continue;
        }
        match c {
            '"' => {
                quoted = true;
                current.push(c);
            }
            '{' => {
                depth += 1;
                current.push(c);
            }
            '}' => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            ' ' if depth == 0 => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

/// The insides of `a{...}:b{...}:`.
fn span_bodies(token: &str) -> Vec<&str> {
    let mut bodies = Vec::new();
    let mut rest = token;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find("}:") else { break };
        bodies.push(&after[..close]);
        rest = &after[close + 2..];
    }
    bodies
}

/// `key=value` or `key="debug string"` (unescaped).
fn key_value(token: &str) -> Option<(String, String)> {
    let (key, value) = token.split_once('=')?;
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return None;
    }
    let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => unescape(inner),
        None => value.to_string(),
    };
    Some((key.to_string(), value))
}

/// Undoes Rust's `{:?}` escaping of a string.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some('u') => {
                let code: String = chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                if let Some(c) = u32::from_str_radix(&code, 16).ok().and_then(char::from_u32) {
                    out.push(c);
                }
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"2026-05-01T10:42:01.100000Z  INFO ici_connector::switch: switch event user=AGENT1 call="sim-7" extension="2001" state="alerting"
2026-05-01T10:42:00.900000Z  INFO ici_connector::soap: soap request peer=127.0.0.1:50000 user="AGENT1" op="getAttributes" call="-" result=ok duration_ms=0.42
2026-05-01T10:42:01.200000Z  INFO outbox{subscription=3 url=http://127.0.0.1:9/sap}:notify{event="phoneCallChanged" attempt=1}: ici_connector::notify::drain: event delivered user=AGENT1 call="sim-7" event="phoneCallChanged" sequence=2 attempt=1 status=200 latency_ms=3
2026-05-01T10:42:01.150000Z DEBUG ici_connector::switch::sim::model: sim call ended call=sim-7
2026-05-01T10:42:02.000000Z  INFO ici_connector::soap: soap request peer=127.0.0.1:50000 user="AGENT2" op="accept" call="sim-9" result=ok duration_ms=1.00
2026-05-01T10:42:03.000000Z  INFO ici_connector::capture: soap capture user="AGENT1" call="sim-7" direction="request" op="accept" body="<a x=\"1\">\n</a>"
not a log line"#;

    fn query(user: &str) -> TraceQuery {
        TraceQuery {
            user: user.into(),
            since: None,
            call: None,
            bodies: true,
        }
    }

    #[test]
    fn text_lines_parse_with_spans_quotes_and_escapes() {
        let lines: Vec<_> = TEXT.lines().filter_map(parse_line).collect();
        assert_eq!(lines.len(), 6);
        let delivered = &lines[2];
        assert_eq!(delivered.message, "event delivered");
        assert_eq!(delivered.target, "ici_connector::notify::drain");
        assert_eq!(delivered.fields["subscription"], "3");
        assert_eq!(delivered.fields["event"], "phoneCallChanged");
        assert_eq!(delivered.fields["call"], "sim-7");
        assert_eq!(lines[5].fields["body"], "<a x=\"1\">\n</a>");
        assert_eq!(lines[3].level, "DEBUG");
    }

    #[test]
    fn json_lines_parse() {
        let line = r#"{"timestamp":"2026-05-01T10:42:01.200000Z","level":"INFO","fields":{"message":"event delivered","user":"AGENT1","call":"sim-7","sequence":2,"status":200},"target":"ici_connector::notify::drain","spans":[{"subscription":3,"name":"outbox"},{"event":"phoneCallChanged","attempt":1,"name":"notify"}]}"#;
        let parsed = parse_line(line).unwrap();
        assert_eq!(parsed.message, "event delivered");
        assert_eq!(parsed.fields["sequence"], "2");
        assert_eq!(parsed.fields["subscription"], "3");
        assert_eq!(parsed.fields["user"], "AGENT1");
    }

    #[test]
    fn story_follows_the_call_in_time_order_and_leaves_others_out() {
        let lines: Vec<_> = TEXT.lines().filter_map(parse_line).collect();
        let story = select(lines.clone(), &query("AGENT1"), SystemTime::now());
        let messages: Vec<&str> = story.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "soap request",
                "switch event",
                "sim call ended",
                "event delivered",
                "soap capture"
            ]
        );
        let text = render(&story, &query("AGENT1"));
        assert!(text.contains("10:42:00.900  SAP -> us   getAttributes: ok (0.42 ms)"));

        // A request of the agent desktop says so.
        let desk = TEXT
            .lines()
            .nth(1)
            .unwrap()
            .replace(" user=", " via=\"agent-desktop\" user=");
        let story = select(
            parse_line(&desk).into_iter().collect(),
            &query("AGENT1"),
            SystemTime::now(),
        );
        assert!(render(&story, &query("AGENT1")).contains("desk -> us  getAttributes: ok"));
        assert!(text.contains("us -> SAP   phoneCallChanged #2 call sim-7: delivered, HTTP 200"));
        assert!(text.contains("switch      alerting at 2001 call sim-7"));
        assert!(!text.contains("AGENT2"));
        assert!(!text.contains("sim-9"));

        let mut only = query("AGENT2");
        only.call = Some("sim-9".into());
        let story = select(lines, &only, SystemTime::now());
        assert_eq!(story.len(), 1);
    }

    #[test]
    fn a_refused_event_is_in_the_story() {
        let line = r#"2026-05-01T10:42:01.200000Z ERROR outbox{subscription=3 url=http://127.0.0.1:9/sap}:notify{event="phoneCallChanged" attempt=1}: ici_connector::notify::drain: SAP refused the event: dropped, the next one follows subscription=3 user=AGENT1 call="sim-7" event="phoneCallChanged" sequence=2 attempt=1 status=400 latency_ms=3 answer="bad request""#;
        let lines: Vec<_> = parse_line(line).into_iter().collect();
        let text = render(&lines, &query("AGENT1"));
        assert!(
            text.contains(
                "us -> SAP   phoneCallChanged #2 call sim-7: HTTP 400: REFUSED by SAP, event dropped (bad request)"
            ),
            "{text}"
        );
    }

    #[test]
    fn unquoted_values_with_spaces_are_read_whole() {
        let text = r#"2026-05-01T10:42:00.500000Z  INFO ici_connector::session::actor: subscribed subscription=1 target=user AGENT1 url=http://127.0.0.1:9/sap app_id=app-1
2026-05-01T10:42:00.600000Z  INFO ici_connector::session::actor: workmode changed user=AGENT1 workmode=not ready (3) reason="BRK"
2026-05-01T10:42:01.300000Z  WARN outbox{subscription=1 url=http://127.0.0.1:9/sap}:notify{event="phoneCallChanged" attempt=1}: ici_connector::notify::drain: delivery failed; will retry user=AGENT1 call="sim-7" event="phoneCallChanged" sequence=2 attempt=1 retry_in_ms=500 error=request failed: connection refused (os error 111)"#;
        let lines: Vec<_> = text.lines().filter_map(parse_line).collect();
        assert_eq!(lines[0].message, "subscribed");
        assert_eq!(lines[0].fields["target"], "user AGENT1");
        assert_eq!(lines[0].fields["app_id"], "app-1");
        assert_eq!(lines[1].fields["workmode"], "not ready (3)");
        assert_eq!(
            lines[2].fields["error"],
            "request failed: connection refused (os error 111)"
        );
        let story = render(&lines, &query("AGENT1"));
        assert!(
            story.contains("events      subscription 1 for user AGENT1 -> http://127.0.0.1:9/sap"),
            "{story}"
        );
        assert!(
            story.contains("agent       workmode not ready (3), reason BRK"),
            "{story}"
        );
        assert!(
            story.contains(
                "FAILED attempt 1: request failed: connection refused (os error 111); retry in 500 ms"
            ),
            "{story}"
        );
    }

    #[test]
    fn since_cuts_old_lines() {
        let lines: Vec<_> = TEXT.lines().filter_map(parse_line).collect();
        let now = parse_time("2026-05-01T10:42:02.500000Z").unwrap();
        let mut q = query("AGENT1");
        q.since = Some(Duration::from_secs(1));
        let story = select(lines, &q, now);
        assert_eq!(story.len(), 1);
        assert_eq!(story[0].message, "soap capture");
    }
}
