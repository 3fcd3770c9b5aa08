//! The proxy's lifecycle: bind a loopback listener, learn its address, then serve every
//! client that connects, until the proxy is dropped.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::connection::serve_connection;
use crate::log_reader::LogReader;

/// A running proxy in front of one upstream broker. Dropping it stops it: the listener closes
/// and every proxied connection is cut.
pub struct TxnProxy {
    local_addr: SocketAddr,
    accept_task: JoinHandle<()>,
}

/// A proxy whose listener is bound but which serves nobody yet.
///
/// The two steps exist because the broker must advertise the proxy's address (clients
/// reconnect to whatever Metadata and FindCoordinator name), so the address is needed to
/// start the broker, and the broker's address is needed to serve.
pub struct BoundProxy {
    listener: TcpListener,
}

impl TxnProxy {
    /// Binds a listener on `127.0.0.1:0`. There is no one-step start on purpose: the broker
    /// must be started in between, advertising [`BoundProxy::local_addr`].
    pub async fn bind() -> io::Result<BoundProxy> {
        Ok(BoundProxy {
            listener: TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for TxnProxy {
    fn drop(&mut self) {
        // The accept task owns the connection tasks' `JoinSet`, which aborts them when dropped.
        self.accept_task.abort();
    }
}

impl BoundProxy {
    /// Serves on a listener the caller bound.
    pub fn from_listener(listener: TcpListener) -> BoundProxy {
        BoundProxy { listener }
    }

    /// The address clients will connect to: what the broker must advertise.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Starts serving in front of `upstream` on the current tokio runtime.
    pub fn serve(self, upstream: SocketAddr) -> io::Result<TxnProxy> {
        let local_addr = self.listener.local_addr()?;
        let log_reader = Arc::new(LogReader::new(upstream));
        let accept_task = tokio::spawn(accept_loop(self.listener, upstream, log_reader));
        Ok(TxnProxy {
            local_addr,
            accept_task,
        })
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, log_reader: Arc<LogReader>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    let log_reader = Arc::clone(&log_reader);
                    connections.spawn(async move {
                        if let Err(error) = serve_connection(client, upstream, &log_reader).await {
                            tracing::warn!(%peer, %error, "Proxied connection closed on an error.");
                        }
                    });
                }
                Err(error) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(%error, "Accepting a connection failed.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reaps finished connections so the set does not grow for the proxy's lifetime.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
