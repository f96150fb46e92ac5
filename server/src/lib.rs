//! The `tally` server: the axum router (portal pages, server functions, health), the
//! background workers, and the command-line entry points. Handlers here are thin edges
//! over `app::core`.

pub mod api;
pub mod bench;
pub mod cli;
pub mod config;
mod health;
pub mod metrics;
pub mod notify;
mod nul;
mod portal;
pub mod proxy;
pub mod sessions;
pub mod site;
mod webhooks;
pub mod workers;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use app::core::clock::{Clock, SystemClock};
use app::core::error::{Error, Result};
use app::core::payments::{Payments, PaymentsConfig};
use app::core::store::Store;
use app::core::Core;
use axum::body::Body;
use axum::extract::{FromRef, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use leptos::prelude::{provide_context, LeptosOptions};
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub core: Core,
    pub leptos_options: LeptosOptions,
    /// Renders this server's recorder (`core.meters`) for `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// The periodic jobs this node leads.
    pub leading: workers::Leading,
    /// What `/metrics` asks for, if anything.
    pub metrics_token: Option<metrics::Token>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> LeptosOptions {
        state.leptos_options.clone()
    }
}

/// Opens the database named by the URL and brings its schema up to date.
pub async fn open_store(database_url: &str) -> Result<Store> {
    open_store_with(database_url, app::core::store::PoolSizes::default()).await
}

/// [`open_store`] with pools of the given sizes (`tally serve`).
pub async fn open_store_with(
    database_url: &str,
    sizes: app::core::store::PoolSizes,
) -> Result<Store> {
    let store = Store::connect_with(database_url, sizes).await?;
    store.migrate().await?;
    Ok(store)
}

fn leptos_options(site_root: &Path, addr: SocketAddr) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("tally")
        .site_root(site_root.to_string_lossy().to_string())
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .build()
}

/// How a server runs, beyond its listener and database.
#[derive(Clone, Debug)]
pub struct Options {
    /// A directory whose `pkg/` to serve instead of the bundle built into the binary
    /// (`site.rs`); None serves the built-in one.
    pub site_root: Option<PathBuf>,
    pub sweep_every: Duration,
    pub api: api::ApiConfig,
    pub payments: PaymentsConfig,
    /// How often reconciliation runs on its own (None: only on demand).
    pub reconcile_every: Option<Duration>,
    pub proxy: proxy::ProxyConfig,
    /// Where customer emails go (no SMTP URL: none are sent).
    pub mail: notify::MailConfig,
    /// The bearer token `/metrics` asks for (None: open, as on a private network).
    pub metrics_token: Option<metrics::Token>,
    /// How long a stop waits for in-flight requests and the workers' current pass before
    /// it cuts them off.
    pub shutdown_grace: Duration,
    /// Requests this node handles at once; past it a request is answered 503 at once
    /// (`overloaded`, `Retry-After: 1`) instead of queueing. Health and metrics are exempt.
    pub max_in_flight: usize,
}

impl Options {
    /// Defaults for tests and tools: no site bundle, a fast sweep, a generous rate limit.
    pub fn for_tests(addr: SocketAddr) -> Options {
        Options {
            site_root: None,
            sweep_every: Duration::from_millis(200),
            api: api::ApiConfig {
                rate_per_second: 100_000,
                public_url: format!("http://{addr}"),
                idempotency_ttl: app::core::idempotency::DEFAULT_TTL,
            },
            payments: PaymentsConfig {
                public_url: format!("http://{addr}"),
                ..PaymentsConfig::default()
            },
            reconcile_every: None,
            proxy: proxy::ProxyConfig::new(Some(format!("http://{addr}/simulated"))),
            mail: notify::MailConfig {
                smtp_url: None,
                from: "Tally <billing@localhost>".into(),
            },
            metrics_token: None,
            shutdown_grace: Duration::from_secs(10),
            max_in_flight: 10_000,
        }
    }
}

/// The whole HTTP surface.
pub fn router(
    core: Core,
    options: &Options,
    addr: SocketAddr,
    leading: workers::Leading,
    rendered: metrics_exporter_prometheus::PrometheusHandle,
) -> Router {
    // Without a directory, `/pkg/` is answered from the binary and the fallback below
    // finds no file on disk, so it renders the app's not-found page.
    let site_root: &Path = options
        .site_root
        .as_deref()
        .unwrap_or(Path::new("/nonexistent/tally-site"));
    let leptos_options = leptos_options(site_root, addr);
    let routes = generate_route_list(app::App);
    let state = AppState {
        core: core.clone(),
        leptos_options: leptos_options.clone(),
        metrics: rendered,
        leading,
        metrics_token: options.metrics_token.clone(),
    };
    let context_core = core.clone();
    let provide = move || provide_context(context_core.clone());
    let request_id = HeaderName::from_static("x-request-id");

    // The bundle from the binary, unless a directory was named (then the fallback's file
    // server finds it there).
    let built_in = Router::new();
    let built_in = if options.site_root.is_none() {
        built_in.route("/pkg/{*file}", get(site::asset))
    } else {
        built_in
    };
    built_in
        .route(
            "/webhooks/stripe",
            post(webhooks::stripe).layer(axum::extract::DefaultBodyLimit::max(
                app::core::payments::webhooks::MAX_WEBHOOK_BYTES,
            )),
        )
        .route("/portal/login", get(sessions::login_link))
        .route("/portal/signout", post(sessions::sign_out))
        .route("/portal/usage.csv", get(portal::usage_csv))
        .route("/admin/usage.csv", get(portal::admin_usage_csv))
        .route("/admin/ledger.csv", get(portal::admin_ledger_csv))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .route("/api/{*fn_name}", post(server_fn_handler).get(server_fn_handler))
        .leptos_routes_with_context(&state, routes, provide, {
            let options = leptos_options.clone();
            move || app::shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(app::shell))
        .with_state(state)
        .nest("/v1", api::router(core.clone(), options.api.clone()))
        .nest("/proxy", proxy::router(core.clone(), options.proxy.clone()))
        .merge(simulated_provider(&options.proxy))
        .route_layer(axum::middleware::from_fn(metrics::route))
        .layer(axum::middleware::from_fn(server_fn_statuses))
        .layer(axum::middleware::from_fn(nul::refuse))
        .layer(axum::middleware::from_fn_with_state(
            Arc::<str>::from(options.api.public_url.as_str()),
            sessions::same_origin,
        ))
        .layer(axum::middleware::from_fn_with_state(
            health::InFlight::new(options.max_in_flight),
            health::in_flight,
        ))
        .layer(axum::middleware::from_fn_with_state(
            core.meters.clone(),
            metrics::time,
        ))
        .layer(
            tower_sessions::SessionManagerLayer::new(sessions::SessionDb::new(core.store.clone()))
                .with_name("tally_session")
                .with_http_only(true)
                .with_same_site(tower_sessions::cookie::SameSite::Lax)
                .with_secure(options.api.public_url.starts_with("https://"))
                .with_expiry(tower_sessions::Expiry::OnInactivity(time::Duration::hours(12))),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<Body>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// The simulated provider at `/simulated`, when test mode may use it (a provider without a
/// key); otherwise nothing.
fn simulated_provider(config: &proxy::ProxyConfig) -> Router {
    let needed = config.anthropic.api_key.is_none() || config.openai.api_key.is_none();
    if config.simulated_base.is_some() && needed {
        Router::new().nest(
            "/simulated",
            proxy::simulated::router(Arc::new(proxy::simulated::SimStats::default())),
        )
    } else {
        Router::new()
    }
}

async fn server_fn_handler(State(state): State<AppState>, req: Request<Body>) -> impl IntoResponse {
    let core = state.core.clone();
    leptos_axum::handle_server_fns_with_context(move || provide_context(core.clone()), req).await
}

/// Server functions answer every error with 500. A refusal (bad input, not allowed, not
/// found, a conflict) is the caller's, not ours: give it its own status, so clients can
/// tell them apart and the logs keep 500 for real failures. The body is unchanged.
async fn server_fn_statuses(req: Request<Body>, next: axum::middleware::Next) -> Response {
    let is_server_fn = req.uri().path().starts_with("/api/");
    let response = next.run(req).await;
    if !is_server_fn || response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Ok(e) = serde_json::from_slice::<app::error::AppError>(&bytes) {
        parts.status =
            StatusCode::from_u16(e.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// A running server: its address, and a way to stop it and wait until it has.
pub struct Running {
    pub addr: SocketAddr,
    /// The running core (tests inject faults and inspect state through it).
    pub core: Core,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, stops the workers.
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        self.task
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
    }
}

/// Starts a server on a free loopback port with the test options ([`Options::for_tests`],
/// changed by `adjust`), for the commands that drive one in process (`bench`, `demo`).
pub async fn start_on_loopback(
    store: &Store,
    adjust: impl FnOnce(&mut Options),
) -> std::io::Result<Running> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let mut options = Options::for_tests(listener.local_addr()?);
    adjust(&mut options);
    start(listener, store.clone(), Arc::new(SystemClock), &options).await
}

/// Binds and starts serving on `listener`; stops when `stop` resolves or [`Running::stop`]
/// is called.
pub async fn start(
    listener: TcpListener,
    store: Store,
    clock: Arc<dyn Clock>,
    options: &Options,
) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let payments = Payments::new(options.payments.clone())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let (meters, rendered) = metrics::recorder().map_err(std::io::Error::other)?;
    let core = Core::measured(store, clock, payments, meters)
        .with_mailing(notify::mailing(&options.mail, &options.api.public_url));
    let leading = workers::Leading::default();
    let app = router(core.clone(), options, addr, leading.clone(), rendered);
    let (shutdown, rx) = watch::channel(false);
    let mut workers = workers::spawn(core.clone(), options, leading, shutdown.subscribe());
    let mut notifier = notify::spawn(
        core.clone(),
        &options.mail,
        options.sweep_every,
        shutdown.subscribe(),
    )
    .map_err(std::io::Error::other)?;
    let grace = options.shutdown_grace;
    let task = tokio::spawn(async move {
        // Small writes (a streamed answer's events) go out at once: without TCP_NODELAY the
        // first chunk after the headers waits for the client's delayed ACK (about 40 ms).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let mut stopped = rx.clone();
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let mut rx = rx;
            let _ = rx.wait_for(|stop| *stop).await;
        });
        let serve = std::future::IntoFuture::into_future(serve);
        tokio::pin!(serve);
        // Serve until told to stop; then in-flight requests, the workers' current pass and
        // the notifier have `grace` together before they are cut off.
        tokio::select! {
            result = &mut serve => result,
            _ = async move { drop(stopped.wait_for(|stop| *stop).await) } => {
                let deadline = tokio::time::Instant::now() + grace;
                let result = match tokio::time::timeout_at(deadline, serve).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::warn!(?grace, "in-flight requests cut off at the end of the grace");
                        Ok(())
                    }
                };
                for (name, task) in [("workers", &mut workers), ("notifier", &mut notifier)] {
                    if tokio::time::timeout_at(deadline, &mut *task).await.is_err() {
                        tracing::warn!(?grace, "{name} cut off at the end of the grace");
                        task.abort();
                        let _ = task.await;
                    }
                }
                result
            }
        }
    });
    Ok(Running {
        addr,
        core,
        shutdown,
        task,
    })
}

/// `tally serve`: runs until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn serve(
    database_url: &str,
    stripe: &config::StripeConfig,
    cfg: &config::ServeConfig,
) -> Result<()> {
    let store = open_store_with(
        database_url,
        app::core::store::PoolSizes {
            readers: cfg.db_readers,
            writers: cfg.db_writers,
        },
    )
    .await?;
    let listener = TcpListener::bind(cfg.addr)
        .await
        .map_err(|e| Error::Unavailable(format!("cannot listen on {}: {e}", cfg.addr)))?;
    let public_url = cfg
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", cfg.addr));
    let options = Options {
        site_root: cfg.site_root.clone(),
        sweep_every: Duration::from_secs(cfg.sweep_seconds.max(1)),
        api: api::ApiConfig {
            rate_per_second: cfg.api_rate_per_second,
            public_url: public_url.clone(),
            idempotency_ttl: Duration::from_secs(cfg.idempotency_ttl_hours.max(1) * 3600),
        },
        payments: stripe.payments_config(&public_url),
        reconcile_every: Some(Duration::from_secs(cfg.reconcile_seconds.max(10))),
        proxy: cfg.proxy.config(&format!("http://{}", cfg.addr)),
        mail: notify::MailConfig {
            smtp_url: cfg.mail.smtp_url.clone().filter(|u| !u.trim().is_empty()),
            from: cfg.mail.email_from.clone(),
        },
        metrics_token: cfg
            .metrics_token
            .clone()
            .filter(|t| !t.is_empty())
            .map(metrics::Token::new),
        shutdown_grace: Duration::from_secs(cfg.shutdown_grace_seconds),
        max_in_flight: cfg.max_in_flight.max(1),
    };
    let running = start(listener, store.clone(), Arc::new(SystemClock), &options)
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    tracing::info!(addr = %running.addr, database = store.dialect().name(), "tally is listening on http://{}", running.addr);
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    running
        .stop()
        .await
        .map_err(|e| Error::internal(e.to_string()))?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

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
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
