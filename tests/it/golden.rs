//! Golden wire output: the exact bytes SAP gets from the connector, held in files under
//! `tests/fixtures/golden/`, so that a refactoring which changes one byte on the wire fails
//! here, where the change shows, instead of in a customer's SAP system.
//!
//! - `vendor-trace.response.http`: the HTTP response (status line, headers, body) to SAP's
//!   own `getAttributes` request, `tests/fixtures/soap/vendor-trace.http`, sent byte for byte.
//! - `sim-call.events.http`: every event one subscription receives, in order, while one
//!   simulated call goes through a queue to an agent and back: each event's request line,
//!   its headers and its body as sent.
//!
//! Only what legitimately varies between runs is replaced before comparing, by
//! [`normalise`]: the `Date` header of a response and the port of the fake SAP receiver in
//! the `Host` header. Everything else (call ids, sequence numbers, lengths, header order,
//! namespace prefixes) is deterministic in a fresh connector and compared as sent.
//!
//! After an intended change of the wire format, rewrite the files and review their diff:
//! `ICI_UPDATE_GOLDEN=1 cargo test --test it golden`.

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::fake_sap::{FakeSap, Received};
use common::server::{TestServer, envelope_as, params};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Set (to anything) to rewrite the golden files instead of comparing with them.
const UPDATE_ENV: &str = "ICI_UPDATE_GOLDEN";

/// How long the raw exchange waits for the server to close an HTTP/1.0 connection.
const RAW_EXCHANGE_WAIT: Duration = Duration::from_secs(10);

/// How much of a differing line [`compare`] shows on each side of the first difference.
const DIFF_CONTEXT: usize = 60;

const VENDOR_TRACE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/soap/vendor-trace.http"
));

/// The simulator with one agent extension and the `support` queue; the remote party never
/// answers or hangs up by itself, so only the test's steps move the call.
const SIM: &str = r#"
[switch.sim]
extensions = ["2001"]
remote_answer_after = "off"

[[switch.sim.queue]]
name = "support"
number = "600"
"#;

const USER: &str = "A1";
const EXTENSION: &str = "2001";
const APP_ID: &str = "app-A1";
const READY: u32 = 2;
const NOT_READY: u32 = 3;

/// The IVR's attached data on the inbound call.
const IVR_CAD: &str = r#"<ItemAttachedData><Application id="IVR"><CRM_IC><BUPA>4711</BUPA></CRM_IC></Application></ItemAttachedData>"#;

/// The attached data SAP sets while the call is connected.
const SAP_CAD: &str = r#"<ItemAttachedData><Application id="SAP-IC"><CRM_IC><BUPA>0815</BUPA></CRM_IC></Application></ItemAttachedData>"#;

/// One SAP request of the recorded call: interface, operation, parameters.
type Step<'a> = (&'static str, &'static str, Vec<(&'static str, &'a str)>);

/// The response to SAP's own trace of `getAttributes`, sent as SAP sends it (HTTP/1.0, so
/// the server closes the connection and the whole response is what was read).
#[tokio::test]
async fn golden_vendor_trace_response() {
    let server = TestServer::start("").await;
    let mut stream = TcpStream::connect(server.soap).await.unwrap();
    stream.write_all(VENDOR_TRACE).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(RAW_EXCHANGE_WAIT, stream.read_to_end(&mut response))
        .await
        .expect("the server closes an HTTP/1.0 connection after its answer")
        .unwrap();
    let response = String::from_utf8(response).expect("a UTF-8 response");
    compare("vendor-trace.response.http", &normalise(&response));
    server.stop().await;
}

/// One inbound call from the IVR through the `support` queue to agent A1, as A1's IC
/// session receives it: login (workmode ready), the call alerting with the IVR's attached
/// data, accept, hold, unhold, SAP's `setAttachedData`, drop. Once the call's `dropped`
/// event is in, a workmode change to not ready closes the record: events of one
/// subscription arrive in order, so once it is in, every event the call caused is in, and
/// nothing may follow it.
#[tokio::test]
async fn golden_sim_call_events() {
    let server = TestServer::start(SIM).await;
    let mut sap = FakeSap::start().await;
    server
        .log_in(USER, EXTENSION, &sap.url, APP_ID, READY)
        .await;
    let mut events = vec![sap.next_event().await];

    let (status, answer) = server
        .sim(
            "POST",
            "/calls",
            json!({"from": "sip:555@example.com", "queue": "support",
                   "attributes": {"Sap_Cad": IVR_CAD}}),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let call = answer["callId"].as_str().expect("callId").to_string();
    events.push(sap.next_event().await);

    let steps: [Step; 5] = [
        ("Item", "accept", vec![("itemId", &call)]),
        ("PhoneCall", "hold", vec![("callId", &call)]),
        ("PhoneCall", "unhold", vec![("callId", &call)]),
        (
            "Item",
            "setAttachedData",
            vec![("itemId", &call), ("attachedData", SAP_CAD)],
        ),
        ("PhoneCall", "drop", vec![("callId", &call)]),
    ];
    for (interface, op, pairs) in &steps {
        let request = envelope_as(USER, interface, op, &params(pairs));
        server.post(request).await.ok();
    }
    // The call's events come from the switch, in order: `dropped` is its last.
    record_until(&mut sap, &mut events, |event| {
        event.name == "phoneCallChanged" && event.field("state").as_deref() == Some("dropped")
    })
    .await;
    let not_ready = NOT_READY.to_string();
    let request = envelope_as(
        USER,
        "User",
        "setCurrentWorkmode",
        &params(&[("userId", USER), ("workmode", &not_ready)]),
    );
    server.post(request).await.ok();
    record_until(&mut sap, &mut events, |event| {
        event.name == "workmodeChanged" && event.field("workmode") == Some(not_ready.clone())
    })
    .await;
    if let Some(event) = sap.try_next_event() {
        panic!("an event after the closing workmode change: {}", event.body);
    }

    let record: String = events.iter().map(render_event).collect();
    compare("sim-call.events.http", &normalise(&record));
    server.stop().await;
}

/// Appends the events `sap` receives to `events`, up to and including the first one `last`
/// accepts.
async fn record_until(
    sap: &mut FakeSap,
    events: &mut Vec<Received>,
    last: impl Fn(&Received) -> bool,
) {
    loop {
        let event = sap.next_event().await;
        let done = last(&event);
        events.push(event);
        if done {
            return;
        }
    }
}

/// One event as the fake SAP received it: request line, the headers in their order (names
/// lower-case, as the receiver's HTTP parser gives them), a blank line, the body exactly as
/// sent and a newline that separates it from the next event.
fn render_event(event: &Received) -> String {
    let mut text = format!("POST {} HTTP/1.1\r\n", event.path);
    for (name, value) in &event.headers {
        let value = value.to_str().expect("an ASCII header value");
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(std::str::from_utf8(&event.raw).expect("a UTF-8 event body"));
    text.push('\n');
    text
}

/// The replacements made before comparing, each for a value that differs from run to run:
/// - a `date:` header's value (the time of the answer) becomes `<DATE>`;
/// - a `host:` header's port (the fake SAP receiver's, bound to port 0) becomes `<PORT>`.
///
/// Header names are matched case-insensitively, values are replaced up to the line end.
fn normalise(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            let (name, _) = line.split_once(':').unwrap_or_default();
            let end = if line.ends_with("\r\n") { "\r\n" } else { "" };
            if name.eq_ignore_ascii_case("date") {
                format!("{name}: <DATE>{end}")
            } else if name.eq_ignore_ascii_case("host") {
                let host = line[name.len() + 1..].trim();
                let (host, _) = host.rsplit_once(':').unwrap_or((host, ""));
                format!("{name}: {host}:<PORT>{end}")
            } else {
                line.to_string()
            }
        })
        .collect()
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden")
        .join(name)
}

/// Compares `actual` with the golden file `name`, or rewrites the file when
/// [`UPDATE_ENV`] is set. A difference fails with the first differing line: its number,
/// the column of the first differing byte, and both sides around it.
fn compare(name: &str, actual: &str) {
    let path = golden_path(name);
    if std::env::var_os(UPDATE_ENV).is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; {UPDATE_ENV}=1 cargo test --test it golden writes it",
            path.display()
        )
    });
    if expected == actual {
        return;
    }
    let mut want = expected.split_inclusive('\n');
    let mut got = actual.split_inclusive('\n');
    let mut number = 1;
    let (want, got) = loop {
        match (want.next(), got.next()) {
            (Some(w), Some(g)) if w == g => number += 1,
            (w, g) => break (w.unwrap_or("<end of file>"), g.unwrap_or("<end of file>")),
        }
    };
    let column = want
        .bytes()
        .zip(got.bytes())
        .take_while(|(w, g)| w == g)
        .count();
    panic!(
        "{} differs from the wire output at line {number}, column {}:\n  expected: {}\n  actual:   {}\n\
         If the change is intended: {UPDATE_ENV}=1 cargo test --test it golden, and review the diff.",
        path.display(),
        column + 1,
        excerpt(want, column),
        excerpt(got, column),
    );
}

/// `line` around byte `at`, escaped so that line ends and other control bytes show.
fn excerpt(line: &str, at: usize) -> String {
    let floor = |mut i: usize| {
        while !line.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let start = floor(at.saturating_sub(DIFF_CONTEXT));
    let end = floor((at + DIFF_CONTEXT).min(line.len()));
    let dots = |cut: bool| if cut { "…" } else { "" };
    format!(
        "{}{}{}",
        dots(start > 0),
        line[start..end].escape_debug(),
        dots(end < line.len())
    )
}
