//! The `ici-connector` binary: parse the command line, set up logging, load the config,
//! bind, and run the library until SIGINT/SIGTERM; SIGHUP reloads what can change at run
//! time. `trace` tells one agent's story from the log files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ici_connector::config::Config;
use ici_connector::trace_cmd::{self, TraceQuery};
use ici_connector::{Listeners, logging, reload, run_live};
use tracing::info;

/// mimalloc instead of glibc malloc: a SOAP request and an event each make a few dozen
/// short-lived allocations on the tokio workers, and glibc's per-arena bins and
/// consolidation cost about a quarter of the CPU under load (BENCHMARKS.md, benchmark 1).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The configuration used when neither --config nor ICI_CONNECTOR_CONFIG names one.
const DEFAULT_CONFIG: &str = "config/ici-connector.toml";

/// CTI middleware between SAP CRM's Interaction Center (ICI) and a telephone switch.
#[derive(Debug, Parser)]
#[command(name = "ici-connector", version, about)]
struct Cli {
    /// Configuration file (TOML). Default: config/ici-connector.toml, or the built-in
    /// defaults (simulator switch) when that file does not exist.
    #[arg(long, short, env = "ICI_CONNECTOR_CONFIG", global = true)]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the connector (the default).
    Run,
    /// Check a configuration file: print every problem with its TOML key and exit 1, or
    /// print the effective configuration (secrets masked) and exit 0, with warnings (e.g.
    /// SOAP open to the network without protection) on standard error.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Read a password on standard input and print its Argon2 hash, for
    /// `[[auth.soap_users]]` / `[[auth.admin_users]]` `password_hash`.
    HashPassword,
    /// Print one SAP user's story from the log files, in time order: SAP's requests, the
    /// switch events of their calls, the events sent to SAP, with results and timings.
    Trace {
        /// The SAP user (agent), e.g. CRMFOSOUT.
        #[arg(long, short)]
        user: String,
        /// Only the last part, e.g. "10m", "2h", "1day".
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<Duration>,
        /// Only lines about this call id.
        #[arg(long)]
        call: Option<String>,
        /// The log directory. Default: `[logging] directory` of the configuration.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Also print the captured SOAP bodies (when capture was on for the user).
        #[arg(long)]
        bodies: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file }) => check_config(&file),
        Some(Command::HashPassword) => hash_password(),
        Some(Command::Trace {
            user,
            since,
            call,
            dir,
            bodies,
        }) => {
            let query = TraceQuery {
                user,
                since,
                call,
                bodies,
            };
            match trace(cli.config, dir, &query) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ici-connector trace: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Run) | None => match serve(cli.config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ici-connector: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn check_config(file: &Path) -> ExitCode {
    match Config::load(file) {
        Ok(config) => {
            print!("{}", config.effective_toml());
            eprintln!("{}: configuration is valid", file.display());
            for warning in config.warnings() {
                eprintln!("  warning: {warning}");
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{}: {} problem(s)", file.display(), errors.0.len());
            for error in &errors.0 {
                eprintln!("  {error}");
            }
            ExitCode::FAILURE
        }
    }
}

fn hash_password() -> ExitCode {
    use argon2::password_hash::PasswordHasher;
    let mut password = String::new();
    if std::io::stdin().read_line(&mut password).is_err() {
        eprintln!("ici-connector: cannot read the password from standard input");
        return ExitCode::FAILURE;
    }
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("ici-connector: empty password");
        return ExitCode::FAILURE;
    }
    match argon2::Argon2::default().hash_password(password.as_bytes()) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ici-connector: hashing failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn trace(config: Option<PathBuf>, dir: Option<PathBuf>, query: &TraceQuery) -> anyhow::Result<()> {
    let dir = match dir {
        Some(dir) => dir,
        None => load_config(config)?
            .0
            .logging
            .directory
            .context("no --dir given and the configuration has no [logging] directory")?,
    };
    print!("{}", trace_cmd::story_from_dir(&dir, query)?);
    Ok(())
}

/// The configuration, its path (none: built-in defaults) and a name for the log.
fn load_config(path: Option<PathBuf>) -> anyhow::Result<(Config, Option<PathBuf>, String)> {
    let path = path.or_else(|| Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()));
    match path {
        Some(path) => {
            let config =
                Config::load(&path).map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))?;
            let source = path.display().to_string();
            Ok((config, Some(path), source))
        }
        None => Ok((Config::default(), None, "built-in defaults".to_string())),
    }
}

fn serve(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let (config, path, source) = load_config(config_path)?;
    let log = logging::init(&config.logging)?;
    // The reload task owns `log` and is aborted at shutdown; this clone keeps the log
    // writer until after the last line ("stopped").
    let _log_writer = log.clone();
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async move {
        // Registered before anything is bound, so a signal can never find the default
        // action (an abrupt exit) in place.
        let shutdown = shutdown_signal().context("installing signal handlers")?;
        let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        let listeners = Listeners::bind(&config)
            .await
            .context("binding the listeners")?;
        let (soap, admin) = listeners.addresses()?;
        info!(config = %source, %soap, %admin, "listening");
        let (live, running) = tokio::sync::watch::channel(std::sync::Arc::new(config.clone()));
        let reloader = tokio::spawn(reload_on_sighup(hangup, path, config, log, live));
        run_live(running, listeners, shutdown).await?;
        reloader.abort();
        info!("stopped");
        Ok(())
    })
}

/// Reloads the configuration file on every SIGHUP (see `ici_connector::reload`).
async fn reload_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    path: Option<PathBuf>,
    mut current: Config,
    log: logging::LogHandle,
    live: tokio::sync::watch::Sender<std::sync::Arc<Config>>,
) {
    while hup.recv().await.is_some() {
        let Some(path) = &path else {
            info!("SIGHUP: running on the built-in defaults, nothing to reload");
            continue;
        };
        if let Ok((config, _)) = reload::reload(path, &current, &log) {
            live.send_replace(std::sync::Arc::new(config.clone()));
            current = config;
        }
    }
}

/// A future that completes on SIGINT or SIGTERM; the handlers are installed at once.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = term.recv() => {}
        }
    })
}
