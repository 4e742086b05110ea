//! The `herald` binary: flags and environment, logging, signals, then [`herald::run`]; or, with a
//! subcommand, one of the clients in [`herald::client`].

use std::future::Future;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use herald::client::{CliError, ProbeArgs, PubArgs, SubArgs, TokenArgs};
use herald::config::ServerArgs;
use herald::logging::LogFormat;

#[cfg(not(feature = "dhat-heap"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Profiling builds count every allocation by call site (see Cargo.toml's `dhat-heap`).
#[cfg(feature = "dhat-heap")]
#[global_allocator]
static GLOBAL: dhat::Alloc = dhat::Alloc;

/// A lock-free WebSocket + REST publish/subscribe broker.
#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about,
    args_conflicts_with_subcommands = true,
    after_help = "Without a command, herald runs the broker (the same as `herald serve`)."
)]
struct Cli {
    /// The server's flags sit on the top level too, so `herald --port 1234` keeps working.
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Everything the broker is started with.
#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Log format; the level comes from RUST_LOG (default `info`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker (the default).
    Serve(Box<ServeArgs>),
    /// Subscribe to a topic and print each event as one JSON line.
    Sub(SubArgs),
    /// Publish a message, or each stdin line with `-`, printing each ack.
    Pub(PubArgs),
    /// Check a server's health route (default /livez): exit 0 when it answers 2xx.
    Probe(ProbeArgs),
    /// Mint a token from JWT_SECRET (development and tests) and print it.
    Token(TokenArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            // One clear line, not clap's full usage dump: this is usually an environment variable.
            let argv: Vec<_> = std::env::args_os().collect();
            let line = herald::config::clap_error_line(&e, Cli::command(), &argv);
            eprintln!("herald: {line}");
            return ExitCode::from(2);
        }
        Err(e) => {
            // --help and --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(*args),
        Some(Command::Sub(args)) => client(herald::client::sub(args)),
        Some(Command::Pub(args)) => client(herald::client::publish(args)),
        Some(Command::Token(args)) => match herald::client::token(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("herald: {e}");
                ExitCode::from(e.exit_code())
            }
        },
        Some(Command::Probe(args)) => {
            // Without --url, probe where (and whether over TLS) a server started in this
            // environment listens.
            let server = cli.serve.server.into_config();
            client(herald::client::probe(args, server))
        }
    }
}

/// Runs a client command on a single-threaded runtime; its error is one line on stderr.
fn client(command: impl Future<Output = Result<(), CliError>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs the broker until SIGINT or SIGTERM. Every bad setting, the TLS files and `RUST_LOG`
/// included, stops start-up with one line and exit code 2 before anything binds.
fn serve(cli: ServeArgs) -> ExitCode {
    // Writes dhat-heap.json when the server returns (a graceful shutdown).
    #[cfg(feature = "dhat-heap")]
    let _profiler = dhat::Profiler::new_heap();
    let warnings = cli.server.warnings();
    let config = match cli.server.into_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("herald: {e}");
            return ExitCode::from(2);
        }
    };
    // Loaded here only to be checked: `run` loads them again, and a bad file is configuration.
    if let Some(Err(e)) = config.tls.as_ref().map(herald::tls::server_config) {
        eprintln!("herald: invalid configuration: {e}");
        return ExitCode::from(2);
    }
    // Likewise JWT_PUBLIC_KEY and PERMISSIONS_FILE.
    if let Err(e) = herald::auth::Auth::from_config(&config) {
        eprintln!("herald: invalid configuration: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = herald::logging::init(cli.log_format) {
        eprintln!("herald: {e}");
        return ExitCode::from(2);
    }
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Each WebSocket is a file descriptor; the usual soft limit of 1024 would cap connections
    // far below what the broker serves. Raise it to the hard limit (`ulimit -n` sets that).
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open-files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-files limit"),
    }
    runtime.block_on(async move {
        let listener = match listen(config.addr) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("herald: cannot listen on {}: {e}", config.addr);
                return ExitCode::FAILURE;
            }
        };
        match herald::run(config, listener, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("herald: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Pending connections the kernel may hold before `accept`; the default of 128 makes connection
/// storms (a load balancer reconnecting thousands of clients) wait on SYN retries. The kernel caps
/// it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` with a deep accept backlog.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // A restarted node can bind again while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = terminate => tracing::info!("SIGTERM received"),
    }
}
