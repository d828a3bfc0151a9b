//! The `ici-connector` binary: parse the command line, set up logging, load the config,
//! bind, and run the library until SIGINT/SIGTERM.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ici_connector::config::Config;
use ici_connector::{Listeners, run};
use tracing::info;

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
    /// print the effective configuration (secrets masked) and exit 0.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Read a password on standard input and print its Argon2 hash, for
    /// `[[auth.soap_users]]` / `[[auth.admin_users]]` `password_hash`.
    HashPassword,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file }) => check_config(&file),
        Some(Command::HashPassword) => hash_password(),
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

fn load_config(path: Option<PathBuf>) -> anyhow::Result<(Config, String)> {
    let path = path.or_else(|| Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()));
    match path {
        Some(path) => {
            let config =
                Config::load(&path).map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))?;
            Ok((config, path.display().to_string()))
        }
        None => Ok((Config::default(), "built-in defaults".to_string())),
    }
}

fn serve(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let (config, source) = load_config(config_path)?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.logging.level))
        .context("logging.level")?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async move {
        // Registered before anything is bound, so a signal can never find the default
        // action (an abrupt exit) in place.
        let shutdown = shutdown_signal().context("installing signal handlers")?;
        let listeners = Listeners::bind(&config)
            .await
            .context("binding the listeners")?;
        let (soap, admin) = listeners.addresses()?;
        info!(config = %source, %soap, %admin, "listening");
        run(config, listeners, shutdown).await?;
        info!("stopped");
        Ok(())
    })
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
