//! One proxied client connection: its own upstream connection, requests passed on as they
//! come, answers passed back in the order the broker sends them, the READ_COMMITTED ones
//! corrected on the way.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};

use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::error::Error;
use crate::frame::{read_frame, request_start, response_correlation_id, write_frame};
use crate::log_reader::LogReader;
use crate::rewrite::{Pending, inspect_request, rewrite_response};

/// Proxies `client` to a new connection to `upstream` until either side closes.
pub async fn serve_connection(
    client: TcpStream,
    upstream: SocketAddr,
    log_reader: &LogReader,
) -> Result<(), Error> {
    let upstream = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    upstream.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    // Requests whose answers are rewritten, by correlation id. Matching by id rather than by
    // position is what lets every other request pass unparsed: a Produce with `acks = 0`
    // gets no answer at all, so a queue of all requests would fall out of step.
    let pending = Mutex::new(HashMap::new());
    tokio::select! {
        result = forward_requests(client_read, upstream_write, &pending) => result,
        result = forward_responses(upstream_read, client_write, &pending, log_reader) => result,
    }
}

async fn forward_requests(
    mut client: OwnedReadHalf,
    mut upstream: OwnedWriteHalf,
    pending: &Mutex<HashMap<i32, Pending>>,
) -> Result<(), Error> {
    while let Some(body) = read_frame(&mut client).await? {
        let Some(start) = request_start(&body) else {
            return Err(Error::codec("request", "a request shorter than its header"));
        };
        // Recorded before the request leaves, so its answer cannot overtake the record.
        if let Some(rewrite) = inspect_request(start, &body)? {
            pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(start.correlation_id, rewrite);
        }
        write_frame(&mut upstream, &body).await?;
    }
    Ok(())
}

async fn forward_responses(
    mut upstream: OwnedReadHalf,
    mut client: OwnedWriteHalf,
    pending: &Mutex<HashMap<i32, Pending>>,
    log_reader: &LogReader,
) -> Result<(), Error> {
    while let Some(body) = read_frame(&mut upstream).await? {
        let Some(correlation_id) = response_correlation_id(&body) else {
            return Err(Error::codec(
                "response",
                "a response shorter than its header",
            ));
        };
        let rewrite = pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&correlation_id);
        let body = match rewrite {
            Some(rewrite) => rewrite_response(&rewrite, body, log_reader).await?,
            None => body,
        };
        write_frame(&mut client, &body).await?;
    }
    Ok(())
}
