//! The binary as an admin uses it: --version, check-config, and a real process that is
//! started, answers, and stops cleanly on SIGTERM.

use crate::common;

use std::process::{Command, Stdio};

use common::process::Process;

const BIN: &str = env!("CARGO_BIN_EXE_ici-connector");

fn root(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn version() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("ici-connector {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_masked() {
    let out = Command::new(BIN)
        .args(["check-config", &root("config/examples/asterisk.toml")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("kind = \"asterisk\""), "{stdout}");
    assert!(stdout.contains("secret = \"********\""), "{stdout}");
    let example = std::fs::read_to_string(root("config/examples/asterisk.toml")).unwrap();
    let secret = example
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret = "))
        .expect("the example has a secret")
        .trim_matches('"');
    assert!(!stdout.contains(secret), "the secret leaked");
}

#[test]
fn check_config_never_echoes_a_secret_of_the_wrong_type() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("numeric-secret.toml");
    for secret in [
        "9876543210",
        "98765.4321",
        "true",
        "[98765]",
        "{ value = 98765 }",
    ] {
        std::fs::write(
            &file,
            format!(
                "[switch]\nkind = \"asterisk\"\n[switch.asterisk]\nhost = \"pbx\"\n\
                 username = \"ici\"\nsecret = {secret}\n"
            ),
        )
        .unwrap();
        let out = Command::new(BIN)
            .arg("check-config")
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{secret}");
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(shown.contains("switch.asterisk.secret"), "{shown}");
        for leak in ["98765", "4321", "true"] {
            assert!(!shown.contains(leak), "the secret leaked: {shown}");
        }
    }
}

#[test]
fn check_config_refuses_an_allow_list_of_everyone_and_warns_about_open_soap() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("open.toml");
    let check = |toml: &str| {
        std::fs::write(&file, toml).unwrap();
        let out = Command::new(BIN)
            .arg("check-config")
            .arg(&file)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, stderr) =
        check("[admin]\nlisten = \"0.0.0.0:8081\"\n[access]\nadmin_allow = [\"0.0.0.0/0\"]\n");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("access.admin_allow"), "{stderr}");
    assert!(stderr.contains("every address"), "{stderr}");

    let (code, stderr) = check("[soap]\nlisten = \"0.0.0.0:8080\"\n");
    assert_eq!(code, Some(0), "a warning does not fail the check: {stderr}");
    let warning = stderr
        .lines()
        .find(|l| l.contains("warning"))
        .unwrap_or_else(|| panic!("no warning in {stderr}"));
    assert!(warning.contains("soap.listen"), "{warning}");

    let (code, stderr) = check("[soap]\nlisten = \"127.0.0.1:8080\"\n");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn hash_password_prints_a_hash_the_server_accepts() {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("$argon2"), "{hash}");
    use argon2::{PasswordHash, PasswordVerifier};
    let parsed = PasswordHash::new(&hash).unwrap();
    assert!(
        argon2::Argon2::default()
            .verify_password(b"s3cret", &parsed)
            .is_ok()
    );
    assert!(
        argon2::Argon2::default()
            .verify_password(b"other", &parsed)
            .is_err()
    );
}

#[test]
fn check_config_names_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[agents]\nmax_interactions = 7\n").unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("agents.max_interactions"), "{stderr}");

    std::fs::write(&file, "[soap]\nlisen = \"x\"\n").unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("soap.lisen"));
}

#[test]
fn check_config_warns_when_soap_is_open_and_events_may_go_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("open.toml");
    let check = |toml: &str| {
        std::fs::write(&file, toml).unwrap();
        let out = Command::new(BIN)
            .arg("check-config")
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "a warning is not an error");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = check("[soap]\nlisten = \"0.0.0.0:8080\"\n");
    assert!(stderr.contains("warning: events.allow:"), "{stderr}");
    let stderr = check("[soap]\nlisten = \"0.0.0.0:8080\"\n[events]\nallow = [\"10.0.0.0/8\"]\n");
    assert!(!stderr.contains("events.allow"), "{stderr}");
    let stderr = check("[soap]\nlisten = \"127.0.0.1:8080\"\n");
    assert!(!stderr.contains("events.allow"), "{stderr}");
}

#[test]
fn runs_answers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &file,
        format!(
            "[soap]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[logging]\nlevel = \"info\"\n[events]\ndata_dir = {:?}\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    let process = Process::start(&file);
    let mut stream = std::net::TcpStream::connect(process.endpoints.soap).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    use std::io::{Read, Write};
    let body = std::fs::read(root("tests/fixtures/soap/vendor-trace.http")).unwrap();
    stream.write_all(&body).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");

    process.signal("TERM");
    let rest = process.remaining_lines();
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
    process.stop_after_signal();
}

/// Runs scripts/debian-mirror.sh against an apt folder made of `files` (name, content).
fn debian_mirror(files: &[(&str, &str)]) -> String {
    let apt = tempfile::tempdir().unwrap();
    std::fs::create_dir(apt.path().join("sources.list.d")).unwrap();
    for (name, content) in files {
        std::fs::write(apt.path().join(name), content).unwrap();
    }
    let out = Command::new("bash")
        .arg(root("scripts/debian-mirror.sh"))
        .arg(apt.path())
        .env_remove("ICI_DEBIAN_MIRROR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A fresh Debian 12 image comments a snapshot URL above `URIs:`; debootstrap must get the
/// live mirror, never the frozen snapshot (it made the package and Asterisk tests fail on
/// every machine without a cached root).
#[test]
fn debian_mirror_skips_comments_and_security_mirrors() {
    let deb822 = "Types: deb\n\
                  # http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
                  URIs: http://mirror.example/debian\n\
                  Suites: bookworm bookworm-updates\n\n\
                  Types: deb\n\
                  # http://snapshot.debian.org/archive/debian-security/20250520T000000Z\n\
                  URIs: http://mirror.example/debian-security\n\
                  Suites: bookworm-security\n";
    assert_eq!(
        debian_mirror(&[("sources.list.d/debian.sources", deb822)]),
        "http://mirror.example/debian"
    );
    let one_line = "# deb http://snapshot.debian.org/archive/debian/20250520T000000Z bookworm main\n\
                    deb-src http://src.example/debian bookworm main\n\
                    deb [arch=amd64] http://list.example/debian bookworm main\n";
    assert_eq!(
        debian_mirror(&[("sources.list", one_line)]),
        "http://list.example/debian"
    );
    // Disabled files and other vendors' repositories are not Debian mirrors.
    let other = "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n";
    assert_eq!(
        debian_mirror(&[
            ("sources.list.d/nodesource.sources", other),
            ("sources.list.d/debian.sources.disabled", deb822),
        ]),
        "http://deb.debian.org/debian"
    );
}
