//! The proxy's own Kafka client connection to the upstream broker: one request at a time,
//! for the log reader's Fetch and Metadata requests.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::net::TcpStream;

use crate::error::Error;
use crate::frame::{read_frame, write_frame};

/// How long one request may wait for its answer. The proxy's reads let the broker wait at
/// most about 4 s (`log_reader`), so only a stopped or paused broker takes this long.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The `client_id` of the proxy's own requests, so they stand out in the broker's log.
const CLIENT_ID: &str = "kafka-txn-proxy";

/// A connection to the upstream broker.
pub struct Upstream {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl Upstream {
    pub async fn connect(addr: SocketAddr) -> Result<Upstream, Error> {
        let stream = tokio::time::timeout(CALL_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| Error::Timeout("connect"))??;
        stream.set_nodelay(true)?;
        Ok(Upstream {
            stream,
            next_correlation_id: 0,
        })
    }

    /// Sends `request` as `api_key` at `api_version` and decodes its answer.
    pub async fn call<Request: Encodable, Response: Decodable>(
        &mut self,
        api_key: ApiKey,
        api_version: i16,
        request: &Request,
    ) -> Result<Response, Error> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let mut header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(api_version)
            .with_correlation_id(correlation_id);
        header.client_id = Some(StrBytes::from_static_str(CLIENT_ID));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, api_key.request_header_version(api_version))
            .map_err(|e| Error::codec("request header encoding", e))?;
        request
            .encode(&mut body, api_version)
            .map_err(|e| Error::codec("request encoding", e))?;
        let exchange = async {
            write_frame(&mut self.stream, &body).await?;
            read_frame(&mut self.stream).await
        };
        let answer = tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| Error::Timeout("request"))??;
        let Some(mut answer) = answer else {
            return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
        };
        let header =
            ResponseHeader::decode(&mut answer, api_key.response_header_version(api_version))
                .map_err(|e| Error::codec("response header decoding", e))?;
        if header.correlation_id != correlation_id {
            return Err(Error::codec(
                "response header decoding",
                format!(
                    "correlation id {} answers request {correlation_id}",
                    header.correlation_id
                ),
            ));
        }
        Response::decode(&mut answer, api_version).map_err(|e| Error::codec("response decoding", e))
    }
}
