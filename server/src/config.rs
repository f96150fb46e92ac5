//! Typed configuration from flags and the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tally",
    version,
    about = "Prepaid credits, token metering and Stripe top-ups for AI products"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalConfig,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Debug, clap::Args)]
pub struct GlobalConfig {
    /// Where the data lives: `sqlite://path` (created if missing) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/tally.db",
        global = true
    )]
    pub database_url: String,
    #[command(flatten)]
    pub stripe: StripeConfig,
    /// Log format: `text` for people, `json` for machines.
    #[arg(long, env = "TALLY_LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: LogFormat,
}

/// Stripe settings. No secret key: simulated payments (test mode only).
#[derive(Clone, clap::Args)]
pub struct StripeConfig {
    #[arg(long, env = "STRIPE_SECRET_KEY", global = true, hide_env_values = true)]
    pub stripe_secret_key: Option<String>,
    #[arg(
        long,
        env = "STRIPE_WEBHOOK_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub stripe_webhook_secret: Option<String>,
    /// Stripe's API base, e.g. a local imitation for tests.
    #[arg(long, env = "STRIPE_API_BASE", global = true)]
    pub stripe_api_base: Option<String>,
    /// The deployment currency (ISO 4217): what balances are in and Stripe charges in.
    #[arg(long, env = "TALLY_CURRENCY", default_value = "usd", global = true, value_parser = parse_currency)]
    pub currency: app::core::currency::Currency,
}

fn parse_currency(code: &str) -> Result<app::core::currency::Currency, String> {
    app::core::currency::Currency::parse(code).map_err(|e| e.to_string())
}

impl std::fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeConfig")
            .field(
                "stripe_secret_key",
                &self.stripe_secret_key.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "stripe_webhook_secret",
                &self.stripe_webhook_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("stripe_api_base", &self.stripe_api_base)
            .field("currency", &self.currency)
            .finish()
    }
}

impl StripeConfig {
    pub fn payments_config(&self, public_url: &str) -> app::core::payments::PaymentsConfig {
        use app::core::payments::{PaymentsConfig, Secret};
        PaymentsConfig {
            stripe_secret_key: self
                .stripe_secret_key
                .clone()
                .filter(|s| !s.is_empty())
                .map(Secret::new),
            webhook_secret: self
                .stripe_webhook_secret
                .clone()
                .filter(|s| !s.is_empty())
                .map(Secret::new),
            stripe_api_base: self.stripe_api_base.clone().filter(|s| !s.is_empty()),
            public_url: public_url.to_string(),
            currency: self.currency.clone(),
            stripe_timeout: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate, then serve the portal, the API, webhooks and the workers.
    Serve(ServeConfig),
    /// Apply the database migrations and exit.
    Migrate,
    /// Check every ledger invariant; exit 0 only if all hold.
    Verify,
    /// Copy a SQLite database to a new file while it is in use (a consistent snapshot),
    /// then verify the copy's ledger. PostgreSQL: use pg_dump (README, Backups).
    Backup {
        /// The file to write; must not exist.
        destination: PathBuf,
    },
    /// Repair what Stripe webhooks missed and print the report.
    Reconcile,
    /// Put a stored webhook event back in the queue.
    ReplayWebhook { id: String },
    /// Seed demo accounts and ledger activity into an empty database.
    Demo,
    /// Load the metering path over HTTP on loopback and print throughput and latency.
    Bench(BenchConfig),
    /// Print the API contract as OpenAPI 3 JSON (what `GET /v1/openapi.json` serves).
    Openapi,
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage staff accounts of the admin console.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// What-if re-rating (read-only): what usage from --from to --to would have cost under
    /// a plan version, against what was charged. Progress goes to stderr, the report to
    /// stdout.
    Reprice(RepriceConfig),
    /// Compare the tokens Tally charged for proxied requests (live mode) per model and day
    /// with the providers' usage reports (ANTHROPIC_ADMIN_KEY, OPENAI_ADMIN_KEY), store the
    /// drift (shown in the console) and print it.
    ReconcileProvider(ReconcileProviderConfig),
}

#[derive(Clone, Debug, clap::Args)]
pub struct ReconcileProviderConfig {
    /// The first UTC day (YYYY-MM-DD; default yesterday).
    #[arg(long)]
    pub from: Option<String>,
    /// The day after the last (default tomorrow, so today is included).
    #[arg(long)]
    pub to: Option<String>,
    #[command(flatten)]
    pub proxy: ProxyArgs,
}

/// Customer emails over SMTP.
#[derive(Clone, clap::Args)]
pub struct MailArgs {
    /// `smtp://host:port` (plain), `smtp://host:port?tls=required` (STARTTLS) or
    /// `smtps://user:pass@host:port`; unset: no email is sent and the console says so.
    #[arg(long, env = "TALLY_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The sender of customer emails.
    #[arg(
        long,
        env = "TALLY_EMAIL_FROM",
        default_value = "Tally <billing@localhost>"
    )]
    pub email_from: String,
}

impl std::fmt::Debug for MailArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailArgs")
            .field("smtp_url", &self.smtp_url.as_ref().map(|_| "<redacted>"))
            .field("email_from", &self.email_from)
            .finish()
    }
}

#[derive(Clone, Debug, clap::Args)]
pub struct RepriceConfig {
    /// The plan to price with (in --mode's catalog).
    #[arg(long)]
    pub plan: String,
    /// The plan's version (default: the one in force).
    #[arg(long)]
    pub version: Option<i64>,
    #[arg(long, value_parser = ["test", "live"], default_value = "live")]
    pub mode: String,
    /// One customer (`cus_…`); everyone in the mode when absent.
    #[arg(long)]
    pub customer: Option<String>,
    /// Start of the period (RFC 3339 or YYYY-MM-DD, UTC), inclusive.
    #[arg(long)]
    pub from: String,
    /// End of the period (RFC 3339 or YYYY-MM-DD, UTC), exclusive.
    #[arg(long)]
    pub to: String,
    /// Use the price book as it stood at this instant instead of when each event was
    /// recorded.
    #[arg(long)]
    pub prices_at: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create (or reset) a staff account; the password is read from stdin.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = ["admin", "viewer"], default_value = "admin")]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once, as the last line of stdout.
    Create {
        #[arg(long, value_parser = ["test", "live"])]
        mode: String,
        #[arg(long, value_parser = ["read", "usage", "admin"])]
        scope: String,
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// Revoke a key by id (`key_…`).
    Revoke { id: String },
    /// List keys (never their secrets).
    List,
}

#[derive(Clone, Debug, clap::Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "TALLY_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// A directory whose `pkg/` (the wasm bundle and stylesheet) to serve instead of the
    /// one built into the binary: a rebuilt bundle without rebuilding the server.
    #[arg(long, env = "TALLY_SITE_ROOT")]
    pub site_root: Option<PathBuf>,
    /// Seconds between sweeps that expire overdue holds and grants.
    #[arg(long, env = "TALLY_SWEEP_SECONDS", default_value_t = 5)]
    pub sweep_seconds: u64,
    /// Requests per second (and burst) allowed per API key.
    #[arg(long, env = "TALLY_API_RATE_PER_SECOND", default_value_t = 1000)]
    pub api_rate_per_second: u32,
    /// The public base URL of this server, for links it hands out
    /// (default: http://<addr>).
    #[arg(long, env = "TALLY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Seconds between reconciliation runs.
    #[arg(long, env = "TALLY_RECONCILE_SECONDS", default_value_t = 900)]
    pub reconcile_seconds: u64,
    /// Requests this node handles at once; past it a request is answered 503
    /// (`overloaded`, Retry-After: 1) at once instead of queueing. Health checks and
    /// metrics are exempt.
    #[arg(long, env = "TALLY_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,
    /// Hours an `Idempotency-Key`'s answer is replayed; then the key is new again and
    /// the record is deleted (a usage event's request_id deduplicates forever).
    #[arg(long, env = "TALLY_IDEMPOTENCY_TTL_HOURS", default_value_t = 24)]
    pub idempotency_ttl_hours: u64,
    /// Seconds a stop (SIGTERM, Ctrl-C) waits for in-flight requests and the workers'
    /// current pass before it cuts them off.
    #[arg(long, env = "TALLY_SHUTDOWN_GRACE_SECONDS", default_value_t = 30)]
    pub shutdown_grace_seconds: u64,
    /// Reader connections this node may open (default: 8 on SQLite, 16 on PostgreSQL).
    #[arg(long, env = "TALLY_DB_READERS")]
    pub db_readers: Option<u32>,
    /// Writer connections this node may open on PostgreSQL (default 8: one per
    /// group-commit writer and four more; at least 5). SQLite has exactly one.
    #[arg(long, env = "TALLY_DB_WRITERS")]
    pub db_writers: Option<u32>,
    /// When set, `/metrics` answers only requests with `Authorization: Bearer <token>`.
    #[arg(long, env = "TALLY_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    #[command(flatten)]
    pub proxy: ProxyArgs,
    #[command(flatten)]
    pub mail: MailArgs,
}

/// The metering proxy's upstreams and timeouts.
#[derive(Clone, clap::Args)]
pub struct ProxyArgs {
    #[arg(long, env = "ANTHROPIC_API_KEY", hide_env_values = true)]
    pub anthropic_api_key: Option<String>,
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,
    /// Admin keys for the providers' usage reports (`tally reconcile-provider`, daily).
    #[arg(long, env = "ANTHROPIC_ADMIN_KEY", hide_env_values = true)]
    pub anthropic_admin_key: Option<String>,
    #[arg(long, env = "OPENAI_ADMIN_KEY", hide_env_values = true)]
    pub openai_admin_key: Option<String>,
    #[arg(
        long,
        env = "TALLY_ANTHROPIC_BASE_URL",
        default_value = "https://api.anthropic.com"
    )]
    pub anthropic_base_url: String,
    #[arg(
        long,
        env = "TALLY_OPENAI_BASE_URL",
        default_value = "https://api.openai.com"
    )]
    pub openai_base_url: String,
    /// `drain` (read the answer to its end and charge it exactly) or `abort`.
    #[arg(long, env = "TALLY_PROXY_ON_DISCONNECT", default_value = "drain", value_parser = parse_on_disconnect)]
    pub on_disconnect: crate::proxy::OnDisconnect,
    #[arg(
        long,
        env = "TALLY_PROXY_CONNECT_TIMEOUT_SECONDS",
        default_value_t = 10
    )]
    pub connect_timeout_seconds: u64,
    /// Seconds until the provider's answer must begin (its headers).
    #[arg(
        long,
        env = "TALLY_PROXY_FIRST_BYTE_TIMEOUT_SECONDS",
        default_value_t = 600
    )]
    pub first_byte_timeout_seconds: u64,
    /// Longest silence in the middle of an answer.
    #[arg(long, env = "TALLY_PROXY_IDLE_TIMEOUT_SECONDS", default_value_t = 300)]
    pub idle_timeout_seconds: u64,
    /// Proxied requests per second (and burst) per paying key.
    #[arg(long, env = "TALLY_PROXY_RATE_PER_SECOND", default_value_t = 1000)]
    pub rate_per_second: u32,
}

impl std::fmt::Debug for ProxyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyArgs")
            .field("anthropic_base_url", &self.anthropic_base_url)
            .field("openai_base_url", &self.openai_base_url)
            .field("on_disconnect", &self.on_disconnect)
            .finish_non_exhaustive()
    }
}

fn parse_on_disconnect(s: &str) -> Result<crate::proxy::OnDisconnect, String> {
    crate::proxy::OnDisconnect::parse(s).ok_or_else(|| format!("{s}: expected drain or abort"))
}

impl ProxyArgs {
    /// The proxy's settings; test mode without a provider key uses the server's own
    /// simulated provider at `self_url`.
    pub fn config(&self, self_url: &str) -> crate::proxy::ProxyConfig {
        let key = |k: &Option<String>| k.clone().filter(|k| !k.trim().is_empty());
        crate::proxy::ProxyConfig {
            anthropic: crate::proxy::Upstream {
                base_url: self.anthropic_base_url.clone(),
                api_key: key(&self.anthropic_api_key),
                admin_key: key(&self.anthropic_admin_key),
            },
            openai: crate::proxy::Upstream {
                base_url: self.openai_base_url.clone(),
                api_key: key(&self.openai_api_key),
                admin_key: key(&self.openai_admin_key),
            },
            connect_timeout: std::time::Duration::from_secs(self.connect_timeout_seconds.max(1)),
            first_byte_timeout: std::time::Duration::from_secs(
                self.first_byte_timeout_seconds.max(1),
            ),
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout_seconds.max(1)),
            on_disconnect: self.on_disconnect,
            rate_per_second: self.rate_per_second,
            simulated_base: Some(format!("{}/simulated", self_url.trim_end_matches('/'))),
        }
    }
}

#[derive(Clone, Debug, clap::Args)]
pub struct BenchConfig {
    /// Seconds measured per scenario.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Seconds of warm-up before each measurement.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Concurrent keep-alive clients for single-event scenarios.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Concurrent clients sending 1,000-event batches.
    #[arg(long, default_value_t = 4)]
    pub batch_clients: usize,
    /// Concurrent clients doing authorize + capture on one account.
    #[arg(long, default_value_t = 1000)]
    pub authcap_clients: usize,
    /// Customers the single-event scenarios spread over.
    #[arg(long, default_value_t = 1000)]
    pub customers: usize,
    /// Serve the HTTP scenarios from this many `tally serve` processes on the same database
    /// instead of a server inside the bench process (the load generator then runs outside
    /// the servers). With more than one (PostgreSQL only), POST /v1/usage is also measured
    /// against 1, 2, … of them: the scale-out figure.
    #[arg(long, default_value_t = 0)]
    pub nodes: usize,
    /// pgbench's tpcb-like tps measured on the same PostgreSQL, to print the ratio.
    #[arg(long)]
    pub pgbench_tps: Option<f64>,
    /// Also measure the portal's usage page for one customer with this many events.
    #[arg(long, default_value_t = 0)]
    pub usage_page_rows: i64,
    /// Measure the metering proxy instead: a fake provider on loopback with a fixed
    /// latency, called directly and through the proxy in the same run.
    #[arg(long)]
    pub proxy: bool,
    /// Run on a database that already holds customers or ledger transactions (the
    /// benchmark adds thousands of each, with their money).
    #[arg(long)]
    pub allow_existing_data: bool,
    /// The fake provider's latency before its answer begins (milliseconds).
    #[arg(long, default_value_t = 20)]
    pub proxy_latency_ms: u64,
    /// The paced rate (requests per second) at which the proxy's added latency is measured.
    #[arg(long, default_value_t = 1000)]
    pub proxy_rate: u64,
}
