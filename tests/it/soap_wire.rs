//! The SAP-facing listener over real sockets: SAP's own trace, the shapes other SOAP
//! stacks send, bad input of every kind, limits, WSDL, and interop with zeep and suds.

use crate::common;

use std::time::Duration;

use common::server::{TestServer, envelope, items_of, ns, params, text_of};
use common::tools;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const VENDOR_TRACE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/soap/vendor-trace.http"
));

/// Sends raw bytes and reads until the server closes (or 10 s pass).
async fn raw_exchange(server: &TestServer, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(server.soap).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn vendor_body() -> String {
    let text = std::str::from_utf8(VENDOR_TRACE).unwrap();
    text.split_once("\r\n\r\n").unwrap().1.to_string()
}

#[tokio::test]
async fn vendor_trace_byte_for_byte() {
    let server = TestServer::start("").await;
    let answer = raw_exchange(&server, VENDOR_TRACE).await;
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/xml; charset=utf-8")
    );
    assert!(body.contains("<ns:getAttributesResponse xmlns:ns=\"urn:IciUserInterface\">"));
    assert!(body.contains("<userId>CRMFOSOUT</userId>"));
    assert!(!body.contains("Fault"), "{body}");
    tools::validate_envelopes(&[body.to_string()]);
    server.stop().await;
}

#[tokio::test]
async fn tolerated_variants_of_the_vendor_request() {
    let server = TestServer::start("").await;
    let base = vendor_body();
    let variants = [
        base.replace("SOAP-ENV:", "s:")
            .replace("xmlns:SOAP-ENV", "xmlns:s")
            .replace("ns0:", "u:")
            .replace("xmlns:ns0", "xmlns:u"),
        base.replace(r#"<userId xmlns="urn:IciUserInterface">"#, "<userId>"),
        base.replace(
            "<userId",
            r#"<unknownThing a="1"><deep>x</deep></unknownThing><userId"#,
        )
        .replace(
            "<SOAP-ENV:Header>",
            r#"<SOAP-ENV:Header><t:trace xmlns:t="urn:x" SOAP-ENV:mustUnderstand="0">9</t:trace>"#,
        ),
        base.replace("><", ">\r\n<"),
        format!("\u{feff}{base}"),
    ];
    let mut bodies = Vec::new();
    for variant in &variants {
        let answer = server.post(variant.clone()).await;
        assert_eq!(text_of(answer.ret(), "userId"), "CRMFOSOUT", "{variant}");
        bodies.push(answer.body.clone());
    }
    // ISO-8859-1, declared, with a byte that is not ASCII.
    let latin1 = base
        .replace("UTF-8", "ISO-8859-1")
        .replace(">CRMFOSOUT</userId>", ">M\u{fc}LLER</userId>");
    let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&latin1);
    let answer = server
        .request(
            false,
            "POST",
            "/",
            &[("content-type", "text/xml")],
            bytes.into_owned(),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer.body.contains("<userId>M\u{dc}LLER</userId>"),
        "{}",
        answer.body
    );
    bodies.push(answer.body);
    tools::validate_envelopes(&bodies);
    server.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_fault_and_the_server_stays_up() {
    let server = TestServer::start("[agents]\naccept_unlisted_users = false").await;
    let laughs = format!(
        r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">{}]>{}"#,
        (1..10)
            .map(|i| format!(
                r#"<!ENTITY lol{i} "{}">"#,
                format!("&lol{};", i - 1).repeat(10)
            ))
            .collect::<String>()
            .replace("&lol0;", "&lol;"),
        envelope(&ns("User"), "getAttributes", "<userId>&lol9;</userId>")
    );
    let cases: Vec<(String, &str, &str)> = vec![
        ("this is not XML".into(), "SOAP-ENV:Client", "malformed XML"),
        (vendor_body()[..400].to_string(), "SOAP-ENV:Client", "malformed XML"),
        (
            r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"/>"#.into(),
            "SOAP-ENV:Client",
            "no SOAP Body",
        ),
        (
            r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body/></SOAP-ENV:Envelope>"#.into(),
            "SOAP-ENV:Client",
            "empty SOAP Body",
        ),
        (envelope(&ns("User"), "frobnicate", ""), "SOAP-ENV:Client", "unknown operation"),
        (envelope("urn:nobody", "nothingHere", ""), "SOAP-ENV:Client", "unknown operation"),
        (laughs, "SOAP-ENV:Client", "DOCTYPE is not allowed"),
        (
            envelope(&ns("User"), "setCurrentWorkmode", &params(&[("userId", "A"), ("workmode", "two")])),
            "SOAP-ENV:Client",
            "wrong parameter type",
        ),
        (envelope(&ns("User"), "getAttributes", ""), "SOAP-ENV:Client", "missing parameter"),
        (
            envelope(&ns("User"), "getAttributes", &params(&[("userId", "NOBODY")])),
            "SOAP-ENV:Client",
            "unknown user",
        ),
        (
            envelope(&ns("PhoneCall"), "hold", &params(&[("callId", "no-such-call")])),
            "SOAP-ENV:Client",
            "unknown call",
        ),
        (
            vendor_body().replace(
                "http://schemas.xmlsoap.org/soap/envelope/",
                "http://www.w3.org/2003/05/soap-envelope",
            ),
            "SOAP-ENV:VersionMismatch",
            "SOAP 1.1 envelope expected",
        ),
    ];
    let mut bodies = Vec::new();
    for (body, code, string) in cases {
        let answer = server.post(body.clone()).await;
        assert_eq!(
            answer.fault(),
            (code.to_string(), string.to_string()),
            "{body}"
        );
        bodies.push(answer.body);
    }
    tools::validate_envelopes(&bodies);
    // Nothing above changed any state: no agent was created.
    let status = server.request(true, "GET", "/api/status", &[], "").await;
    let status: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    assert_eq!(status["agents"], serde_json::json!([]));
    assert!(server.healthy().await);
    server.stop().await;
}

#[tokio::test]
async fn oversized_body_is_refused_without_reading_it() {
    let server = TestServer::start("[limits]\nmax_body_bytes = 4096").await;
    // Declares 10 MB, sends only the headers: the answer must come anyway.
    let head =
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 10000000\r\n\r\n";
    let answer = raw_exchange(&server, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // A chunked body that grows past the limit is cut off too.
    let big = vendor_body().replace(
        "CRMFOSOUT</userId>",
        &format!("{}</userId>", "A".repeat(8000)),
    );
    let answer = server
        .request(false, "POST", "/", &[("content-type", "text/xml")], big)
        .await;
    assert_eq!(answer.status, 413);
    assert!(server.healthy().await);
    server.stop().await;
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let server = TestServer::start("[limits]\nheader_read_timeout = \"300ms\"").await;
    let mut stream = TcpStream::connect(server.soap).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Never finish the headers: the server must close the connection by itself.
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    assert!(closed.is_ok(), "the server kept a slow client open");
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    assert!(server.healthy().await);
    server.stop().await;
}

#[tokio::test]
async fn keep_alive_serves_many_requests_on_one_connection() {
    let server = TestServer::start("").await;
    let body = vendor_body();
    let request = format!(
        "POST /any/path HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(server.soap).await.unwrap();
    for _ in 0..3 {
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 65536];
        let mut got = String::new();
        while !got.contains("</SOAP-ENV:Envelope>") {
            let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "connection closed after {got}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    }
    server.stop().await;
}

#[tokio::test]
async fn methods_paths_and_wsdl() {
    let server =
        TestServer::start("[soap]\npaths = [\"/SapIciWebConnector/IcSapWebService.asmx\"]").await;
    let path = "/SapIciWebConnector/IcSapWebService.asmx";
    let ok = server
        .request(
            false,
            "POST",
            path,
            &[("content-type", "text/xml")],
            vendor_body(),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let elsewhere = server
        .request(
            false,
            "POST",
            "/",
            &[("content-type", "text/xml")],
            vendor_body(),
        )
        .await;
    assert_eq!(elsewhere.status, 404);
    let get = server.request(false, "GET", path, &[], "").await;
    assert_eq!(get.status, 405);
    let put = server.request(false, "PUT", path, &[], "").await;
    assert_eq!(put.status, 405);

    let wsdl = server
        .request(false, "GET", &format!("{path}?wsdl=User"), &[], "")
        .await;
    assert_eq!(wsdl.status, 200);
    assert!(wsdl.body.contains("getAttributes"));
    assert!(
        wsdl.body
            .contains(&format!("location=\"http://{}{path}\"", server.soap)),
        "the WSDL points clients back at the URL it was fetched from"
    );
    let index = server
        .request(false, "GET", &format!("{path}?wsdl"), &[], "")
        .await;
    assert_eq!(index.status, 200);
    assert!(
        index.body.contains("wsdl=IciPhoneCallInterface"),
        "{}",
        index.body
    );
    server.stop().await;
}

#[tokio::test]
async fn attributes_and_product_information() {
    let toml = r#"
[agents.users]
AGENT1 = { extension = "2001" }
[[workmodes.custom]]
id = 4
text = "Lunch"
switch_state = "Lunch"
"#;
    let server = TestServer::start(toml).await;
    let answer = server
        .call("User", "getAttributes", &[("userId", "agent1")])
        .await;
    let ret = answer.ret();
    assert_eq!(text_of(ret, "userId"), "AGENT1");
    assert_eq!(text_of(ret, "currentWorkmode"), "1");
    assert_eq!(items_of(ret, "addresses"), ["2001"]);
    let ids: Vec<String> = ret
        .child("workmodes")
        .unwrap()
        .children
        .iter()
        .map(|w| text_of(w, "id"))
        .collect();
    assert_eq!(ids, ["1", "2", "3", "4"]);
    assert!(items_of(ret, "capabilities").contains(&"hold".to_string()));

    let info = server
        .call("System", "exchangeProductInformation", &[])
        .await;
    assert_eq!(text_of(info.ret(), "iciVersion"), "3.06");
    assert_eq!(text_of(info.ret(), "productName"), "ici-connector");
    let messages = server
        .call("Folder", "getMessages", &[("containerId", "2001")])
        .await;
    assert!(messages.ret().children.is_empty());
    server.stop().await;
}

/// zeep and suds-community, built from the WSDL the server serves.
#[tokio::test]
async fn zeep_and_suds_drive_the_server_from_its_wsdl() {
    let Some(python) = tools::python() else {
        return;
    };
    let toml = "[agents]\naccept_unlisted_users = false\n[agents.users]\nAGENT1 = { extension = \"2001\" }";
    let server = TestServer::start(toml).await;
    for script in ["zeep_client.py", "suds_client.py"] {
        let script = format!("{}/tests/interop/{script}", env!("CARGO_MANIFEST_DIR"));
        let output = tokio::process::Command::new(&python)
            .arg(&script)
            .arg(server.soap_url())
            .arg("AGENT1")
            .output()
            .await
            .expect("running the interop script");
        assert!(
            output.status.success(),
            "{script} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    server.stop().await;
}

/// The example requests README shows with curl are real, valid requests.
#[test]
fn example_requests_are_valid_ici_requests() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/soap/examples");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "examples are missing: {files:?}");
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        let request = ici_connector::soap::parse_envelope(&bytes)
            .unwrap_or_else(|f| panic!("{}: {f}", file.display()));
        ici_connector::ici::resolve(&request).unwrap_or_else(|f| panic!("{}: {f}", file.display()));
    }
}
