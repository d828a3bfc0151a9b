//! The Asterisk lab (tests/asterisk): its lock, starting and stopping it, its phones and
//! its CLI; shared by the Asterisk flow test and the scenario runner's Asterisk backend.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::STEP;
use crate::common;
use crate::common::server::TestServer;

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/asterisk")
        .join(name)
}

/// Runs a setup.sh mode; `Err(reason)` when the environment cannot run the PBX.
pub(crate) fn setup(arg: Option<&str>) -> Result<(), String> {
    let mut command = Command::new(script("setup.sh"));
    command.args(arg);
    let out = command.output().expect("run tests/asterisk/setup.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    match out.status.code() {
        Some(0) => Ok(()),
        Some(77) => Err(stdout
            .lines()
            .find_map(|l| l.strip_prefix("SKIPPED: "))
            .unwrap_or("setup.sh skipped")
            .to_owned()),
        _ => panic!(
            "tests/asterisk/setup.sh {arg:?} failed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The machine-wide lock of the Asterisk lab (fixed ports, one chroot): whoever runs the
/// lab holds it. A run started without `flock /tmp/ici-asterisk.lock ...` around it would
/// restart the PBX under another run's feet (its AMI link lost mid-call), so the test
/// takes the lock itself unless an ancestor process (that `flock`) already holds it.
const LAB_LOCK: &str = "/tmp/ici-asterisk.lock";

/// Holds [`LAB_LOCK`] for the test's life (`None`: an ancestor holds it for us).
pub(crate) async fn lab_lock() -> Option<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LAB_LOCK)
        .unwrap_or_else(|e| panic!("{LAB_LOCK}: {e}"));
    match file.try_lock() {
        Ok(()) => return Some(file),
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(e)) => panic!("{LAB_LOCK}: {e}"),
    }
    if lock_held_by_ancestor(&file) {
        return None;
    }
    println!("waiting for {LAB_LOCK}: another run uses the Asterisk lab");
    tokio::task::spawn_blocking(move || {
        file.lock().unwrap_or_else(|e| panic!("{LAB_LOCK}: {e}"));
        Some(file)
    })
    .await
    .unwrap()
}

/// Whether a process among our ancestors holds the flock on `file` (/proc/locks names the
/// holder's pid and the file's inode).
fn lock_held_by_ancestor(file: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    let inode = file.metadata().map(|m| m.ino()).unwrap_or(0);
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    let holders: Vec<u32> = locks
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (pid, id) = (fields.get(4)?, fields.get(5)?);
            let ino: u64 = id.rsplit(':').next()?.parse().ok()?;
            (fields.get(1) == Some(&"FLOCK") && ino == inode)
                .then(|| pid.parse().ok())
                .flatten()
        })
        .collect();
    let mut pid = std::process::id();
    while pid > 1 {
        if holders.contains(&pid) {
            return true;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // `pid (comm) state ppid ...`: comm may hold spaces, so count from its end.
        pid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
    }
    false
}

/// Stops the PBX and the phones whatever the test's outcome.
pub(crate) struct Teardown;

impl Drop for Teardown {
    fn drop(&mut self) {
        let _ = Command::new(script("teardown.sh")).status();
    }
}

/// Sends one command to a baresip phone (ctrl_tcp: netstring-framed JSON) and waits for
/// its answer.
pub(crate) async fn phone(port: u16, command: &str, params: &str) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("phone on {port}: {e}"));
    let json = serde_json::json!({"command": command, "params": params, "token": "t"}).to_string();
    stream
        .write_all(format!("{}:{json},", json.len()).as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 8192];
    let mut seen = String::new();
    let answered = tokio::time::timeout(Duration::from_secs(3), async {
        while !seen.contains("\"token\":\"t\"") {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await;
    assert!(
        answered.is_ok(),
        "phone {port} did not answer {command}: {seen}"
    );
}

/// Waits until `/readyz` answers `status`: the link to the PBX is reported by nothing else.
pub(crate) async fn ready(server: &TestServer, status: u16, what: &str) {
    common::poll(what, STEP, || async move {
        let answer = server.request(true, "GET", "/readyz", &[], "").await;
        match answer.status == status {
            true => Ok(()),
            false => Err(format!("{} {}", answer.status, answer.body)),
        }
    })
    .await
}

/// One Asterisk CLI command (`setup.sh --cli`): its output.
pub(crate) fn pbx(command: &str) -> Result<String, String> {
    let out = Command::new(script("setup.sh"))
        .args(["--cli", command])
        .output()
        .map_err(|e| e.to_string())?;
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}
