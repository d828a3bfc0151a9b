//! Real TLS clients against the listener: `openssl s_client` and `curl`.

use std::process::Stdio;

use super::*;
use crate::common::server::TestServer;

/// Runs a command to completion with no stdin, returning (success, stdout + stderr).
async fn run_tool(program: &str, args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program} not runnable: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn have(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
        || std::process::Command::new(program)
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
}

#[tokio::test]
async fn openssl_s_client_versions_and_client_certificates() {
    if !have("openssl") {
        eprintln!("openssl not installed; skipped");
        return;
    }
    let pki = Pki::new();
    let server = TestServer::start(&pki.toml("require", "")).await;
    let (cert, key) = pki.write_leaf("client", &pki.ca.client("sapprd", false));
    let connect = server.soap.to_string();
    let ca = pki.path("ca.crt").display().to_string();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let base = [
        "s_client",
        "-connect",
        connect.as_str(),
        "-servername",
        "localhost",
        "-CAfile",
        ca.as_str(),
        "-verify_return_error",
    ];
    let with_cert = |extra: &[&'static str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(["-cert", cert.as_str(), "-key", key.as_str()]);
        args.extend(extra);
        args
    };

    for version in ["-tls1_2", "-tls1_3"] {
        let (ok, out) = run_tool("openssl", &with_cert(&[version])).await;
        assert!(ok, "{version} with a client certificate: {out}");
        assert!(out.contains("Verify return code: 0"), "{out}");
    }
    // TLS 1.1 (and older) is refused by the server; SECLEVEL=0 lets OpenSSL offer it.
    let (ok, out) = run_tool(
        "openssl",
        &with_cert(&["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]),
    )
    .await;
    assert!(!ok, "TLS 1.1 must be refused: {out}");
    assert!(
        out.contains("Cipher is (NONE)") && out.contains("alert"),
        "{out}"
    );

    // Without a client certificate the server ends the handshake (TLS 1.3 reports it on the
    // first read, so send a request and expect no HTTP answer).
    let mut args: Vec<&str> = base.to_vec();
    args.extend(["-tls1_2"]);
    let (ok, out) = run_tool("openssl", &args).await;
    assert!(!ok, "no client certificate must fail: {out}");
    assert!(server.healthy().await);
    server.stop().await;
}

#[tokio::test]
async fn curl_with_and_without_a_client_certificate() {
    if !have("curl") {
        eprintln!("curl not installed; skipped");
        return;
    }
    let pki = Pki::new();
    let server = TestServer::start(&pki.toml("require", "")).await;
    let (cert, key) = pki.write_leaf("client", &pki.ca.client("sapprd", false));
    let body = envelope(&ns("System"), "exchangeProductInformation", "");
    let url = format!("https://localhost:{}/", server.soap.port());
    let resolve = format!("localhost:{}:127.0.0.1", server.soap.port());
    let ca = pki.path("ca.crt").display().to_string();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let common = [
        "-sS",
        "--max-time",
        "10",
        "--resolve",
        resolve.as_str(),
        "--cacert",
        ca.as_str(),
        "-H",
        "Content-Type: text/xml; charset=utf-8",
        "--data-binary",
        body.as_str(),
    ];

    let mut args = common.to_vec();
    args.extend(["--cert", cert.as_str(), "--key", key.as_str(), url.as_str()]);
    let (ok, out) = run_tool("curl", &args).await;
    assert!(ok, "{out}");
    assert!(out.contains("exchangeProductInformationResponse"), "{out}");

    let mut args = common.to_vec();
    args.push(url.as_str());
    let (ok, out) = run_tool("curl", &args).await;
    assert!(!ok, "no client certificate must fail: {out}");

    let mut args = common.to_vec();
    args.extend(["--tls-max", "1.1", "--tlsv1.1"]);
    args.extend(["--cert", cert.as_str(), "--key", key.as_str(), url.as_str()]);
    let (ok, out) = run_tool("curl", &args).await;
    assert!(!ok, "TLS 1.1 must fail: {out}");

    let plain = format!("http://127.0.0.1:{}/", server.soap.port());
    let (_, out) = run_tool(
        "curl",
        &["-sS", "--max-time", "10", "-i", "-d", "x", plain.as_str()],
    )
    .await;
    assert!(out.contains("400 Bad Request"), "{out}");
    assert!(server.healthy().await);
    server.stop().await;
}
