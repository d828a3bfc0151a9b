//! The machinery around a connector pair, as real child processes on loopback: a
//! three-node NATS JetStream cluster and HAProxy, both configured from the files shipped in
//! `packaging/` with test addresses put in. Every process is killed when its value is
//! dropped, and its data lives in the test's temporary folder.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PACKAGING: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging");

/// How long a NATS node or HAProxy may take to come up.
const START_WITHIN: Duration = Duration::from_secs(30);

/// A port the OS hands out now, never one it handed to this test process before (the
/// listener is closed again: the child binds it, so another process may take it first;
/// the callers start again on new ports when their child cannot bind).
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<BTreeSet<u16>> = std::sync::Mutex::new(BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if HANDED_OUT.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// How often a child that could not bind its ports is started again on new ones.
const START_ATTEMPTS: usize = 3;

/// A child process killed when dropped.
pub struct Daemon {
    name: String,
    child: Child,
}

impl Daemon {
    /// Starts `command`, its output in `log`.
    fn spawn(name: &str, command: &mut Command, log: &Path) -> Daemon {
        let file = std::fs::File::create(log).unwrap();
        let child = command
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Daemon {
            name: name.into(),
            child,
        }
    }

    /// Whether it has ended (could not bind its port, say).
    fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, and waits for the exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            eprintln!("stopping {}", self.name);
            self.kill();
        }
    }
}

/// `GET path` over HTTP/1.0: the status and the body, `None` when nothing answers.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer.split_whitespace().nth(1)?.parse().ok()?;
        let body = answer
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

/// `POST /` of a SOAP body over HTTP/1.0: the status, `None` when nothing answers.
pub async fn soap_status(addr: SocketAddr, body: &str) -> Option<u16> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!(
            "POST / HTTP/1.0\r\nHost: {addr}\r\nContent-Type: text/xml; charset=utf-8\r\n\
             SOAPAction: \"\"\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        String::from_utf8_lossy(&answer)
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

/// A configuration file without its comment lines.
fn uncommented(config: &str) -> String {
    config
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One NATS node.
pub struct NatsNode {
    pub client: u16,
    monitor: u16,
    daemon: Option<Daemon>,
}

/// Three `nats-server` processes clustered with JetStream, from
/// `packaging/nats-server.conf`.
pub struct NatsCluster {
    pub nodes: Vec<NatsNode>,
}

impl NatsCluster {
    pub async fn start(binary: &Path, dir: &Path) -> NatsCluster {
        for attempt in 1..=START_ATTEMPTS {
            if let Some(cluster) = NatsCluster::try_start(binary, dir, attempt).await {
                return cluster;
            }
            eprintln!("a NATS node could not bind its ports (attempt {attempt}); new ports");
        }
        panic!("the NATS cluster did not start; logs in {}", dir.display())
    }

    /// `None` when a node ended before it was ready (a port taken meanwhile).
    async fn try_start(binary: &Path, dir: &Path, attempt: usize) -> Option<NatsCluster> {
        let template = std::fs::read_to_string(Path::new(PACKAGING).join("nats-server.conf"))
            .expect("packaging/nats-server.conf");
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let (client, monitor) = (free_port(), free_port());
            let name = format!("nats-{}", i + 1);
            let store = dir.join(format!("{name}-{attempt}"));
            let mut config = template
                .replace("nats-1", &name)
                .replace("0.0.0.0:4222", &format!("127.0.0.1:{client}"))
                .replace("127.0.0.1:8222", &format!("127.0.0.1:{monitor}"))
                .replace("/var/lib/nats/jetstream", &store.display().to_string())
                .replace("0.0.0.0:6222", &format!("127.0.0.1:{route}"));
            for (k, port) in routes.iter().enumerate() {
                config = config.replace(
                    &format!("10.0.0.2{}:6222", k + 1),
                    &format!("127.0.0.1:{port}"),
                );
            }
            assert!(
                !uncommented(&config).contains("10.0.0."),
                "every address replaced:\n{config}"
            );
            let file = dir.join(format!("{name}.conf"));
            std::fs::write(&file, config).unwrap();
            let daemon = Daemon::spawn(
                &format!("nats-server {}", i + 1),
                Command::new(binary).arg("-c").arg(&file),
                &dir.join(format!("{name}-{attempt}.log")),
            );
            nodes.push(NatsNode {
                client,
                monitor,
                daemon: Some(daemon),
            });
        }
        let mut cluster = NatsCluster { nodes };
        let deadline = tokio::time::Instant::now() + START_WITHIN;
        for i in 0..cluster.nodes.len() {
            let monitor: SocketAddr = ([127, 0, 0, 1], cluster.nodes[i].monitor).into();
            loop {
                if let Some((200, _)) = http_get(monitor, "/healthz").await {
                    break;
                }
                if cluster.nodes[i].daemon.as_mut().is_some_and(Daemon::exited) {
                    return None;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "NATS node {} not ready within {START_WITHIN:?}; logs in {}",
                    i + 1,
                    dir.display()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Some(cluster)
    }

    /// The `[cluster] nats` list.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.client))
            .collect()
    }

    /// Kills node `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut daemon) = self.nodes[i].daemon.take() {
            daemon.kill();
        }
    }
}

/// HAProxy from `packaging/haproxy.cfg`, in front of two connectors.
pub struct Haproxy {
    pub addr: SocketAddr,
    _daemon: Daemon,
}

/// A connector as HAProxy sees it: its SOAP and admin addresses.
#[derive(Debug, Clone, Copy)]
pub struct Backend {
    pub soap: SocketAddr,
    pub admin: SocketAddr,
}

impl Haproxy {
    pub async fn start(binary: &Path, dir: &Path, a: Backend, b: Backend) -> Haproxy {
        for attempt in 1..=START_ATTEMPTS {
            if let Some(proxy) = Haproxy::try_start(binary, dir, a, b, attempt).await {
                return proxy;
            }
            eprintln!("HAProxy could not bind its port (attempt {attempt}); a new one");
        }
        panic!("HAProxy did not start; logs in {}", dir.display())
    }

    async fn try_start(
        binary: &Path,
        dir: &Path,
        a: Backend,
        b: Backend,
        attempt: usize,
    ) -> Option<Haproxy> {
        let template = std::fs::read_to_string(Path::new(PACKAGING).join("haproxy.cfg"))
            .expect("packaging/haproxy.cfg");
        let port = free_port();
        let config: Vec<String> = template
            .lines()
            .map(|line| {
                let backend = if line.contains("server connector-a") {
                    Some((a, "10.0.0.11:8080"))
                } else if line.contains("server connector-b") {
                    Some((b, "10.0.0.12:8080"))
                } else {
                    None
                };
                match backend {
                    Some((backend, example)) => line
                        .replace(example, &backend.soap.to_string())
                        .replace("port 8081", &format!("port {}", backend.admin.port())),
                    None => line.replace("bind :80", &format!("bind 127.0.0.1:{port}")),
                }
            })
            .collect();
        let config = config.join("\n") + "\n";
        assert!(
            !uncommented(&config).contains("10.0.0."),
            "every address replaced:\n{config}"
        );
        let file: PathBuf = dir.join("haproxy.cfg");
        std::fs::write(&file, config).unwrap();
        let check = Command::new(binary)
            .arg("-c")
            .arg("-f")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "haproxy -c: {}",
            String::from_utf8_lossy(&check.stdout)
        );
        let mut daemon = Daemon::spawn(
            "haproxy",
            Command::new(binary).arg("-db").arg("-f").arg(&file),
            &dir.join(format!("haproxy-{attempt}.log")),
        );
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = tokio::time::Instant::now() + START_WITHIN;
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if daemon.exited() {
                return None;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "HAProxy not listening within {START_WITHIN:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(Haproxy {
            addr,
            _daemon: daemon,
        })
    }
}
