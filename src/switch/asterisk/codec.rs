//! The AMI wire format, pure (no I/O): a message is `Key: Value` lines ended by CRLF, and a
//! blank line ends the message. The first line after connecting is a banner
//! (`Asterisk Call Manager/11.0.0`) without a blank line after it.

use std::fmt::Write as _;

/// One AMI message: an action response, an event, or (outbound) an action. Keys keep their
/// order and may repeat (`Variable:` does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub fields: Vec<(String, String)>,
}

impl Message {
    /// The first value of `key` (AMI keys are case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// `get`, with Asterisk's placeholders for "nothing" (`<unknown>`, empty) as `None`.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty() && *v != "<unknown>")
    }

    /// The event name, if this is an event.
    pub fn event(&self) -> Option<&str> {
        match self.fields.first() {
            Some((k, v)) if k.eq_ignore_ascii_case("Event") => Some(v),
            _ => None,
        }
    }

    /// Whether this is a response to an action (`Response:` first).
    pub fn is_response(&self) -> bool {
        matches!(self.fields.first(), Some((k, _)) if k.eq_ignore_ascii_case("Response"))
    }

    /// Parses one message (without its terminating blank line). Lines without a colon
    /// (free text of old `Command` output) are kept under the key `Output`.
    pub fn parse(block: &str) -> Message {
        let fields = block
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .filter(|l| !l.is_empty())
            .map(|line| match line.split_once(':') {
                Some((k, v)) => (k.trim().to_owned(), v.trim_start().to_owned()),
                None => ("Output".to_owned(), line.to_owned()),
            })
            .collect();
        Message { fields }
    }
}

/// An action to send. Values are sanitized: a CR or LF in a value would let it inject
/// another header or end the message, so they become spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub name: &'static str,
    pub fields: Vec<(&'static str, String)>,
}

impl Action {
    pub fn new(name: &'static str) -> Action {
        Action {
            name,
            fields: Vec::new(),
        }
    }

    /// Adds a field (builder style).
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Action {
        self.fields.push((key, value.into()));
        self
    }

    /// The wire form with `ActionID`.
    pub fn encode(&self, action_id: &str) -> String {
        let mut out = String::with_capacity(64 + self.fields.len() * 32);
        let _ = write!(
            out,
            "Action: {}\r\nActionID: {}\r\n",
            self.name,
            clean(action_id)
        );
        for (k, v) in &self.fields {
            let _ = write!(out, "{k}: {}\r\n", clean(v));
        }
        out.push_str("\r\n");
        out
    }
}

impl std::fmt::Display for Action {
    /// Name and keys only: values may hold a secret and never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

fn clean(value: &str) -> String {
    value.replace(['\r', '\n'], " ")
}

/// Splits a byte stream into messages. Feed it what the socket gave, then take messages
/// until it returns `None`.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    banner_seen: bool,
}

/// What the decoder found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The greeting line (`Asterisk Call Manager/11.0.0`).
    Banner(String),
    Message(Message),
}

/// A message larger than this means the peer is not AMI (or is broken): the connection is
/// dropped rather than buffering without bound.
pub const MAX_MESSAGE: usize = 1 << 20;

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame; `Err` if the buffered data is too large to be AMI.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, &'static str> {
        if !self.banner_seen {
            let Some(end) = self.buf.iter().position(|&b| b == b'\n') else {
                return self.check_size();
            };
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            self.banner_seen = true;
            let text = String::from_utf8_lossy(&line).trim().to_owned();
            return Ok(Some(Frame::Banner(text)));
        }
        loop {
            let Some(end) = find_blank_line(&self.buf) else {
                return self.check_size();
            };
            let block: Vec<u8> = self.buf.drain(..end.1).collect();
            let message = Message::parse(&String::from_utf8_lossy(&block[..end.0]));
            if !message.fields.is_empty() {
                return Ok(Some(Frame::Message(message)));
            }
        }
    }

    fn check_size(&self) -> Result<Option<Frame>, &'static str> {
        if self.buf.len() > MAX_MESSAGE {
            Err("AMI message too large")
        } else {
            Ok(None)
        }
    }
}

/// (end of the message's text, end of the blank line) of the first `\r\n\r\n` (or `\n\n`).
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some((i, i + 2));
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
        i += 1;
    }
    None
}
