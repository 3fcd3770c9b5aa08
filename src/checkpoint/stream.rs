//! Stream keys: the names cursors and delivered ids are kept under, so that one state file
//! never mixes the cursors of two accounts, scopes or replays.

use url::Url;

/// The key of the live walk for this API origin and scope, e.g. `live:acme.lacework.net`,
/// `live:acme.lacework.net/acme-sub1` or `live:acme.lacework.net+org`.
pub(crate) fn live_stream_key(origin: &Url, sub_account: Option<&str>, org_access: bool) -> String {
    let mut key = format!("live:{}", origin.host_str().unwrap_or("unknown"));
    if let Some(port) = origin.port() {
        key.push_str(&format!(":{port}"));
    }
    if let Some(sub_account) = sub_account {
        key.push('/');
        key.push_str(&sub_account.to_ascii_lowercase());
    }
    if org_access {
        key.push_str("+org");
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys_separate_accounts_and_scopes() {
        let origin = Url::parse("https://acme.lacework.net").unwrap();
        assert_eq!(
            live_stream_key(&origin, None, false),
            "live:acme.lacework.net"
        );
        assert_eq!(
            live_stream_key(&origin, Some("ACME-Sub1"), false),
            "live:acme.lacework.net/acme-sub1"
        );
        assert_eq!(
            live_stream_key(&origin, None, true),
            "live:acme.lacework.net+org"
        );
        let local = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(live_stream_key(&local, None, false), "live:127.0.0.1:8080");
    }
}
