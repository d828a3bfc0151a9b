//! Peer-controlled text made safe to log and to show: user names from Basic auth and the
//! `user` header, appIds, appURLs, call ids and fault details all reach log lines, and a
//! line break in one of them would write a line that looks like ours.
//!
//! Done once, in the logging layer rather than at each call site:
//!
//! - [`EscapedFields`] formats the fields of text lines as tracing does and escapes line
//!   breaks, other C0/C1 controls and the bidi controls that reorder what a viewer shows
//!   ([`escape_control`]); JSON lines escape control characters themselves.
//! - [`Redacting`] wraps the log writer and masks the password of every URL in a line
//!   (`http://user:****@host/`, [`redact_credentials`]), in both formats: an appURL may
//!   carry credentials, and it is logged for every delivery.

use std::borrow::Cow;
use std::fmt;
use std::io;

use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::{FormatFields, MakeWriter};

/// What a URL's password (or a userinfo without one, often a token) is shown as.
pub const PASSWORD_MASK: &str = "****";

/// Whether `c` is escaped in logs: C0 controls except tab, DEL, C1 controls, the line and
/// paragraph separators, and the bidi embedding, override and isolate controls.
fn needs_escape(c: char) -> bool {
    matches!(c,
        '\0'..='\u{8}' | '\n'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn write_escaped(out: &mut dyn fmt::Write, text: &str) -> fmt::Result {
    let mut rest = text;
    while let Some(at) = rest.find(needs_escape) {
        out.write_str(&rest[..at])?;
        let c = rest[at..].chars().next().expect("found above");
        match c {
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            c => write!(out, "\\u{{{:x}}}", u32::from(c))?,
        }
        rest = &rest[at + c.len_utf8()..];
    }
    out.write_str(rest)
}

/// `text` with control characters escaped (`\n`, `\r`, `\u{1b}`, `\u{202e}`, ...):
/// whatever it holds, it stays on one line and reads in order.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.contains(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let _ = write_escaped(&mut out, text);
    Cow::Owned(out)
}

/// `text` with the password of every URL in it masked: `scheme://user:pass@host` becomes
/// `scheme://user:****@host`, and `scheme://token@host` becomes `scheme://****@host`.
pub fn redact_credentials(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut done = 0;
    let mut from = 0;
    while let Some(at) = text[from..].find("://") {
        let authority_start = from + at + 3;
        let authority_len = text[authority_start..]
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '\\' | '`')
                    || c.is_whitespace()
                    || c.is_control()
            })
            .unwrap_or(text.len() - authority_start);
        let authority = &text[authority_start..authority_start + authority_len];
        from = authority_start + authority_len;
        let Some(userinfo_len) = authority.rfind('@') else {
            continue;
        };
        let userinfo = &authority[..userinfo_len];
        out.push_str(&text[done..authority_start]);
        if let Some((user, _password)) = userinfo.split_once(':') {
            out.push_str(user);
            out.push(':');
        }
        out.push_str(PASSWORD_MASK);
        done = authority_start + userinfo_len;
    }
    if done == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[done..]);
    Cow::Owned(out)
}

/// Both: what the status page shows of a logged problem.
pub fn for_display(text: &str) -> String {
    escape_control(&redact_credentials(text)).into_owned()
}

/// Formats fields (and the message) like tracing's default text format, with control
/// characters escaped; see [`escape_control`].
#[derive(Debug, Default)]
pub struct EscapedFields;

/// Escapes what passes through it on its way to `inner`.
struct Escaping<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_escaped(self.0, s)
    }
}

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut escaping = Escaping(&mut writer);
        DefaultFields::new().format_fields(Writer::new(&mut escaping), fields)
    }
}

/// A `MakeWriter` whose writers mask URL passwords ([`redact_credentials`]) in what they
/// are given. The fmt layer writes each line with one `write_all`, so a URL is never
/// split between two writes.
#[derive(Debug, Clone)]
pub struct Redacting<M>(pub M);

/// The writer of [`Redacting`].
pub struct RedactingWriter<W>(W);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter(self.0.make_writer())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        RedactingWriter(self.0.make_writer_for(meta))
    }
}

impl<W: io::Write> io::Write for RedactingWriter<W> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let redacted = match std::str::from_utf8(line) {
            Ok(text) if text.contains("://") => redact_credentials(text),
            _ => return self.0.write(line),
        };
        self.0.write_all(redacted.as_bytes())?;
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_stay_on_the_line() {
        assert_eq!(escape_control("plain\ttab ä"), "plain\ttab ä");
        assert_eq!(
            escape_control("a\nFAKE\r\u{1b}[2J\u{0}\u{85}\u{7f}"),
            "a\\nFAKE\\r\\u{1b}[2J\\u{0}\\u{85}\\u{7f}"
        );
        assert_eq!(
            escape_control("x\u{202e}gnp.exe\u{2066}\u{2028}"),
            "x\\u{202e}gnp.exe\\u{2066}\\u{2028}"
        );
    }

    #[test]
    fn url_passwords_are_masked_wherever_they_are() {
        let cases = [
            ("http://host/x", "http://host/x"),
            (
                "url=http://sap:pw@10.0.0.1:8000/sap/bc?x=1",
                "url=http://sap:****@10.0.0.1:8000/sap/bc?x=1",
            ),
            ("https://token@host", "https://****@host"),
            (
                "a \"https://u:p:q@h/\" and http://v:w@k#f end",
                "a \"https://u:****@h/\" and http://v:****@k#f end",
            ),
            ("http://u:p@ss@host/", "http://u:****@host/"),
            ("mail me@host, see ://", "mail me@host, see ://"),
            ("http://host/path@x", "http://host/path@x"),
        ];
        for (text, shown) in cases {
            assert_eq!(redact_credentials(text), shown, "{text}");
        }
    }

    #[test]
    fn fields_are_escaped_and_lines_redacted() {
        use std::sync::{Arc, Mutex};
        use tracing_subscriber::layer::SubscriberExt;

        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = {
            let sink = sink.clone();
            Redacting(move || sink.clone())
        };
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .fmt_fields(EscapedFields)
            .with_writer(writer);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let user = "evil\nFORGED line";
            let span = tracing::info_span!("outbox", url = %"http://u:pw@h/");
            let _entered = span.enter();
            tracing::info!(user = %user, app_id = user, "message {user}");
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("user=evil\\nFORGED line"), "{text}");
        assert!(text.contains("message evil\\nFORGED"), "{text}");
        assert!(text.contains("url=http://u:****@h/"), "{text}");
        assert!(!text.contains("pw"), "{text}");
    }
}
