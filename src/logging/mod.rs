//! Trace logs for support staff: where lines go (stderr, or rolling files in
//! `[logging] directory`), in which format (text or JSON), at which levels (a reloadable
//! `tracing` filter), plus two process-wide switches the admin API changes at run time:
//!
//! - the **raw SOAP capture** ([`is_captured`]): full request, response and event bodies,
//!   logged for chosen SAP users only (target `ici_connector::capture`), like SAP's own
//!   per-user trace `CRM_ICI_TRACE`;
//! - the **recent problems** ring ([`recent_problems`]): the last warn/error lines, for the
//!   status page.
//!
//! Both are process-wide because the log subscriber is: one process, one set of log files.
//!
//! What peers send (user names, appIds, appURLs, call ids) never breaks a line and a URL's
//! password is never written (the `sanitize` module: [`EscapedFields`], [`Redacting`]).
//!
//! The line shapes the `trace` command reads (see [`crate::trace_cmd`]): every line that
//! concerns a call carries `call=<call id>` (the switch's call id is the correlation id
//! from the switch event to SAP's request and the event we push), every line about an
//! agent carries `user=<SAP user>`.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::SystemTime;

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use crate::config::{LogFormat, LogRotation, LoggingConfig};

mod batch;
mod sanitize;
use batch::{BatchGuard, batch_writer};
pub use sanitize::{EscapedFields, PASSWORD_MASK, Redacting, escape_control, redact_credentials};

/// The target of raw SOAP capture lines.
pub const CAPTURE_TARGET: &str = "ici_connector::capture";

/// Log files are named `ici-connector.<date>.log` (`ici-connector.log` when never rotated).
pub const FILE_PREFIX: &str = "ici-connector";
/// See [`FILE_PREFIX`].
pub const FILE_SUFFIX: &str = "log";

/// How many warn/error lines the status page can show.
pub const RECENT_PROBLEMS: usize = 50;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("logging.level: {0}")]
    Filter(String),
    #[error("logging.directory {dir}: {source}")]
    Directory {
        dir: String,
        #[source]
        source: tracing_appender::rolling::InitError,
    },
    #[error("a global log subscriber is already installed")]
    AlreadySet,
}

/// The installed logging: keeps the log writer alive and changes the level at run time.
/// Clones share the writer; it writes out what is pending and stops when the last clone
/// is dropped, so keep one until the process's last line is logged.
#[derive(Clone)]
pub struct LogHandle {
    filter: reload::Handle<EnvFilter, Registry>,
    _guard: Option<std::sync::Arc<BatchGuard>>,
}

impl std::fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogHandle").finish_non_exhaustive()
    }
}

impl LogHandle {
    /// Replaces the level filter (e.g. on SIGHUP). A filter that does not parse is refused
    /// and the old one stays.
    pub fn set_level(&self, level: &str) -> Result<(), LoggingError> {
        let filter = EnvFilter::try_new(level).map_err(|e| LoggingError::Filter(e.to_string()))?;
        self.filter
            .reload(filter)
            .map_err(|e| LoggingError::Filter(e.to_string()))
    }
}

/// Installs the global log subscriber from `[logging]`. `RUST_LOG`, when set, overrides
/// `level` at start. With a `directory`, lines go to rolling files there (and warnings,
/// errors and the start/stop lines also to stderr, for the journal); without one, to
/// stderr. Also sets the initial
/// capture users.
pub fn init(config: &LoggingConfig) -> Result<LogHandle, LoggingError> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .map_err(|e| LoggingError::Filter(e.to_string()))?;
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (output, guard): (Box<dyn Layer<_> + Send + Sync>, _) = match &config.directory {
        Some(dir) => {
            let appender = RollingFileAppender::builder()
                .rotation(match config.rotation {
                    LogRotation::Daily => Rotation::DAILY,
                    LogRotation::Hourly => Rotation::HOURLY,
                    LogRotation::Never => Rotation::NEVER,
                })
                .filename_prefix(FILE_PREFIX)
                .filename_suffix(FILE_SUFFIX)
                .max_log_files(config.retention)
                .build(dir)
                .map_err(|source| LoggingError::Directory {
                    dir: dir.display().to_string(),
                    source,
                })?;
            let (writer, guard) = batch_writer(appender);
            let file = format_layer(config.format, writer, false);
            // The journal gets problems, and the process's own start/stop lines.
            let stderr = tracing_subscriber::fmt::layer()
                .fmt_fields(EscapedFields)
                .with_writer(Redacting(std::io::stderr))
                .with_ansi(ansi)
                .with_filter(filter_fn(|m| {
                    *m.level() <= Level::WARN || m.target() == env!("CARGO_CRATE_NAME")
                }));
            (file.and_then(stderr).boxed(), Some(guard))
        }
        None => {
            let (writer, guard) = batch_writer(std::io::stderr());
            (format_layer(config.format, writer, ansi), Some(guard))
        }
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .with(RecentProblems)
        .try_init()
        .map_err(|_| LoggingError::AlreadySet)?;
    set_capture_users(config.capture_users.iter().cloned());
    Ok(LogHandle {
        filter: handle,
        _guard: guard.map(std::sync::Arc::new),
    })
}

fn format_layer<S, W>(format: LogFormat, writer: W, ansi: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    // Peer-controlled text cannot break a line or show a URL's password (`sanitize`).
    let writer = Redacting(writer);
    match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .fmt_fields(EscapedFields)
            .with_writer(writer)
            .with_ansi(ansi)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(writer)
            .boxed(),
    }
}

// ---- raw SOAP capture ---------------------------------------------------------------------

static CAPTURE: RwLock<BTreeSet<String>> = RwLock::new(BTreeSet::new());
/// Whether [`CAPTURE`] has anyone in it: the common case (nobody) costs no lock.
static CAPTURE_ANY: AtomicBool = AtomicBool::new(false);

/// Whether the full SOAP traffic of `user` is logged.
pub fn is_captured(user: &str) -> bool {
    CAPTURE_ANY.load(Ordering::Relaxed)
        && CAPTURE
            .read()
            .map(|set| set.contains(user))
            .unwrap_or(false)
}

/// The users whose SOAP traffic is captured, sorted.
pub fn capture_users() -> Vec<String> {
    CAPTURE
        .read()
        .map(|set| set.iter().cloned().collect())
        .unwrap_or_default()
}

/// Replaces the captured users.
pub fn set_capture_users(users: impl IntoIterator<Item = String>) {
    let users: BTreeSet<String> = users.into_iter().filter(|u| !u.is_empty()).collect();
    let mut set = CAPTURE.write().unwrap_or_else(|e| e.into_inner());
    if *set != users {
        let names: Vec<&str> = users.iter().map(String::as_str).collect();
        tracing::info!(users = names.join(", "), "raw SOAP capture users set");
    }
    CAPTURE_ANY.store(!users.is_empty(), Ordering::Relaxed);
    *set = users;
}

/// Logs one captured SOAP message of `user` (when `user` is captured): `direction` is
/// `request` (SAP → us), `response` (our answer) or `event` (us → SAP).
pub fn capture(user: &str, call: Option<&str>, direction: &str, what: &str, body: &[u8]) {
    if is_captured(user) {
        let body = String::from_utf8_lossy(body);
        tracing::info!(target: CAPTURE_TARGET, user, call, direction, op = what, body = body.as_ref(), "soap capture");
    }
}

// ---- recent problems for the status page -----------------------------------------------

/// One warn or error line.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// Seconds since the Unix epoch.
    pub time: f64,
    pub level: &'static str,
    pub target: String,
    pub message: String,
    /// The other fields, `key=value` separated by spaces.
    pub fields: String,
}

static RECENT: Mutex<VecDeque<Problem>> = Mutex::new(VecDeque::new());

/// The last [`RECENT_PROBLEMS`] warn/error lines, oldest first.
pub fn recent_problems() -> Vec<Problem> {
    RECENT
        .lock()
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default()
}

/// Keeps the last warn/error lines in memory for the status page.
pub struct RecentProblems;

impl<S: Subscriber> Layer<S> for RecentProblems {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let mut visitor = Fields::default();
        event.record(&mut visitor);
        let problem = Problem {
            time: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            level: if level == Level::ERROR {
                "ERROR"
            } else {
                "WARN"
            },
            target: event.metadata().target().to_string(),
            message: sanitize::for_display(&visitor.message),
            fields: sanitize::for_display(&visitor.fields),
        };
        let mut recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() >= RECENT_PROBLEMS {
            recent.pop_front();
        }
        recent.push_back(problem);
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            if !self.fields.is_empty() {
                self.fields.push(' ');
            }
            self.fields.push_str(&format!("{}={value:?}", field.name()));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.record_debug(field, &value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_set_is_replaced_and_queried() {
        set_capture_users(["CAPT_A".to_string(), "CAPT_B".to_string()]);
        assert!(is_captured("CAPT_A"));
        assert!(!is_captured("CAPT_C"));
        assert!(capture_users().contains(&"CAPT_B".to_string()));
        set_capture_users(Vec::new());
        assert!(!is_captured("CAPT_A"));
    }

    #[test]
    fn recent_problems_keep_warnings_only() {
        let subscriber = tracing_subscriber::registry().with(RecentProblems);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not kept");
            tracing::warn!(call = "c-ring", "kept warning");
        });
        let recent = recent_problems();
        let kept = recent
            .iter()
            .find(|p| p.message == "kept warning")
            .expect("the warning is kept");
        assert_eq!(kept.level, "WARN");
        assert_eq!(kept.fields, "call=\"c-ring\"");
        assert!(!recent.iter().any(|p| p.message == "not kept"));
    }
}
