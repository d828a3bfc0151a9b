//! SOAP 1.1 faults: the one place where every error of every layer meets the wire.

use std::borrow::Cow;
use std::fmt;

/// SOAP 1.1 fault codes (section 4.4.1 of the SOAP 1.1 note).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultCode {
    /// The message was wrong: the client must not resend it unchanged.
    Client,
    /// We could not process a correct message (switch down, internal error).
    Server,
    /// The envelope is not SOAP 1.1.
    VersionMismatch,
    /// A header with `mustUnderstand="1"` that we do not understand.
    MustUnderstand,
}

impl FaultCode {
    /// The local part of the fault code; written with the envelope's prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultCode::Client => "Client",
            FaultCode::Server => "Server",
            FaultCode::VersionMismatch => "VersionMismatch",
            FaultCode::MustUnderstand => "MustUnderstand",
        }
    }
}

/// A SOAP fault. `string` is short and stable (SAP shows it, support staff grep for it);
/// `detail` carries the specifics (which parameter, which call id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: FaultCode,
    pub string: Cow<'static, str>,
    pub detail: Option<String>,
}

impl Fault {
    /// A Client fault with a fixed fault string.
    pub fn client(string: impl Into<Cow<'static, str>>) -> Fault {
        Fault {
            code: FaultCode::Client,
            string: string.into(),
            detail: None,
        }
    }

    /// A Server fault with a fixed fault string.
    pub fn server(string: impl Into<Cow<'static, str>>) -> Fault {
        Fault {
            code: FaultCode::Server,
            string: string.into(),
            detail: None,
        }
    }

    /// Adds the detail text.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Fault {
        self.detail = Some(detail.into());
        self
    }

    /// Malformed XML, in the words support staff will search for.
    pub fn malformed(detail: impl Into<String>) -> Fault {
        Fault::client("malformed XML").with_detail(detail)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.string)?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Fault {}
