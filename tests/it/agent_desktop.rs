//! The agent desktop (`/agent/` on the admin listener): its SOAP route and its event
//! receiver over real sockets, and the whole desktop in headless Chromium with two agents.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::server::{Answer, TestServer, envelope_as, params};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use ici_connector::soap::parse_request;

use crate::security::{basic, hash};

/// How long a test waits for one event on a desktop stream.
const WAIT: Duration = Duration::from_secs(30);

/// One SSE event of `/agent/stream`.
#[derive(Debug)]
struct StreamEvent {
    event: String,
    data: serde_json::Value,
}

/// A desktop's event stream, read as the browser's EventSource would.
struct DesktopStream {
    body: Incoming,
    buffer: String,
    _connection: tokio::task::JoinHandle<()>,
}

impl DesktopStream {
    async fn open(admin: SocketAddr, authorization: &str) -> DesktopStream {
        let tcp = tokio::net::TcpStream::connect(admin).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = http::Request::get(format!("http://{admin}/agent/stream"))
            .header("authorization", authorization)
            .header("accept", "text/event-stream")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        DesktopStream {
            body: response.into_body(),
            buffer: String::new(),
            _connection: connection,
        }
    }

    /// The next event (keep-alive comments skipped).
    async fn next(&mut self) -> StreamEvent {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if event.is_empty() {
                    continue;
                }
                return StreamEvent {
                    event,
                    data: serde_json::from_str(&data).unwrap(),
                };
            }
            let frame = tokio::time::timeout(WAIT, self.body.frame())
                .await
                .expect("an event within 30 s")
                .expect("the stream is open")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    /// The next ICI event's envelope.
    async fn next_ici(&mut self) -> String {
        let event = self.next().await;
        assert_eq!(event.event, "ici", "{event:?}");
        event.data["xml"].as_str().unwrap().to_string()
    }
}

/// One admin user `ops` / `ops-pw`, one SOAP user `SAPICI` / `sap-secret`, and an
/// `[events] allow` that names none of our own addresses.
fn auth_toml() -> String {
    format!(
        "[[auth.soap_users]]\nname = \"SAPICI\"\npassword_hash = \"{}\"\n\
         [[auth.admin_users]]\nname = \"ops\"\npassword_hash = \"{}\"\n\
         [events]\nallow = [\"192.0.2.0/24\"]\n",
        hash("sap-secret"),
        hash("ops-pw")
    )
}

/// POSTs an ICI request as `user` to the admin listener's `/agent/soap` (`desktop`) or
/// to the SOAP listener.
async fn soap(
    server: &TestServer,
    desktop: bool,
    authorization: &str,
    user: &str,
    interface: &str,
    op: &str,
    body: &str,
) -> Answer {
    let path = if desktop { "/agent/soap" } else { "/" };
    server
        .request(
            desktop,
            "POST",
            path,
            &[
                ("authorization", authorization),
                ("content-type", "text/xml; charset=utf-8"),
                (
                    "soapaction",
                    &format!("\"http://inqmy.com/soapdispatcher/rpc/bcbici/Ici{interface}Bean\""),
                ),
            ],
            envelope_as(user, interface, op, body),
        )
        .await
}

/// The `faultstring` of a fault answer.
fn fault_string(answer: &Answer) -> String {
    assert_eq!(answer.status, 500, "{}", answer.body);
    let fault = parse_request(answer.body.as_bytes()).unwrap().operation;
    fault.child("faultstring").unwrap().text.to_string()
}

/// The desktop's SOAP route answers through the SOAP path behind the admin credentials;
/// its stream hands out an appURL on the admin listener that passes the own-listener and
/// `[events] allow` rules and gets the events of its subscription; every other appURL on
/// the admin listener stays refused; the receiver refuses what is not an ICI event and
/// tokens it did not hand out.
#[tokio::test]
async fn desktop_soap_route_and_event_receiver() {
    let server = TestServer::start(&auth_toml()).await;
    let ops = basic("ops", "ops-pw");
    let sap = basic("SAPICI", "sap-secret");

    // Admin authentication applies to the page, its stream and its SOAP route.
    for (method, path) in [
        ("GET", "/agent/"),
        ("GET", "/agent/stream"),
        ("POST", "/agent/soap"),
    ] {
        let answer = server.request(true, method, path, &[], "").await;
        assert_eq!(answer.status, 401, "{method} {path}: {}", answer.body);
    }
    let page = server
        .request(true, "GET", "/agent/", &[("authorization", &ops)], "")
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("desktop.js"), "{}", page.body);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    for asset in ["/agent/desktop.js", "/agent/desktop.css"] {
        let answer = server
            .request(true, "GET", asset, &[("authorization", &ops)], "")
            .await;
        assert_eq!(answer.status, 200, "{asset}");
    }

    // The stream's first event is the page's own appURL.
    let mut stream = DesktopStream::open(server.admin, &ops).await;
    let hello = stream.next().await;
    assert_eq!(hello.event, "hello");
    let app_url = hello.data["appURL"].as_str().unwrap().to_string();
    let prefix = format!("http://{}/agent/events/", server.admin);
    assert!(app_url.starts_with(&prefix), "{app_url}");
    let token = &app_url[prefix.len()..];

    // SAP's login sequence through the desktop's route.
    let login = [
        ("getAttributes", params(&[("userId", "A1")])),
        (
            "setAddresses",
            "<userId>A1</userId><addresses><item>2001</item></addresses>".to_string(),
        ),
        (
            "subscribeUser",
            params(&[("userId", "A1"), ("appURL", &app_url), ("appId", "desk-1")]),
        ),
        (
            "setCurrentWorkmode",
            params(&[("userId", "A1"), ("workmode", "2")]),
        ),
    ];
    for (op, body) in &login {
        let answer = soap(&server, true, &ops, "A1", "User", op, body).await;
        assert_eq!(answer.status, 200, "{op}: {}", answer.body);
    }
    let event = stream.next_ici().await;
    assert!(event.contains("workmodeChanged"), "{event}");
    assert!(event.contains("<sequence>1</sequence>"), "{event}");
    assert!(event.contains("<item>desk-1</item>"), "{event}");

    // Without a SOAPAction header (a plain cross-site POST) the route refuses.
    let answer = server
        .request(
            true,
            "POST",
            "/agent/soap",
            &[("authorization", &ops), ("content-type", "text/plain")],
            envelope_as("A1", "User", "getAttributes", &params(&[("userId", "A1")])),
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.body);

    // Every other appURL on our listeners is still refused, whoever subscribes.
    let admin = server.admin;
    for url in [
        format!("http://{admin}/sim/calls"),
        format!("http://{admin}/agent/soap"),
        format!("http://{admin}/agent/events/{token}?x=1"),
        format!("http://localhost:{}/agent/events/{token}", admin.port()),
        format!("http://{}/agent/events/{token}", server.soap),
    ] {
        let body = params(&[("userId", "A2"), ("appURL", &url), ("appId", "x")]);
        for desktop in [false, true] {
            let auth = if desktop { &ops } else { &sap };
            let answer = soap(&server, desktop, auth, "A2", "User", "subscribeUser", &body).await;
            assert!(!fault_string(&answer).is_empty(), "{url}");
        }
    }

    // The receiver: no credentials needed, but only ICI events for a token it handed out.
    let receiver = |token: String, body: String| {
        let server = &server;
        async move {
            server
                .request(
                    true,
                    "POST",
                    &format!("/agent/events/{token}"),
                    &[("content-type", "text/xml; charset=utf-8")],
                    body,
                )
                .await
        }
    };
    let not_an_event = envelope_as("A1", "User", "getAttributes", &params(&[("userId", "A1")]));
    assert_eq!(receiver(token.to_string(), not_an_event).await.status, 400);
    assert_eq!(receiver(token.to_string(), "<x/>".into()).await.status, 400);
    let forged = event.replace("<sequence>1</sequence>", "<sequence>99</sequence>");
    let unknown = receiver("0123456789abcdef0123456789abcdef".into(), forged).await;
    assert_eq!(unknown.status, 401, "{}", unknown.body);

    // Nothing of that reached the page: the next event there is the connector's next one.
    let not_ready = params(&[("userId", "A1"), ("workmode", "3")]);
    let answer = soap(
        &server,
        true,
        &ops,
        "A1",
        "User",
        "setCurrentWorkmode",
        &not_ready,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let event = stream.next_ici().await;
    assert!(event.contains("<sequence>2</sequence>"), "{event}");
    assert!(event.contains("<workmode>3</workmode>"), "{event}");

    // The page goes away: its token with it, so the receiver answers 401 like SAP after the
    // IC session ended, and the subscription ends. (An event or two may still go into the
    // closed connection before the server sees it is closed, as into a browser that died.)
    drop(stream);
    let mut workmode = 2;
    common::poll("the closed page's subscription ends", WAIT, || {
        workmode = 5 - workmode;
        let toggle = params(&[("userId", "A1"), ("workmode", &workmode.to_string())]);
        let server = &server;
        let ops = &ops;
        let app_url = &app_url;
        async move {
            let answer = soap(
                server,
                true,
                ops,
                "A1",
                "User",
                "setCurrentWorkmode",
                &toggle,
            )
            .await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            let status = server
                .request(true, "GET", "/api/status", &[("authorization", ops)], "")
                .await;
            let status: serde_json::Value = serde_json::from_str(&status.body).unwrap();
            let subscriptions = status["subscriptions"].as_array().unwrap();
            match subscriptions
                .iter()
                .find(|s| s["app_url"] == app_url.as_str())
            {
                None => Ok(()),
                Some(s) => Err(format!("{s}")),
            }
        }
    })
    .await;

    server.stop().await;
}

/// Reasons and a custom workmode for the desktop's workmode list.
const WORKMODES: &str = r#"
[[workmodes.reasons]]
code = "BRK"
text = "Break"

[[workmodes.custom]]
id = 4
text = "Lunch"
switch_state = "Lunch"
"#;

/// The desktop in a real headless browser, two agents in two pages, admin authentication
/// on: an inbound queue call with IVR data pops on A1 with the data; accept, hold, unhold,
/// consult A2 (A2's page pops with the same data), the warm transfer (A1's card closes,
/// A2 connected), drop; not ready with a reason; no console error; each page's sequence
/// numbers without a gap (tests/browser/agent_desktop.mjs). With
/// `ICI_DESKTOP_SCREENSHOTS=dir` it saves the screenshots of docs/ there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_desktop_in_headless_chromium() {
    let Some((browser, chromium)) = crate::ops::browser_tools() else {
        return;
    };
    let toml = format!(
        "{}{WORKMODES}[switch.sim]\nremote_answer_after = \"off\"\n",
        auth_toml()
    );
    let server = TestServer::start(&toml).await;
    let base = format!("http://{}", server.admin);
    let mut command = tokio::process::Command::new("node");
    command
        .current_dir(&browser)
        .env("ICI_CHROMIUM", &chromium)
        .args(["agent_desktop.mjs", &base, "ops", "ops-pw"]);
    if let Some(dir) = std::env::var_os("ICI_DESKTOP_SCREENSHOTS") {
        command.arg(dir);
    }
    let out = tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .expect("the browser check ends within 3 minutes")
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    server.stop().await;
}
