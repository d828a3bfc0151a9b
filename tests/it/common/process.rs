//! The connector binary as a real child process on a config file: its addresses read from
//! its start line, its stderr lines on a channel, signals sent with kill(1); killed when
//! dropped still running.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::server::Endpoints;

const BIN: &str = env!("CARGO_BIN_EXE_ici-connector");
const WAIT: Duration = Duration::from_secs(30);
/// The line the connector logs once everything (the spool included) is up.
const RUNNING: &str = "ici-connector running";

/// Spawns the binary on `config`; its stderr lines arrive on the channel.
fn spawn(config: &Path) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .env_remove("RUST_LOG")
        .arg("--config")
        .arg(config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    // Lines arrive through a channel so a silent process fails the test instead of
    // hanging it.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, lines)
}

/// A running connector process.
pub struct Process {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub endpoints: Endpoints,
}

impl Process {
    /// Starts `ici-connector --config FILE` and waits for its "listening" line (the
    /// listeners should be on port 0).
    pub fn start(config: &Path) -> Process {
        let (child, lines) = spawn(config);
        let listening = std::iter::from_fn(|| lines.recv_timeout(WAIT).ok())
            .find(|l| l.contains("listening"))
            .expect("the start line reaches stderr (also when logging to files)");
        let addr = |key: &str| {
            listening
                .split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or_else(|| panic!("{key} in {listening}"))
                .parse()
                .unwrap()
        };
        let endpoints = Endpoints::new(addr("soap="), addr("admin="));
        Process {
            child,
            lines,
            endpoints,
        }
    }

    /// Starts the binary on `dir/ici-connector.toml`: `toml` with the listeners moved to
    /// port 0 and the spool to `dir/data`, whatever `toml` says.
    pub fn start_in(dir: &Path, toml: &str) -> Process {
        let mut config: toml::Table = toml.parse().unwrap_or_else(|e| panic!("test config: {e}"));
        let mut set = |table: &str, key: &str, value: String| {
            config
                .entry(table)
                .or_insert_with(|| toml::Table::new().into())
                .as_table_mut()
                .unwrap_or_else(|| panic!("[{table}] is a table"))
                .insert(key.into(), value.into());
        };
        set("soap", "listen", "127.0.0.1:0".into());
        set("admin", "listen", "127.0.0.1:0".into());
        let data = dir.join("data").display().to_string();
        set("events", "data_dir", data);
        let path = dir.join("ici-connector.toml");
        std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
        Process::start(&path)
    }

    /// Starts `ici-connector --config FILE` expecting it to refuse to run: returns its exit
    /// code and every stderr line once it has exited. Panics (after killing it) if it comes
    /// up instead.
    pub fn start_refused(config: &Path) -> (Option<i32>, Vec<String>) {
        let (mut child, lines) = spawn(config);
        let mut seen = Vec::new();
        // The channel closes when the process has closed stderr, i.e. exited.
        while let Ok(line) = lines.recv_timeout(WAIT) {
            if line.contains(RUNNING) {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the connector started although it should have refused:\n{}",
                    seen.join("\n")
                );
            }
            seen.push(line);
        }
        let code = child.wait().unwrap().code();
        (code, seen)
    }

    /// Sends a signal by name (`TERM`, `HUP`, ...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for a stderr line containing `what`.
    /// Waits at most [`WAIT`] in all, also while other lines keep coming.
    pub fn expect_line(&self, what: &str) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        let tail = seen[seen.len().saturating_sub(20)..].join("\n");
        panic!("no stderr line with {what:?}; the last lines:\n{tail}")
    }

    /// Every stderr line up to and including the first containing `what` (waiting at most
    /// [`WAIT`]).
    pub fn lines_until(&self, what: &str) -> Vec<String> {
        let deadline = std::time::Instant::now() + WAIT;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(what);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        let tail = seen[seen.len().saturating_sub(20)..].join("\n");
        panic!("no stderr line with {what:?}; the last lines:\n{tail}")
    }

    /// The stderr lines still to come, until the process closes stderr.
    pub fn remaining_lines(&self) -> Vec<String> {
        std::iter::from_fn(|| self.lines.recv_timeout(WAIT).ok()).collect()
    }

    /// SIGTERM, and the graceful stop exits 0.
    pub fn stop(mut self) {
        self.signal("TERM");
        assert_eq!(
            self.child.wait().unwrap().code(),
            Some(0),
            "graceful stop exits 0"
        );
    }

    /// Waits for the exit of a process already sent SIGTERM: a graceful stop exits 0.
    pub fn stop_after_signal(mut self) {
        assert_eq!(
            self.child.wait().unwrap().code(),
            Some(0),
            "graceful stop exits 0"
        );
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// A test that fails before stopping its process kills it: a process left running would
/// keep its ports and the test harness's stdout, and cargo would wait for it.
impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
