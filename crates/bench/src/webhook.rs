//! A loopback webhook receiver that counts events (ndjson lines) and answers 200 at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;

#[derive(Default)]
struct Counters {
    events: AtomicU64,
    requests: AtomicU64,
}

/// The receiver; it runs on its own one-thread runtime until dropped.
pub struct Receiver {
    pub url: String,
    counters: Arc<Counters>,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    pub fn start() -> Result<Receiver> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("webhook-receiver")
            .enable_all()
            .build()
            .context("a tokio runtime for the webhook receiver")?;
        let counters = Arc::new(Counters::default());
        let app = Router::new()
            .fallback(receive)
            .layer(DefaultBodyLimit::disable())
            .with_state(Arc::clone(&counters));
        let listener = runtime.block_on(tokio::net::TcpListener::bind(SocketAddr::from((
            [127, 0, 0, 1],
            0,
        ))))?;
        let addr = listener.local_addr()?;
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver {
            url: format!("http://{addr}/events"),
            counters,
            _runtime: runtime,
        })
    }

    pub fn events(&self) -> u64 {
        self.counters.events.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::SeqCst)
    }
}

/// One ndjson batch: every non-empty line is an event.
async fn receive(State(counters): State<Arc<Counters>>, body: Bytes) -> StatusCode {
    let n = body
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .count() as u64;
    counters.events.fetch_add(n, Ordering::Relaxed);
    counters.requests.fetch_add(1, Ordering::Relaxed);
    StatusCode::OK
}
