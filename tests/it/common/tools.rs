//! External tools the interop tests run (installed by scripts/test.sh). Missing outside CI:
//! the test says SKIPPED and why. Missing in CI (`CI` set): the test fails.

use std::path::PathBuf;

fn tool(env: &str, fallback: &str) -> Option<PathBuf> {
    let found = std::env::var_os(env)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(fallback))
                    .find(|p| p.is_file())
            })
        });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{fallback} is required in CI: run the tests through scripts/test.sh"
        );
        eprintln!("SKIPPED: {fallback} not found ({env} unset); scripts/test.sh installs it");
    }
    found
}

/// xmllint (Debian libxml2-utils).
pub fn xmllint() -> Option<PathBuf> {
    tool("ICI_XMLLINT", "xmllint")
}

/// The Python of the venv with zeep and suds-community.
pub fn python() -> Option<PathBuf> {
    std::env::var_os("ICI_PYTHON")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            assert!(
                std::env::var_os("CI").is_none(),
                "ICI_PYTHON is required in CI: run the tests through scripts/test.sh"
            );
            eprintln!("SKIPPED: ICI_PYTHON not set; scripts/test.sh sets up the venv");
            None
        })
}

/// Validates SOAP envelopes against the SOAP 1.1 envelope schema with xmllint.
pub fn validate_envelopes(documents: &[String]) {
    let Some(xmllint) = xmllint() else { return };
    assert!(!documents.is_empty(), "nothing to validate");
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, doc) in documents.iter().enumerate() {
        let path = dir.path().join(format!("message-{i}.xml"));
        std::fs::write(&path, doc).unwrap();
        files.push(path);
    }
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/schemas/soap-envelope.xsd"
    );
    let output = std::process::Command::new(xmllint)
        .args(["--noout", "--nonet", "--schema", schema])
        .args(&files)
        .output()
        .expect("running xmllint");
    assert!(
        output.status.success(),
        "xmllint refused our messages:\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        documents.join("\n---\n")
    );
}

/// A program Debian installs under /usr/sbin (not on every user's PATH).
fn sbin_tool(env: &str, name: &str) -> Option<PathBuf> {
    let sbin = PathBuf::from("/usr/sbin").join(name);
    if std::env::var_os(env).is_none() && sbin.is_file() {
        return Some(sbin);
    }
    tool(env, name)
}

/// nats-server (Debian nats-server), for the high-availability tests.
pub fn nats_server() -> Option<PathBuf> {
    sbin_tool("ICI_NATS_SERVER", "nats-server")
}

/// haproxy (Debian haproxy), for the high-availability tests.
pub fn haproxy() -> Option<PathBuf> {
    sbin_tool("ICI_HAPROXY", "haproxy")
}
