//! Kafka framing: every request and every response is a 4-byte big-endian length followed by
//! that many bytes. A request starts with `api_key int16, api_version int16, correlation_id
//! int32`; a response starts with the `correlation_id int32` of its request.

use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame the proxy accepts. Far above any test's fetch size; a length beyond it
/// means the stream is not Kafka (or is out of step), and reading on would allocate garbage.
const MAX_FRAME_LEN: usize = 256 * 1024 * 1024;

/// The next frame's body, or `None` when the peer closed the connection between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<Option<Bytes>> {
    let mut length = [0u8; 4];
    // Only an end before the first byte is a clean close; one inside the length is a cut frame.
    if reader.read(&mut length[..1]).await? == 0 {
        return Ok(None);
    }
    reader.read_exact(&mut length[1..]).await?;
    let length = usize::try_from(i32::from_be_bytes(length))
        .ok()
        .filter(|length| *length <= MAX_FRAME_LEN)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad kafka frame length"))?;
    let mut body = BytesMut::zeroed(length);
    reader.read_exact(&mut body).await?;
    Ok(Some(body.freeze()))
}

/// Writes one frame: the length, then `body`.
pub async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, body: &[u8]) -> io::Result<()> {
    let length = i32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "kafka frame too long"))?;
    let mut framed = Vec::with_capacity(4 + body.len());
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(body);
    writer.write_all(&framed).await?;
    writer.flush().await
}

/// The fixed start of a request: what to match its response by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestStart {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

/// The start of a request body, or `None` if it is too short to be a request.
pub fn request_start(body: &[u8]) -> Option<RequestStart> {
    let start = body.get(..8)?;
    Some(RequestStart {
        api_key: i16::from_be_bytes([start[0], start[1]]),
        api_version: i16::from_be_bytes([start[2], start[3]]),
        correlation_id: i32::from_be_bytes([start[4], start[5], start[6], start[7]]),
    })
}

/// The correlation id a response body starts with, or `None` if it is too short.
pub fn response_correlation_id(body: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(body.get(..4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_eof_between_frames_is_clean() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"first").await.expect("write");
        write_frame(&mut wire, b"").await.expect("write");
        let mut reader = wire.as_slice();
        assert_eq!(
            read_frame(&mut reader).await.expect("read").as_deref(),
            Some(&b"first"[..])
        );
        assert_eq!(
            read_frame(&mut reader).await.expect("read").as_deref(),
            Some(&b""[..])
        );
        assert_eq!(read_frame(&mut reader).await.expect("read"), None);
    }

    #[tokio::test]
    async fn a_cut_frame_and_a_negative_length_are_errors() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"whole body").await.expect("write");
        wire.truncate(wire.len() - 1);
        assert!(read_frame(&mut wire.as_slice()).await.is_err());
        let negative = (-1i32).to_be_bytes();
        assert!(read_frame(&mut negative.as_slice()).await.is_err());
    }

    #[test]
    fn request_start_reads_key_version_and_correlation_id() {
        let body = [0, 1, 0, 16, 0, 0, 1, 2, 0xff];
        assert_eq!(
            request_start(&body),
            Some(RequestStart {
                api_key: 1,
                api_version: 16,
                correlation_id: 258,
            })
        );
        assert_eq!(request_start(&body[..7]), None);
        assert_eq!(response_correlation_id(&body), Some(0x0001_0010));
    }
}
