//! Access control and limits over real sockets: Basic auth (401 with a SOAP fault, per-peer
//! throttling, counters), allow-lists, the admin listener's own auth, XML attacks, every
//! `[limits]` setting, and 10,000 malformed requests that leave memory flat.

use crate::common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine;
use common::process::Process;
use common::server::{envelope, ns};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

mod access;
mod auth;
mod limits;

/// An Argon2id hash of `password`, with parameters cheap enough for tests.
pub(crate) fn hash(password: &str) -> String {
    use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
    let argon = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(1024, 1, 1, None).unwrap(),
    );
    argon
        .hash_password_with_salt(password.as_bytes(), b"ici-test-salt")
        .unwrap()
        .to_string()
}

pub(crate) fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// A config with one SOAP user `SAPICI` / `sap-secret` and one admin user `ops` / `ops-pw`.
fn auth_toml(extra: &str) -> String {
    format!(
        "[auth]\nfailure_burst = 3\nfailure_refill = \"1h\"\n\
         [[auth.soap_users]]\nname = \"SAPICI\"\npassword_hash = \"{}\"\n\
         [[auth.admin_users]]\nname = \"ops\"\npassword_hash = \"{}\"\n{extra}",
        hash("sap-secret"),
        hash("ops-pw")
    )
}

/// Sends `bytes` from source address `from` (any 127/8 address works on Linux loopback)
/// and reads until the server closes or 10 s pass.
async fn raw_from(to: SocketAddr, from: IpAddr, bytes: &[u8]) -> String {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn soap_post(body: &str, authorization: Option<&str>) -> Vec<u8> {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n{auth}Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn product_info() -> String {
    envelope(&ns("System"), "exchangeProductInformation", "")
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn body_of(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

/// A config with one SOAP user `SAPICI` / `sap-secret` (hashed with `hash`), no admin auth,
/// and `extra` lines inside `[auth]`.
fn soap_auth_toml(password_hash: &str, extra: &str) -> String {
    format!(
        "[auth]\n{extra}\n[[auth.soap_users]]\nname = \"SAPICI\"\npassword_hash = \"{password_hash}\"\n"
    )
}

/// Opens one connection per source address in `from`, and only then sends `request` on
/// all of them at once; returns each answer (read until the server closes).
async fn parallel_from(to: SocketAddr, from: &[IpAddr], request: &[u8]) -> Vec<String> {
    let mut streams = Vec::new();
    for ip in from {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(*ip, 0)).unwrap();
        streams.push(socket.connect(to).await.unwrap());
    }
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(streams.len()));
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            let (start, request) = (std::sync::Arc::clone(&start), request.to_vec());
            tokio::spawn(async move {
                start.wait().await;
                stream.write_all(&request).await.unwrap();
                let mut out = Vec::new();
                tokio::time::timeout(Duration::from_secs(120), stream.read_to_end(&mut out))
                    .await
                    .expect("answered within 120 s")
                    .expect("closed, not reset");
                String::from_utf8_lossy(&out).into_owned()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// The value of header `name` in a raw HTTP answer.
fn header_of<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer
        .split_once("\r\n\r\n")
        .map(|(h, _)| h)
        .unwrap_or(answer);
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// How many answers have HTTP status `status`.
fn count_status(answers: &[String], status: u16) -> u64 {
    answers.iter().filter(|a| status_of(a) == status).count() as u64
}

/// A size from `/proc/<pid>/status` in KiB: `VmRSS` (resident now) or `VmHWM` (peak).
fn proc_status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
