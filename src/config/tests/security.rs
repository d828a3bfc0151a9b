//! The security tables: `[tls]`, `[auth]` and `[access]`.

use super::*;

#[test]
fn security_tables_default_to_off() {
    let c = Config::default();
    assert!(!c.tls.enabled);
    assert_eq!(c.tls.client_auth, ClientAuth::Off);
    assert!(c.tls.cert.is_none() && c.tls.key.is_none() && c.tls.client_ca.is_none());
    assert!(c.tls.allowed_subjects.is_empty());
    assert_eq!(c.tls.reload_interval, Some(Duration::from_secs(30)));
    assert!(c.tls.outbound.system_roots);
    assert!(c.tls.outbound.ca.is_none() && c.tls.outbound.cert.is_none());
    assert_eq!(c.auth.realm, "ici-connector");
    assert!(c.auth.soap_users.is_empty() && c.auth.admin_users.is_empty());
    assert_eq!(c.auth.failure_burst, 10);
    assert_eq!(c.auth.failure_refill, Duration::from_secs(6));
    assert!(c.access.soap_allow.is_empty() && c.access.admin_allow.is_empty());
    assert_eq!(c.limits.max_xml_text_bytes, 262_144);
    assert_eq!(c.limits.max_xml_attribute_bytes, 4096);
    assert_eq!(c.limits.max_header_bytes, 16_384);
}

const HASH: &str =
    "$argon2id$v=19$m=1024,t=1,p=1$aWNpLXRlc3Qtc2FsdA$Zb0XMpwS0N2Am4m0wTIb5Es1pMO5xkC4kOdkhF3Q8Hs";

#[test]
fn security_tables_are_validated_with_their_keys() {
    let keys = error_keys(
        r#"
[admin]
listen = "0.0.0.0:8081"
[limits]
max_header_bytes = 1024
max_xml_text_bytes = 0
[tls]
enabled = true
client_auth = "require"
allowed_subjects = ["CN=a", "CN=a"]
reload_interval = "0s"
[tls.outbound]
cert = "/x.crt"
[auth]
realm = 'a"b'
failure_burst = 0
[[auth.soap_users]]
name = "a:b"
password_hash = "plain-text-password"
[[auth.soap_users]]
name = "a:b"
password_hash = "$2b$12$abcdefghijklmnopqrstuv"
[access]
soap_allow = ["10.0.0.0/33", "not-an-address"]
"#,
    );
    for key in [
        "admin.listen",
        "limits.max_header_bytes",
        "limits.max_xml_text_bytes",
        "tls.cert",
        "tls.key",
        "tls.client_ca",
        "tls.allowed_subjects[1]",
        "tls.reload_interval",
        "tls.outbound",
        "auth.realm",
        "auth.failure_burst",
        "auth.soap_users[0].name",
        "auth.soap_users[0].password_hash",
        "auth.soap_users[1].password_hash",
        "auth.soap_users[1].name",
        "access.soap_allow[0]",
        "access.soap_allow[1]",
    ] {
        assert!(
            keys.contains(&key.to_string()),
            "{key} missing from {keys:?}"
        );
    }
    // Settings without tls.enabled are a mistake worth naming.
    assert_eq!(
        error_keys("[tls]\ncert = \"/a.crt\"\nkey = \"/a.key\""),
        ["tls.enabled"]
    );
}

#[test]
fn admin_off_loopback_is_fine_with_auth_or_an_allow_list() {
    let users = format!(
        "[admin]\nlisten = \"0.0.0.0:8081\"\n[[auth.admin_users]]\nname = \"ops\"\npassword_hash = \"{HASH}\""
    );
    ok(&users);
    ok("[admin]\nlisten = \"0.0.0.0:8081\"\n[access]\nadmin_allow = [\"10.0.0.0/8\"]");
    ok("[admin]\nlisten = \"[::1]:8081\"");
}

#[test]
fn an_allow_list_that_admits_every_address_does_not_protect_the_admin_listener() {
    for list in [
        r#"["0.0.0.0/0"]"#,
        r#"["::/0"]"#,
        r#"["10.0.0.0/8", "0.0.0.0/0"]"#,
        r#"["0.0.0.0/1", "10.0.0.0/8", "128.0.0.0/1"]"#,
        r#"["::/1", "8000::/1"]"#,
        r#"["0.0.0.0"]"#,
    ] {
        let doc = format!("[admin]\nlisten = \"0.0.0.0:8081\"\n[access]\nadmin_allow = {list}");
        match Config::from_toml_str(&doc) {
            Ok(_) if list == r#"["0.0.0.0"]"# => {} // one address (0.0.0.0/32), not all
            Ok(_) => panic!("{list} accepted as protection"),
            Err(errs) => {
                let err = errs
                    .iter()
                    .find(|e| e.key == "access.admin_allow")
                    .unwrap_or_else(|| panic!("{list}: {errs}"));
                assert!(err.message.contains("every address"), "{err}");
            }
        }
    }
    // With admin users the allow-list is not what protects it; on loopback it is harmless.
    ok(&format!(
        "[admin]\nlisten = \"0.0.0.0:8081\"\n[[auth.admin_users]]\nname = \"ops\"\npassword_hash = \"{HASH}\"\n[access]\nadmin_allow = [\"0.0.0.0/0\"]"
    ));
    ok("[access]\nadmin_allow = [\"0.0.0.0/0\"]");
}

#[test]
fn soap_beyond_loopback_without_protection_is_warned_about() {
    let warned = |doc: &str| -> Vec<String> {
        // Only this check's key: an empty `[events] allow` is warned about on its own.
        let config = ok(doc);
        let keys = config.warnings().into_iter().map(|w| w.key);
        keys.filter(|k| k == "soap.listen").collect()
    };
    let open = "[soap]\nlisten = \"0.0.0.0:8080\"\n";
    assert_eq!(warned(open), ["soap.listen"]);
    let warnings = ok(open).warnings();
    let message = &warnings
        .iter()
        .find(|w| w.key == "soap.listen")
        .unwrap()
        .message;
    assert!(
        message.contains("auth.soap_users") && message.contains("access.soap_allow"),
        "{message}"
    );
    assert_eq!(
        warned(&format!("{open}[access]\nsoap_allow = [\"::/0\"]")),
        ["soap.listen"]
    );
    assert_eq!(
        warned(&format!(
            "{open}[tls]\nenabled = true\ncert = \"/c.crt\"\nkey = \"/c.key\"\nclient_auth = \"optional\"\nclient_ca = \"/ca.crt\""
        )),
        ["soap.listen"],
        "TLS that lets clients in without a certificate protects nothing"
    );
    // Protected, or only on loopback: nothing to say.
    assert!(warned("").is_empty());
    assert!(warned("[soap]\nlisten = \"[::1]:8080\"").is_empty());
    assert!(warned(&format!("{open}[access]\nsoap_allow = [\"10.1.0.0/16\"]")).is_empty());
    assert!(
        warned(&format!(
            "{open}[[auth.soap_users]]\nname = \"SAPICI\"\npassword_hash = \"{HASH}\""
        ))
        .is_empty()
    );
    assert!(
        warned(&format!(
            "{open}[tls]\nenabled = true\ncert = \"/c.crt\"\nkey = \"/c.key\"\nclient_auth = \"require\"\nclient_ca = \"/ca.crt\""
        ))
        .is_empty()
    );
}

#[test]
fn password_hashes_are_masked_everywhere() {
    let c = ok(&format!(
        "[[auth.soap_users]]\nname = \"SAPICI\"\npassword_hash = \"{HASH}\""
    ));
    assert_eq!(c.auth.soap_users[0].password_hash.expose(), HASH);
    let debug = format!("{c:?}");
    let effective = c.effective_toml();
    for rendered in [&debug, &effective] {
        assert!(!rendered.contains("argon2id"), "{rendered}");
        assert!(rendered.contains(MASK));
    }
    // A bad hash's error message never repeats the value.
    let errs = errors("[[auth.soap_users]]\nname = \"SAPICI\"\npassword_hash = \"hunter2\"");
    assert!(!errs.to_string().contains("hunter2"), "{errs}");
}
