//! The live status page (`GET /status` on the admin listener): one HTML document with its
//! style and script inline (no external assets: it works on a closed network). The script
//! polls `/api/status` and `/api/problems` every two seconds and redraws (agents,
//! subscriptions, the latest refused TLS handshakes, recent problems); every value is set
//! through `textContent`, so nothing from SAP, the switch or a client certificate can inject
//! markup.

/// The page (`status.html` beside this file).
pub const HTML: &str = include_str!("status.html");
