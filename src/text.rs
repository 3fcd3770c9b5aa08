//! Short excerpts of text received from elsewhere (an API's error body, a collector's reply), for
//! error messages that stay one readable line.

/// The trimmed text cut to `max_chars` characters with an ellipsis, or `(empty body)`.
pub fn excerpt(text: &str, max_chars: usize) -> String {
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_string();
    }
    let mut short: String = text.chars().take(max_chars).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_trimmed_and_cut() {
        assert_eq!(excerpt("  ok \n", 10), "ok");
        assert_eq!(excerpt("", 10), "(empty body)");
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("éèê", 3), "éèê");
    }
}
