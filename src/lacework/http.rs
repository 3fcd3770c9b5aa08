//! HTTP helpers every Lacework endpoint shares: reading a body, labelling a request that got
//! no answer, and reading Lacework's error message out of a body.

use crate::lacework::Error;

/// A metric label for a request that got no HTTP answer.
pub(crate) fn transport_label(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect_error"
    } else {
        "transport_error"
    }
}

/// Reads a whole body; a connection that breaks mid-body is a transport error (retryable).
pub(crate) async fn read_body(
    response: reqwest::Response,
    endpoint: &str,
) -> Result<bytes::Bytes, Error> {
    response.bytes().await.map_err(|source| Error::Transport {
        endpoint: endpoint.to_string(),
        source,
    })
}

/// Lacework's error `message` (also the legacy `data.message` shapes), or the body's start.
pub(crate) fn api_message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let candidates = [
            value.get("message"),
            value.pointer("/data/message"),
            value.pointer("/data/statusMessage"),
            value.pointer("/data/ErrorMsg"),
        ];
        if let Some(message) = candidates.into_iter().flatten().find_map(|m| m.as_str()) {
            return message.to_string();
        }
    }
    crate::text::excerpt(&String::from_utf8_lossy(body), 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_message_reads_every_known_shape() {
        assert_eq!(
            api_message(br#"{"message":"Invalid Date"}"#),
            "Invalid Date"
        );
        assert_eq!(
            api_message(br#"{"ok":false,"data":{"statusMessage":"nope"}}"#),
            "nope"
        );
        assert_eq!(
            api_message(b"<html>502 Bad Gateway</html>"),
            "<html>502 Bad Gateway</html>"
        );
        assert_eq!(api_message(b""), "(empty body)");
    }
}
