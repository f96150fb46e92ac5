//! The `tally` binary.

use std::process::ExitCode;

use clap::Parser;
use server::config::{Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: see docs/benchmarks.md for what it changed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(format: LogFormat) {
    // async-stripe's webhook module logs an error for every event type it has no typed
    // struct for; we verify signatures ourselves and read events from their raw JSON.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info,stripe_webhook=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.log_format);
    // Pages and messages show amounts in the deployment currency.
    app::core::currency::show_in(&cli.global.stripe.currency);
    let url = &cli.global.database_url;
    let outcome = match &cli.command {
        Command::Serve(cfg) => server::serve(url, &cli.global.stripe, cfg)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Reconcile => server::cli::reconcile(url, &cli.global.stripe).await,
        Command::ReplayWebhook { id } => server::cli::replay_webhook(url, id).await,
        Command::Migrate => server::cli::migrate(url).await,
        Command::Verify => server::cli::verify(url).await,
        Command::Backup { destination } => server::cli::backup(url, destination).await,
        Command::Demo => server::cli::demo(url).await,
        Command::Keys(k) => server::cli::keys(url, k).await,
        Command::Admin(a) => server::cli::admin(url, a).await,
        Command::Reprice(cfg) => server::cli::reprice(url, cfg).await,
        Command::ReconcileProvider(cfg) => server::cli::reconcile_provider(url, cfg).await,
        Command::Bench(cfg) => server::bench::run(url, cfg).await.map(|clean| {
            if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }),
        Command::Openapi => {
            println!("{}", server::api::openapi::json());
            Ok(ExitCode::SUCCESS)
        }
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
