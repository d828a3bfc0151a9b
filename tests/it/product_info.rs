//! exchangeProductInformation: SAP's ICI version is recorded and checked, ours is answered.

use crate::common::server::{TestServer, text_of};

/// The value of the first `/metrics` sample line that starts with `prefix`, 0 if none.
fn sample(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn sap_ici_version_is_recorded_and_an_unknown_major_is_refused() {
    let server = TestServer::start("").await;
    let exchanges = r#"ici_sap_product_information_total{ici_version="3.00"}"#;
    let before = sample(
        &server.request(true, "GET", "/metrics", &[], "").await.body,
        exchanges,
    );

    // SAP CRM 7.0 sends 3.00; we speak 3.06 (same major version): answered with ours.
    let info = server
        .call(
            "System",
            "exchangeProductInformation",
            &[
                ("productName", "SAP CRM"),
                ("productVersion", "7.0"),
                ("iciVersion", "3.00"),
            ],
        )
        .await;
    info.ok();
    assert_eq!(text_of(info.ret(), "iciVersion"), "3.06");
    let metrics = server.request(true, "GET", "/metrics", &[], "").await.body;
    assert!(
        sample(&metrics, exchanges) >= before + 1.0,
        "SAP's version is recorded: {metrics}"
    );

    // No version at all (older BCB releases send none): answered, nothing to refuse.
    server
        .call("System", "exchangeProductInformation", &[])
        .await
        .ok();

    // A major version we do not speak: a Client fault that names both versions.
    let refused = server
        .call(
            "System",
            "exchangeProductInformation",
            &[("iciVersion", "4.00")],
        )
        .await;
    assert_eq!(
        refused.fault(),
        ("SOAP-ENV:Client".into(), "unsupported ICI version".into())
    );
    assert!(
        refused.body.contains("4.00") && refused.body.contains("3.06"),
        "{}",
        refused.body
    );

    // Not a version at all.
    let garbage = server
        .call(
            "System",
            "exchangeProductInformation",
            &[("iciVersion", "three")],
        )
        .await;
    assert_eq!(
        garbage.fault(),
        ("SOAP-ENV:Client".into(), "invalid ICI version".into())
    );
    server.stop().await;
}
