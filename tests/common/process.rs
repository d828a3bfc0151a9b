//! The connector binary as a real child process on a config file: its addresses read from
//! its start line, its stderr lines on a channel, signals sent with kill(1).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::server::Endpoints;

const BIN: &str = env!("CARGO_BIN_EXE_ici-connector");
const WAIT: Duration = Duration::from_secs(30);

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

    /// Sends a signal by name (`TERM`, `HUP`, ...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for a stderr line containing `what`.
    pub fn expect_line(&self, what: &str) -> String {
        std::iter::from_fn(|| self.lines.recv_timeout(WAIT).ok())
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no stderr line with {what:?}"))
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

impl Drop for Process {
    /// A test that fails halfway leaves no connector behind (it would hold the test's
    /// output open and keep its ports).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
