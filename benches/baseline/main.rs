//! The baseline of benchmark 1: the least a hyper server can do for a SOAP request. It reads
//! the whole request body (as the connector does) and answers a fixed
//! `getPhoneCallAttributesResponse` of the size the connector writes. Same runtime (tokio
//! multi-thread, one worker per core), same HTTP/1 stack and options as the connector's
//! listener, so the difference is the connector's own work.
//!
//! `baseline serve` prints `listening <addr>` on stdout once bound to `127.0.0.1:0` and
//! serves until killed. Without `serve` (as `cargo test --all-targets` runs bench targets)
//! it exits at once.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Response, header};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const RESPONSE: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8"?>"#,
    r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
    r#"<SOAP-ENV:Body><ns0:getPhoneCallAttributesResponse xmlns:ns0="urn:IciPhoneCallInterface">"#,
    r#"<return><callId>sim-1</callId><userId>B00001</userId><state>held</state>"#,
    r#"<direction>inbound</direction><ani>+4930123456</ani><dnis>20001</dnis>"#,
    r#"<parties><item>+4930123456</item><item>20001</item></parties>"#,
    r#"<queue xsi:nil="true"/><attachedData xsi:nil="true"/></return>"#,
    r#"</ns0:getPhoneCallAttributesResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>"#
);

fn main() {
    if std::env::args().nth(1).as_deref() != Some("serve") {
        eprintln!("baseline: run as `baseline serve` (benches/run.sh does)");
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("listening {}", listener.local_addr().expect("address"));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|request: hyper::Request<hyper::body::Incoming>| async {
                    let _body = request.into_body().collect().await.map(|b| b.to_bytes());
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header(header::CONTENT_TYPE, "text/xml; charset=utf-8")
                            .body(Full::new(Bytes::from_static(RESPONSE.as_bytes())))
                            .expect("static response"),
                    )
                });
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
