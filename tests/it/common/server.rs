//! The real connector, started in-process on 127.0.0.1:0, and a small HTTP/SOAP client
//! that speaks to it over real sockets.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ici_connector::config::Config;
use ici_connector::soap::{Element, parse_request};
use ici_connector::{Listeners, RunError, run};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running connector, in this process.
pub struct TestServer {
    /// The event spool's folder, removed when the server is dropped.
    pub data: std::sync::Arc<tempfile::TempDir>,
    /// The bound addresses of `[[soap.listeners]]` (each moved to port 0), in order.
    pub more_soap: Vec<SocketAddr>,
    endpoints: Endpoints,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), RunError>>>,
}

impl std::ops::Deref for TestServer {
    type Target = Endpoints;
    fn deref(&self) -> &Endpoints {
        &self.endpoints
    }
}

/// The two listeners of a connector (in this process or a child process) and an HTTP
/// client to talk to them.
pub struct Endpoints {
    pub soap: SocketAddr,
    pub admin: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

/// A SOAP answer, parsed.
#[derive(Debug)]
pub struct SoapAnswer {
    pub status: u16,
    pub body: String,
    /// The first element of the Body: `<opResponse>` or `<Fault>`.
    pub element: Element,
}

impl SoapAnswer {
    /// The `return` element of a successful response (panics on a fault).
    pub fn ret(&self) -> &Element {
        assert_eq!(self.status, 200, "expected a response, got {}", self.body);
        self.element
            .child("return")
            .unwrap_or_else(|| panic!("no return in {}", self.body))
    }

    /// Asserts a successful response and returns it.
    pub fn ok(&self) -> &Self {
        assert_eq!(self.status, 200, "expected success, got {}", self.body);
        assert_ne!(self.element.name, "Fault", "{}", self.body);
        self
    }

    /// `(faultcode, faultstring)` of a fault (panics on success).
    pub fn fault(&self) -> (String, String) {
        assert_eq!(
            self.element.name, "Fault",
            "expected a fault, got {}",
            self.body
        );
        assert_eq!(self.status, 500, "{}", self.body);
        let text = |n: &str| {
            self.element
                .child(n)
                .map(|e| e.text.to_string())
                .unwrap_or_default()
        };
        (text("faultcode"), text("faultstring"))
    }
}

/// The text of a direct child.
pub fn text_of(element: &Element, name: &str) -> String {
    element
        .child(name)
        .map(|e| e.text.to_string())
        .unwrap_or_else(|| panic!("no {name} in {element:?}"))
}

/// The item texts of a list child.
pub fn items_of(element: &Element, name: &str) -> Vec<String> {
    element
        .child(name)
        .map(|e| e.children.iter().map(|c| c.text.to_string()).collect())
        .unwrap_or_default()
}

/// A SOAP 1.1 request envelope with `params` (raw XML) inside `op` of `namespace`.
pub fn envelope(namespace: &str, op: &str, params: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body><ns0:{op} xmlns:ns0="{namespace}">{params}</ns0:{op}></SOAP-ENV:Body></SOAP-ENV:Envelope>"#
    )
}

/// A SOAP 1.1 request envelope with SAP's `user` header, as SAP's trace shows it.
pub fn envelope_as(user: &str, interface: &str, op: &str, params: &str) -> String {
    let namespace = ns(interface);
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Header><pre:user xmlns:pre="{namespace}" SOAP-ENV:mustUnderstand="0">{user}</pre:user></SOAP-ENV:Header><SOAP-ENV:Body><ns0:{op} xmlns:ns0="{namespace}">{params}</ns0:{op}></SOAP-ENV:Body></SOAP-ENV:Envelope>"#
    )
}

/// Parameters as XML: `[("userId", "A")]` → `<userId>A</userId>` (values are escaped).
pub fn params(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("<{k}>{}</{k}>", quick_xml::escape::escape(*v)))
        .collect()
}

/// Namespace of an ICI interface by short name (`User` → `urn:IciUserInterface`).
pub fn ns(interface: &str) -> String {
    format!("urn:Ici{interface}Interface")
}

impl TestServer {
    /// Starts the connector with `toml` (may be empty: the defaults, simulator switch);
    /// listeners are moved to port 0 whatever the TOML says.
    pub async fn start(toml: &str) -> TestServer {
        let config = Config::from_toml_str(toml).unwrap_or_else(|e| panic!("test config: {e}"));
        TestServer::start_config(config).await
    }

    pub async fn start_config(config: Config) -> TestServer {
        let data = std::sync::Arc::new(tempfile::tempdir().unwrap());
        TestServer::start_with_data(config, data).await
    }

    /// Starts with the event spool in `data` (a restart test passes the previous one's).
    pub async fn start_with_data(
        mut config: Config,
        data: std::sync::Arc<tempfile::TempDir>,
    ) -> TestServer {
        super::log_to_test_output();
        config.events.data_dir = data.path().to_path_buf();
        config.soap.listen = "127.0.0.1:0".parse().unwrap();
        config.admin.listen = "127.0.0.1:0".parse().unwrap();
        let mut more_soap = Vec::new();
        for listener in &mut config.soap.listeners {
            listener.listen.set_port(0);
            more_soap.push(TcpListener::bind(listener.listen).await.unwrap());
        }
        let listeners = Listeners {
            soap: TcpListener::bind(config.soap.listen).await.unwrap(),
            admin: TcpListener::bind(config.admin.listen).await.unwrap(),
            more_soap,
        };
        let (soap, admin) = listeners.addresses().unwrap();
        let more_soap = listeners.more_soap_addresses().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(config, listeners, async {
            let _ = stopped.await;
        }));
        TestServer {
            data,
            more_soap,
            endpoints: Endpoints::new(soap, admin),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server run");
        }
    }
}

impl Endpoints {
    pub fn new(soap: SocketAddr, admin: SocketAddr) -> Endpoints {
        Endpoints {
            soap,
            admin,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub fn soap_url(&self) -> String {
        format!("http://{}/", self.soap)
    }

    /// Any HTTP request to the SOAP listener (`admin = false`) or the admin listener.
    pub async fn request(
        &self,
        admin: bool,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Answer {
        let addr = if admin { self.admin } else { self.soap };
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder.body(Full::new(body.into())).unwrap();
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .expect("the server answers within 30 s")
            .expect("HTTP request failed");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).expect("UTF-8 body"),
        }
    }

    /// POSTs a SOAP body and parses the answer.
    pub async fn post(&self, body: impl Into<String>) -> SoapAnswer {
        let body: String = body.into();
        let answer = self
            .request(
                false,
                "POST",
                "/",
                &[
                    ("content-type", "text/xml; charset=utf-8"),
                    ("soapaction", "\"\""),
                ],
                body,
            )
            .await;
        let parsed = parse_request(answer.body.as_bytes())
            .unwrap_or_else(|f| panic!("unparsable answer ({f}): {}", answer.body));
        SoapAnswer {
            status: answer.status,
            body: answer.body,
            element: parsed.operation,
        }
    }

    /// Calls `op` of interface `interface` (`User`, `PhoneCall`, ...) with text parameters.
    pub async fn call(&self, interface: &str, op: &str, pairs: &[(&str, &str)]) -> SoapAnswer {
        self.post(envelope(&ns(interface), op, &params(pairs)))
            .await
    }

    /// A simulator control request; returns (status, JSON).
    pub async fn sim(
        &self,
        method: &str,
        path: &str,
        json: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let body = if json.is_null() {
            String::new()
        } else {
            json.to_string()
        };
        let answer = self
            .request(
                true,
                method,
                &format!("/sim{path}"),
                &[("content-type", "application/json")],
                body,
            )
            .await;
        let value = serde_json::from_str(&answer.body).unwrap_or(serde_json::Value::Null);
        (answer.status, value)
    }

    /// Whether the server still answers (GET /healthz on the admin listener).
    pub async fn healthy(&self) -> bool {
        self.request(true, "GET", "/healthz", &[], "").await.status == 200
    }

    /// SAP's login sequence for `user`, each step answered without a fault:
    /// getAttributes, setAddresses(`extension`), subscribeUser(`url`, `app_id`),
    /// setCurrentWorkmode(`workmode`).
    pub async fn log_in(
        &self,
        user: &str,
        extension: &str,
        url: &str,
        app_id: &str,
        workmode: u32,
    ) {
        let as_user = |op: &str, params: String| envelope_as(user, "User", op, &params);
        self.post(as_user("getAttributes", params(&[("userId", user)])))
            .await
            .ok();
        let addresses =
            format!("<userId>{user}</userId><addresses><item>{extension}</item></addresses>");
        self.post(as_user("setAddresses", addresses)).await.ok();
        let subscribe = params(&[("userId", user), ("appURL", url), ("appId", app_id)]);
        self.post(as_user("subscribeUser", subscribe)).await.ok();
        let workmode = workmode.to_string();
        let ready = params(&[("userId", user), ("workmode", &workmode)]);
        self.post(as_user("setCurrentWorkmode", ready)).await.ok();
    }

    /// The admin status snapshot as JSON.
    pub async fn status(&self) -> serde_json::Value {
        let answer = self.request(true, "GET", "/api/status", &[], "").await;
        serde_json::from_str(&answer.body).expect("status JSON")
    }
}
