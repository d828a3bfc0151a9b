//! Basic authentication: the 401 SAP reads, per-peer throttling, what a verification
//! costs (Argon2 time and memory, parallel slots), and the admin listener's own users.

use ici_connector::soap::parse_request;

use super::*;
use crate::common::server::TestServer;

#[tokio::test]
async fn basic_auth_on_the_soap_listener() {
    let server = TestServer::start(&auth_toml("")).await;
    let good = basic("SAPICI", "sap-secret");

    // No credentials: 401, a challenge, and a SOAP fault SAP can read.
    let answer = raw_from(server.soap, LOCAL, &soap_post(&product_info(), None)).await;
    assert_eq!(status_of(&answer), 401, "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"ici-connector\""),
        "{answer}"
    );
    let fault = parse_request(body_of(&answer).as_bytes()).unwrap();
    assert_eq!(fault.operation.name, "Fault");
    assert_eq!(
        fault.operation.child("faultcode").unwrap().text,
        "SOAP-ENV:Client"
    );

    // Right credentials, twice (the second is served from the verified cache).
    for _ in 0..2 {
        let answer = raw_from(server.soap, LOCAL, &soap_post(&product_info(), Some(&good))).await;
        assert_eq!(status_of(&answer), 200, "{answer}");
    }
    // The WSDL is behind auth too.
    let answer = server.request(false, "GET", "/?wsdl", &[], "").await;
    assert_eq!(answer.status, 401);
    let answer = server
        .request(false, "GET", "/?wsdl", &[("authorization", &good)], "")
        .await;
    assert_eq!(answer.status, 200);

    // Wrong password, unknown user, garbage: 401 each, then the peer is throttled (429)
    // even with the right password, while another peer address is not.
    for wrong in [
        basic("SAPICI", "guess"),
        basic("nobody", "sap-secret"),
        basic("SAPICI", ""),
    ] {
        let answer = raw_from(
            server.soap,
            LOCAL,
            &soap_post(&product_info(), Some(&wrong)),
        )
        .await;
        assert_eq!(status_of(&answer), 401, "{answer}");
    }
    let answer = raw_from(server.soap, LOCAL, &soap_post(&product_info(), Some(&good))).await;
    assert_eq!(status_of(&answer), 429, "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after:"),
        "{answer}"
    );
    let answer = raw_from(server.soap, OTHER, &soap_post(&product_info(), Some(&good))).await;
    assert_eq!(status_of(&answer), 200, "{answer}");

    // Counted; visible to the admin with the admin's own credentials.
    let status = server
        .request(
            true,
            "GET",
            "/api/status",
            &[("authorization", &basic("ops", "ops-pw"))],
            "",
        )
        .await;
    assert_eq!(status.status, 200, "{}", status.body);
    let status: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    assert_eq!(status["security"]["auth_failures"], 3);
    assert_eq!(status["security"]["auth_throttled"], 1);
    assert!(status["security"]["auth_missing"].as_u64().unwrap() >= 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_passwords_from_one_address_verify_at_most_the_burst() {
    let dir = tempfile::tempdir().unwrap();
    let child = Process::start_in(
        dir.path(),
        // Slots for all: only the failure limit stands between them and Argon2.
        &soap_auth_toml(
            &hash("sap-secret"),
            "failure_burst = 10\nfailure_refill = \"1h\"\nmax_parallel_verifications = 100",
        ),
    );
    let server = &child.endpoints;
    let wrong = soap_post(&product_info(), Some(&basic("SAPICI", "guess")));
    let answers = parallel_from(server.soap, &[LOCAL; 100], &wrong).await;
    for answer in &answers {
        assert!(
            [401, 429].contains(&status_of(answer)),
            "only refusals expected: {answer}"
        );
    }
    let security = server.status().await["security"].clone();
    let verified = security["auth_verifications"].as_u64().unwrap();
    eprintln!(
        "100 parallel wrong passwords: {verified} Argon2 verifications, {} x 401, {} x 429",
        count_status(&answers, 401),
        count_status(&answers, 429),
    );
    assert!(
        (1..=10).contains(&verified),
        "{verified} verifications for a burst of 10"
    );
    assert_eq!(count_status(&answers, 401), verified);
    assert_eq!(security["auth_failures"], verified);
    child.stop();
}

#[tokio::test]
async fn unknown_users_cost_an_argon2_verification_like_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let child = Process::start_in(
        dir.path(),
        &soap_auth_toml(
            &hash("sap-secret"),
            "failure_burst = 10\nfailure_refill = \"1h\"",
        ),
    );
    let server = &child.endpoints;
    let verifications = async || {
        server.status().await["security"]["auth_verifications"]
            .as_u64()
            .unwrap()
    };
    let cases = [
        ("SAPICI", "guess", 401, 1),
        ("nobody", "guess", 401, 2),
        ("nobody", "sap-secret", 401, 3),
        ("SAPICI", "sap-secret", 200, 4),
        // A remembered password needs no Argon2 run.
        ("SAPICI", "sap-secret", 200, 4),
    ];
    for (user, password, status, expected) in cases {
        let request = soap_post(&product_info(), Some(&basic(user, password)));
        let answer = raw_from(server.soap, LOCAL, &request).await;
        assert_eq!(status_of(&answer), status, "{user}: {answer}");
        assert_eq!(verifications().await, expected, "after {user} / {password}");
    }
    child.stop();
}

#[tokio::test]
async fn retry_after_is_the_time_to_the_next_allowed_attempt() {
    const REFILL_SECS: u64 = 45;
    let dir = tempfile::tempdir().unwrap();
    let child = Process::start_in(
        dir.path(),
        &soap_auth_toml(
            &hash("sap-secret"),
            &format!("failure_burst = 1\nfailure_refill = \"{REFILL_SECS}s\""),
        ),
    );
    let server = &child.endpoints;
    let wrong = soap_post(&product_info(), Some(&basic("SAPICI", "guess")));
    let failed_at = std::time::Instant::now();
    assert_eq!(status_of(&raw_from(server.soap, LOCAL, &wrong).await), 401);
    let answer = raw_from(server.soap, LOCAL, &wrong).await;
    assert_eq!(status_of(&answer), 429, "{answer}");
    let retry_after: u64 = header_of(&answer, "retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    let earliest = REFILL_SECS.saturating_sub(failed_at.elapsed().as_secs() + 1);
    assert!(
        (earliest..=REFILL_SECS).contains(&retry_after),
        "Retry-After {retry_after}, the next attempt is allowed in {earliest}..={REFILL_SECS} s"
    );
    child.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifications_beyond_the_parallel_limit_get_503_without_argon2() {
    // A hash slow enough (at least 0.1 s even in a release build) that 16 verifications
    // one at a time take longer than the second a request waits for a slot; small in
    // memory.
    let slow_hash = {
        use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(256, 512, 1, None).unwrap(),
        )
        .hash_password_with_salt(b"sap-secret", b"ici-test-salt")
        .unwrap()
        .to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let child = Process::start_in(
        dir.path(),
        &soap_auth_toml(
            &slow_hash,
            "failure_burst = 10\nmax_parallel_verifications = 1",
        ),
    );
    let server = &child.endpoints;
    // Each from its own address, so the per-peer failure limit plays no part.
    let peers: Vec<IpAddr> = (10..26)
        .map(|i| IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, i)))
        .collect();
    let wrong = soap_post(&product_info(), Some(&basic("SAPICI", "guess")));
    let answers = parallel_from(server.soap, &peers, &wrong).await;
    let (denied, busy) = (count_status(&answers, 401), count_status(&answers, 503));
    assert_eq!(denied + busy, peers.len() as u64, "{answers:#?}");
    assert!(busy > 0, "no request was refused for want of a slot");
    for answer in answers.iter().filter(|a| status_of(a) == 503) {
        assert_eq!(header_of(answer, "retry-after"), Some("1"), "{answer}");
        assert!(body_of(answer).contains("Fault"), "a SOAP fault: {answer}");
    }
    let security = server.status().await["security"].clone();
    assert_eq!(security["auth_verifications"], denied);
    assert_eq!(security["auth_busy"], busy);
    child.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_first_requests_with_the_right_password_share_one_verification() {
    // SAP's first requests after a start: many at once, one user, one password.
    let dir = tempfile::tempdir().unwrap();
    let child = Process::start_in(
        dir.path(),
        &soap_auth_toml(&hash("sap-secret"), "max_parallel_verifications = 1"),
    );
    let server = &child.endpoints;
    let good = soap_post(&product_info(), Some(&basic("SAPICI", "sap-secret")));
    let answers = parallel_from(server.soap, &[LOCAL; 20], &good).await;
    assert_eq!(count_status(&answers, 200), 20, "{answers:#?}");
    let security = server.status().await["security"].clone();
    assert_eq!(security["auth_verifications"], 1);
    child.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_flood_leaves_the_peak_memory_bounded() {
    use argon2::{Argon2, PasswordHasher};
    // The parameters `hash-password` uses (argon2's defaults): 19 MiB per verification.
    let argon = Argon2::default();
    let hash = argon
        .hash_password_with_salt(b"sap-secret", b"ici-test-salt")
        .unwrap()
        .to_string();
    let per_verification_kib = u64::from(argon.params().m_cost());
    let dir = tempfile::tempdir().unwrap();
    let process = Process::start_in(
        dir.path(),
        &soap_auth_toml(&hash, "failure_burst = 10\nfailure_refill = \"1h\""),
    );
    let pid = process.child.id();
    let api = &process.endpoints;
    let good = soap_post(&product_info(), Some(&basic("SAPICI", "sap-secret")));
    assert_eq!(status_of(&raw_from(api.soap, OTHER, &good).await), 200);
    let before = proc_status_kib(pid, "VmHWM");
    let wrong = soap_post(&product_info(), Some(&basic("SAPICI", "guess")));
    let answers = parallel_from(api.soap, &[LOCAL; 100], &wrong).await;
    let after = proc_status_kib(pid, "VmHWM");
    let verified = api.status().await["security"]["auth_verifications"]
        .as_u64()
        .unwrap();
    eprintln!(
        "peak RSS before {} MiB, after 100 parallel wrong passwords {} MiB \
         ({verified} Argon2 verifications in all; {} x 401, {} x 429, {} x 503)",
        before / 1024,
        after / 1024,
        count_status(&answers, 401),
        count_status(&answers, 429),
        count_status(&answers, 503)
    );
    process.stop();
    // At most one verification per core runs at a time; allow one more, and slack for the
    // connections themselves.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let bound = (cores + 1) * per_verification_kib + 32 * 1024;
    assert!(
        after.saturating_sub(before) < bound,
        "peak RSS grew by {} MiB (bound {} MiB)",
        after.saturating_sub(before) / 1024,
        bound / 1024
    );
    assert!(verified <= 1 + 10, "{verified} verifications");
}

#[tokio::test]
async fn admin_listener_has_its_own_auth_but_probes_stay_open() {
    let server = TestServer::start(&auth_toml("")).await;
    assert!(server.healthy().await, "/healthz needs no credentials");
    assert_eq!(
        server.request(true, "GET", "/readyz", &[], "").await.status,
        200
    );
    for path in ["/api/status", "/sim/calls"] {
        let answer = server.request(true, "GET", path, &[], "").await;
        assert_eq!(answer.status, 401, "{path}");
        assert!(answer.headers.contains_key("www-authenticate"));
        // SOAP credentials are not admin credentials.
        let answer = server
            .request(
                true,
                "GET",
                path,
                &[("authorization", &basic("SAPICI", "sap-secret"))],
                "",
            )
            .await;
        assert_eq!(answer.status, 401, "{path}");
    }
    let answer = server
        .request(
            true,
            "GET",
            "/api/status",
            &[("authorization", &basic("ops", "ops-pw"))],
            "",
        )
        .await;
    assert_eq!(answer.status, 200);
    server.stop().await;
}
