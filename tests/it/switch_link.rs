//! Readiness tells the truth about the switch link: the real binary configured for
//! Asterisk, against a fake AMI server on 127.0.0.1:0 that refuses the login (or against a
//! port where nothing listens), is not ready, `ici_switch_link_up` is 0, and every failed
//! attempt is logged with its reason. And SAP sees the link: against a fake AMI server
//! that accepts the login and then drops the connection, the agents get the
//! `switch_unavailable` workmode, and their own one back when the adapter is in again.

use crate::common;

use std::path::Path;

use common::process::Process;
use common::server::Endpoints;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use common::fake_sap::FakeSap;
use common::server::TestServer;

const BANNER: &str = "Asterisk Call Manager/9.0.0\r\n";

/// A fake AMI server that sends the banner and refuses every login with `reason`; each
/// refused login is reported on the returned channel.
async fn refusing_ami(reason: &'static str) -> (u16, mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                stream.write_all(BANNER.as_bytes()).await?;
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = stream.read(&mut buf).await?;
                    if n == 0 {
                        return Ok::<_, std::io::Error>(());
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                let request = String::from_utf8_lossy(&request);
                assert!(request.contains("Action: Login"), "{request}");
                let id = request
                    .lines()
                    .find_map(|l| l.strip_prefix("ActionID: "))
                    .unwrap_or("")
                    .to_string();
                let answer =
                    format!("Response: Error\r\nActionID: {id}\r\nMessage: {reason}\r\n\r\n");
                stream.write_all(answer.as_bytes()).await?;
                let _ = tx.send(());
                // Asterisk keeps the connection open after a refused login.
                let _ = stream.read(&mut buf).await;
                Ok(())
            });
        }
    });
    (port, rx)
}

fn write_config(dir: &Path, ami_port: u16) -> std::path::PathBuf {
    let file = dir.join("ici-connector.toml");
    std::fs::write(
        &file,
        format!(
            r#"[soap]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[switch]
kind = "asterisk"
[switch.asterisk]
host = "127.0.0.1"
port = {ami_port}
username = "ici-connector"
secret = "wrong"
reconnect_min = "20ms"
reconnect_max = "50ms"
[events]
data_dir = {data:?}
[logging]
level = "info"
"#,
            data = dir.join("data").display().to_string(),
        ),
    )
    .unwrap();
    file
}

/// `/readyz` answers 503 naming the down link, and the gauge is 0.
async fn not_ready(api: &Endpoints) {
    let ready = api.request(true, "GET", "/readyz", &[], "").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(
        ready.body.contains("switch: FAIL (asterisk link down)"),
        "{}",
        ready.body
    );
    let metrics = api.request(true, "GET", "/metrics", &[], "").await.body;
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"ici_switch_link_up{switch="asterisk"} 0"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_ami_login_is_not_ready_and_logged() {
    let (port, mut logins) = refusing_ami("Authentication failed").await;
    let dir = tempfile::tempdir().unwrap();
    let process = Process::start(&write_config(dir.path(), port));
    let api = &process.endpoints;

    // Down before the first attempt has ended, down after refused ones, each one logged.
    not_ready(api).await;
    for _ in 0..2 {
        logins.recv().await.expect("a login attempt");
        let line = process.expect_line("AMI connect failed");
        assert!(
            line.contains("login refused: Authentication failed"),
            "{line}"
        );
        assert!(line.contains(&format!("port={port}")), "{line}");
        not_ready(api).await;
    }
    process.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_ami_is_not_ready_and_logged() {
    // A port nothing listens on: bound, then closed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let process = Process::start(&write_config(dir.path(), port));
    for _ in 0..2 {
        let line = process.expect_line("AMI connect failed");
        assert!(line.to_lowercase().contains("connection refused"), "{line}");
    }
    not_ready(&process.endpoints).await;
    process.stop();
}

/// A fake AMI server that accepts every login and answers the resync with no channels and
/// no queue members. Each logged-in connection is reported on the returned channel with a
/// sender that closes it (Asterisk going away without a word).
async fn accepting_ami() -> (u16, mpsc::UnboundedReceiver<oneshot::Sender<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                stream.write_all(BANNER.as_bytes()).await?;
                let (close, mut closed) = oneshot::channel::<()>();
                let mut close = Some(close);
                let mut pending = Vec::new();
                let mut buf = [0u8; 1024];
                loop {
                    let n = tokio::select! {
                        read = stream.read(&mut buf) => read?,
                        _ = &mut closed => return Ok(()),
                    };
                    if n == 0 {
                        return Ok::<_, std::io::Error>(());
                    }
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        let action: Vec<u8> = pending.drain(..end + 4).collect();
                        let action = String::from_utf8_lossy(&action);
                        let field = |name: &str| {
                            action
                                .lines()
                                .find_map(|l| l.strip_prefix(name))
                                .unwrap_or("")
                                .to_string()
                        };
                        let (name, id) = (field("Action: "), field("ActionID: "));
                        let ok = format!("Response: Success\r\nActionID: {id}\r\n");
                        let answer = match name.as_str() {
                            "Login" => format!("{ok}Message: Authentication accepted\r\n\r\n"),
                            "CoreShowChannels" | "QueueStatus" => format!(
                                "{ok}EventList: start\r\n\r\nEvent: {name}Complete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: 0\r\n\r\n"
                            ),
                            _ => format!("{ok}\r\n"),
                        };
                        stream.write_all(answer.as_bytes()).await?;
                        if name == "Login"
                            && let Some(close) = close.take()
                        {
                            let _ = tx.send(close);
                        }
                    }
                }
            });
        }
    });
    (port, rx)
}

/// The AMI connection drops: SAP's agents are shown not ready, reason SWITCH_UNAVAILABLE
/// (the default `switch_unavailable`); the adapter logs in again and resyncs: each agent
/// gets its own workmode back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_ami_link_is_shown_to_sap_and_restored() {
    let (port, mut connections) = accepting_ami().await;
    let config = format!(
        "[switch]\nkind = \"asterisk\"\n[switch.asterisk]\nhost = \"127.0.0.1\"\nport = {port}\n\
         username = \"ici-connector\"\nsecret = \"s\"\nreconnect_min = \"20ms\"\nreconnect_max = \"50ms\"\n"
    );
    let server = TestServer::start(&config).await;
    let first = connections.recv().await.expect("the adapter logs in");
    let api = &server;
    common::poll(
        "the AMI link is up",
        common::fake_sap::WAIT,
        || async move {
            let ready = api.request(true, "GET", "/readyz", &[], "").await;
            match ready.status {
                200 => Ok(()),
                _ => Err(ready.body),
            }
        },
    )
    .await;
    let mut sap = FakeSap::start().await;
    server
        .call(
            "User",
            "subscribeUser",
            &[("userId", "A1"), ("appURL", &sap.url), ("appId", "APP")],
        )
        .await
        .ok();

    let _ = first.send(());
    let down = sap.next_event().await;
    assert_eq!(down.name, "workmodeChanged", "{}", down.body);
    assert_eq!(
        down.field("workmode").as_deref(),
        Some("3"),
        "{}",
        down.body
    );
    assert_eq!(
        down.field("reason").as_deref(),
        Some("SWITCH_UNAVAILABLE"),
        "{}",
        down.body
    );
    let _second = connections.recv().await.expect("the adapter logs in again");
    let back = sap.next_event().await;
    assert_eq!(back.name, "workmodeChanged", "{}", back.body);
    assert_eq!(
        back.field("workmode").as_deref(),
        Some("1"),
        "{}",
        back.body
    );
    assert_eq!(back.sequence, Some(2), "{}", back.body);
    server.stop().await;
}
