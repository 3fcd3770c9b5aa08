//! The telemetry listener: Prometheus text on `/metrics`, and `/healthz`, which turns
//! unhealthy when the live checkpoint lags more than the configured threshold.

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

/// When `/healthz` reports unhealthy.
#[derive(Debug, Clone, Copy)]
pub struct HealthPolicy {
    /// Largest acceptable lag of the live checkpoint behind now.
    pub max_lag: Duration,
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
        .route("/healthz", get(healthz))
        .with_state(AppState { progress, policy });
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(error = %error, "Telemetry listener failed.");
        }
    });
    tracing::info!(address = %bound, "Serving /metrics and /healthz.");
    Ok(bound)
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    crate::metrics::emit::build_info(env!("CARGO_PKG_VERSION"));
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

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let lag = state.progress.lag();
    let cursor = state
        .progress
        .cursor_ms()
        .and_then(crate::time::format_time_ms);
    let healthy = lag <= state.policy.max_lag;
    let body = json!({
        "status": if healthy { "ok" } else { "unhealthy" },
        "cursor": cursor,
        "lag_seconds": lag.as_secs(),
        "max_lag_seconds": state.policy.max_lag.as_secs(),
        "reason": (!healthy).then(|| format!(
            "the checkpoint lags {} behind now (more than {})",
            humantime::format_duration(Duration::from_secs(lag.as_secs())),
            humantime::format_duration(state.policy.max_lag)
        )),
    });
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
