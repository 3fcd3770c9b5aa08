//! The telemetry listener: Prometheus text on `/metrics`; `/livez`, which fails only when the
//! poll loop hangs (a restart may help); `/readyz`, which fails when the checkpoint lags more
//! than the configured threshold or a sink is down (a restart cannot help: an outage is
//! retried); `/healthz`, the older name of `/readyz`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::service::Progress;

/// When `/readyz` and `/livez` report a problem.
#[derive(Debug, Clone, Copy)]
pub struct HealthPolicy {
    /// Largest acceptable lag of the live checkpoint behind now (`/readyz`).
    pub max_lag: Duration,
    /// How long the loop may go without progress or a retry before it counts as stuck
    /// (`/livez`).
    pub stuck_after: Duration,
}

#[derive(Clone)]
struct AppState {
    progress: Progress,
    policy: HealthPolicy,
}

/// Binds `address` (failing now if it cannot) and serves until `shutdown`.
pub async fn serve(
    address: SocketAddr,
    progress: Progress,
    policy: HealthPolicy,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/healthz", get(readyz))
        .with_state(AppState { progress, policy });
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(error = %error, "Telemetry listener failed.");
        }
    });
    tracing::info!(address = %bound, "Serving /metrics, /livez and /readyz.");
    Ok(bound)
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    crate::metrics::emit::build_info(
        crate::build_info::VERSION,
        crate::build_info::REVISION,
        crate::build_info::RUSTC,
    );
    if let Some(cursor) = state.progress.cursor_ms() {
        crate::metrics::emit::live_cursor_lag((crate::time::now_ms() - cursor) as f64 / 1000.0);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::global().render(),
    )
}

async fn livez(State(state): State<AppState>) -> impl IntoResponse {
    let alive = state.progress.is_alive(state.policy.stuck_after);
    let body = json!({
        "status": if alive { "ok" } else { "stuck" },
        "stuck_after_seconds": state.policy.stuck_after.as_secs(),
        "reason": (!alive).then(|| format!(
            "the poll loop has neither progressed nor retried for more than {}",
            humantime::format_duration(state.policy.stuck_after)
        )),
    });
    answer(alive, body)
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let lag = state.progress.lag();
    let cursor = state
        .progress
        .cursor_ms()
        .and_then(crate::time::format_time_ms);
    let lagging = lag > state.policy.max_lag;
    let sinks_down = crate::metrics::global().series_at("lae_sink_up", 0.0, "sink");
    let mut reasons = Vec::new();
    if lagging {
        reasons.push(format!(
            "the checkpoint lags {} behind now (more than {})",
            humantime::format_duration(Duration::from_secs(lag.as_secs())),
            humantime::format_duration(state.policy.max_lag)
        ));
    }
    if !sinks_down.is_empty() {
        reasons.push(format!("sinks down: {}", sinks_down.join(", ")));
    }
    let ready = reasons.is_empty();
    let body = json!({
        "status": if ready { "ok" } else { "unhealthy" },
        "cursor": cursor,
        "lag_seconds": lag.as_secs(),
        "max_lag_seconds": state.policy.max_lag.as_secs(),
        "sinks_down": sinks_down,
        "reason": (!ready).then(|| reasons.join("; ")),
    });
    answer(ready, body)
}

fn answer(healthy: bool, body: serde_json::Value) -> impl IntoResponse {
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}
