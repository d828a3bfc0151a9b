//! The adapter's task: one AMI connection at a time, reconnect with backoff (alternating
//! with the backup host), and a resync after every login.
//!
//! This file owns the connection's life: connecting, logging in, reading the first
//! messages, and what happens between connections (commands answered `Unavailable`). What
//! happens while connected is in `actor/link.rs`; how a command becomes AMI actions, in
//! `actor/plan.rs`.

mod link;
pub(super) mod plan;

use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use self::link::Link;
use super::CONNECT_TIMEOUT;
use super::codec::{Action, Decoder, Frame, Message};
use super::model::Model;
use crate::backoff::Backoff;
use crate::config::AsteriskConfig;
use crate::switch::{EventSink, SwitchError, SwitchEvent, SwitchRequest};

/// Bytes one socket read takes while logging in and resyncing. Any size is correct (the
/// decoder joins frames across reads); this only sizes the buffer on the stack.
const LOGIN_READ_BYTES: usize = 8 * 1024;

/// Why a connection ended.
enum End {
    /// The session manager is gone: stop for good.
    Stop,
    /// The link failed: reconnect.
    Lost(String),
}

/// The adapter's life: connect (to `host`, then alternating with `backup_host`), serve,
/// report `LinkDown` when the connection drops, wait with backoff, again; until the command
/// channel closes.
pub async fn run(config: AsteriskConfig, mut rx: mpsc::Receiver<SwitchRequest>, events: EventSink) {
    let mut model = Model::new(&config.interface_pattern, config.queues.clone());
    model.set_wrap_up(config.wrap_up.is_some());
    let hosts: Vec<String> = std::iter::once(config.host.clone())
        .chain(config.backup_host.clone())
        .collect();
    let mut attempt: usize = 0;
    let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max, 0);
    let mut failures: u32 = 0;
    let mut originated: u64 = 0;
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    loop {
        let host = &hosts[attempt % hosts.len()];
        attempt += 1;
        let connected = while_down(&mut rx, connect(host, &config)).await;
        let (reader, writer, decoder) = match connected {
            None => return,
            Some(Ok(conn)) => conn,
            Some(Err(why)) => {
                warn!(host = %host, port = config.port, %why, "AMI connect failed");
                failures = failures.saturating_add(1);
                if while_down(&mut rx, tokio::time::sleep(backoff.pause(failures)))
                    .await
                    .is_none()
                {
                    return;
                }
                continue;
            }
        };
        info!(host = %host, port = config.port, "AMI logged in");
        failures = 0;
        let mut link = Link::new(reader, writer, decoder, &config, &mut originated, epoch);
        let end = link.serve(&mut rx, &mut model, &events).await;
        link.abandon_jobs();
        match end {
            End::Stop => return,
            End::Lost(reason) => {
                warn!(host = %host, %reason, "AMI connection lost");
                if !events.send(SwitchEvent::LinkDown { reason }).await {
                    return;
                }
            }
        }
        // Same host once more first, quickly: a restarted Asterisk is back in a second.
        attempt -= 1;
        if while_down(&mut rx, tokio::time::sleep(config.reconnect_min))
            .await
            .is_none()
        {
            return;
        }
    }
}

/// Runs `fut` while answering every command with `Unavailable`; `None` once the session
/// manager is gone.
async fn while_down<F: Future>(
    rx: &mut mpsc::Receiver<SwitchRequest>,
    fut: F,
) -> Option<F::Output> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return Some(out),
            request = rx.recv() => match request {
                Some(request) => {
                    let _ = request.reply.send(Err(SwitchError::Unavailable(
                        "no connection to Asterisk (AMI)".into(),
                    )));
                }
                None => return None,
            },
        }
    }
}

async fn connect(
    host: &str,
    config: &AsteriskConfig,
) -> Result<(OwnedReadHalf, OwnedWriteHalf, Decoder), String> {
    let login = async {
        let stream = TcpStream::connect((host, config.port))
            .await
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        let mut decoder = Decoder::new();
        let action = Action::new("Login")
            .with("Username", config.username.clone())
            .with("Secret", config.secret.expose().to_owned())
            .with("Events", "on");
        writer
            .write_all(action.encode("login").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        loop {
            let message = read_message(&mut reader, &mut decoder).await?;
            if message.is_response() && message.get("ActionID") == Some("login") {
                return if message.get("Response") == Some("Success") {
                    Ok((reader, writer, decoder))
                } else {
                    Err(format!(
                        "login refused: {}",
                        message.get("Message").unwrap_or("no reason")
                    ))
                };
            }
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, login)
        .await
        .map_err(|_| "timed out".to_owned())?
}

/// The next message (banners skipped).
async fn read_message(
    reader: &mut OwnedReadHalf,
    decoder: &mut Decoder,
) -> Result<Message, String> {
    loop {
        match decoder.next_frame() {
            Ok(Some(Frame::Message(m))) => return Ok(m),
            Ok(Some(Frame::Banner(banner))) => {
                debug!(%banner, "AMI banner");
                continue;
            }
            Ok(None) => {}
            Err(e) => return Err(e.to_owned()),
        }
        let mut buf = [0u8; LOGIN_READ_BYTES];
        let n = reader.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed by Asterisk".into());
        }
        decoder.feed(&buf[..n]);
    }
}
