//! The flags of `herald sub`, `herald pub` and `herald probe` (clap derive; `main` flattens them
//! into its subcommands).

use std::path::PathBuf;

use clap::Args;

/// Which servers an `https://` or `wss://` connection trusts, as curl's flags of the same names.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// PEM file of the CA certificate(s) to trust instead of the system's (a private CA, or a
    /// self-signed server certificate itself).
    #[arg(long, env = "HERALD_CACERT", value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Do not check the server's certificate (the connection is encrypted but anyone on the path
    /// could be answering). For tests and self-signed servers you cannot get the CA of.
    #[arg(long, short = 'k', conflicts_with = "cacert")]
    pub insecure: bool,
}

/// Where the server is and how to authenticate; shared by `sub` and `pub`.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Server URL: `ws://host:port` or `wss://host:port` (path defaults to `/ws`); `http://`,
    /// `https://` and a bare `host:port` work too.
    #[arg(long, env = "HERALD_URL", default_value = "ws://127.0.0.1:8080")]
    pub url: String,
    /// API key, sent as the X-API-Key header.
    #[arg(long, env = "HERALD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Token (JWT), sent as `Authorization: Bearer` (mint one with `herald token`).
    #[arg(long, env = "HERALD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// `herald sub TOPIC`: print every event of TOPIC as one JSON line on stdout.
#[derive(Debug, Clone, Args)]
pub struct SubArgs {
    /// Topic to subscribe to.
    pub topic: String,
    /// First replay the last N stored messages of the topic.
    #[arg(long, value_name = "N")]
    pub last_n: Option<u64>,
    /// First replay every stored message with a seq greater than S (resume after a reconnect).
    #[arg(long, value_name = "S")]
    pub since_seq: Option<u64>,
    /// The topic epoch last seen, with --since-seq; a different epoch replays nothing.
    #[arg(long, value_name = "E", requires = "since_seq")]
    pub epoch: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `herald pub TOPIC [MESSAGE | -]`: publish, waiting for each ack and printing it.
#[derive(Debug, Clone, Args)]
pub struct PubArgs {
    /// Topic to publish to.
    pub topic: String,
    /// The payload: sent as JSON when it is valid JSON, otherwise as a JSON string. `-` (or
    /// nothing, with stdin not a terminal) publishes each non-empty stdin line instead. A message
    /// that starts with `-` (other than a number) goes after `--`.
    #[arg(allow_negative_numbers = true)]
    pub message: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `herald probe`: GET a health route; exit 0 on a 2xx answer, 1 otherwise.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// Server URL, `http://host:port` or `https://host:port` (`ws://`, `wss://` work too).
    /// Default: where a server started in this environment listens (HOST/PORT/ADDR, with 0.0.0.0
    /// read as 127.0.0.1), over HTTPS when TLS_CERT/TLS_KEY are set; that check of the server's
    /// own listener accepts its certificate without verifying it unless --cacert is given.
    #[arg(long)]
    pub url: Option<String>,
    /// Route to check, when the URL has no path of its own.
    #[arg(long, default_value = "/livez")]
    pub path: String,
    /// Seconds the whole check may take.
    #[arg(long, default_value_t = 5)]
    pub timeout_secs: u64,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// `herald token --sub ID …`: mint an HS256 token from `JWT_SECRET` (for development and tests).
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The identity (`sub` claim).
    #[arg(long)]
    pub sub: String,
    /// A topic pattern the token may subscribe to (repeat for more; `*` one token, `>` the rest).
    #[arg(long = "allow-sub", value_name = "PATTERN")]
    pub allow_sub: Vec<String>,
    /// A topic pattern the token may publish to (repeatable).
    #[arg(long = "allow-pub", value_name = "PATTERN")]
    pub allow_pub: Vec<String>,
    /// A topic pattern whose history the token may read (repeatable).
    #[arg(long = "allow-history", value_name = "PATTERN")]
    pub allow_history: Vec<String>,
    /// A topic pattern whose presence the token may see (repeatable).
    #[arg(long = "allow-presence", value_name = "PATTERN")]
    pub allow_presence: Vec<String>,
    /// Every right on every topic, like API_KEY.
    #[arg(long)]
    pub admin: bool,
    /// How long the token is valid, e.g. `90s`, `1h`, `7d`.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: std::time::Duration,
    /// The HMAC secret the server verifies with.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub secret: String,
    /// `iss` claim (the server's JWT_ISSUER).
    #[arg(long, env = "JWT_ISSUER")]
    pub issuer: Option<String>,
    /// `aud` claim (the server's JWT_AUDIENCE).
    #[arg(long, env = "JWT_AUDIENCE")]
    pub audience: Option<String>,
}
