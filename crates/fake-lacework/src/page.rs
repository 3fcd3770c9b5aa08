//! Builds AuditLogs response bodies by concatenating pre-serialized records.

use std::sync::Arc;

fn push_items(out: &mut String, items: &[Arc<str>]) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(item);
    }
}

fn body_len(items: &[Arc<str>]) -> usize {
    items.iter().map(|s| s.len() + 1).sum()
}

/// `{"data":[...]}` with no `paging` key: the DOCS AuditLogs sample for a one-page result.
pub(crate) fn data_only(items: &[Arc<str>]) -> String {
    let mut out = String::with_capacity(body_len(items) + 16);
    out.push_str("{\"data\":[");
    push_items(&mut out, items);
    out.push_str("]}");
    out
}

/// One page of a paged result; `next` is the absolute nextPage URL, `None` on the last page.
pub(crate) fn paged(items: &[Arc<str>], total_rows: usize, next: Option<&str>) -> String {
    let next = match next {
        Some(url) => serde_json::Value::from(url).to_string(),
        None => "null".to_owned(),
    };
    let mut out = String::with_capacity(body_len(items) + next.len() + 96);
    out.push_str("{\"paging\":{\"rows\":");
    out.push_str(&items.len().to_string());
    out.push_str(",\"totalRows\":");
    out.push_str(&total_rows.to_string());
    out.push_str(",\"urls\":{\"nextPage\":");
    out.push_str(&next);
    out.push_str("}},\"data\":[");
    push_items(&mut out, items);
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_valid_json_with_the_documented_shape() {
        let items: Vec<Arc<str>> = vec![Arc::from("{\"a\":1}"), Arc::from("{\"a\":2}")];
        assert_eq!(data_only(&items), r#"{"data":[{"a":1},{"a":2}]}"#);
        assert_eq!(data_only(&[]), r#"{"data":[]}"#);
        let p: serde_json::Value =
            serde_json::from_str(&paged(&items, 7, Some("http://x/y?a=\"b\""))).unwrap();
        assert_eq!(p["paging"]["rows"], 2);
        assert_eq!(p["paging"]["totalRows"], 7);
        assert_eq!(p["paging"]["urls"]["nextPage"], "http://x/y?a=\"b\"");
        let last: serde_json::Value = serde_json::from_str(&paged(&items, 7, None)).unwrap();
        assert!(last["paging"]["urls"]["nextPage"].is_null());
    }
}
