//! Splits raw tweet text into tokens the way the Twitter-2015/2017 data is tokenised: whitespace
//! separates tokens, punctuation at a word's edges is split off, and URLs, @mentions, #hashtags and
//! words with inner punctuation (don't, U.S.) stay whole.

/// Tokens of a raw tweet.
pub fn tweet_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for chunk in text.split_whitespace() {
        if is_url(chunk) {
            out.push(chunk.to_owned());
            continue;
        }
        let chars: Vec<char> = chunk.chars().collect();
        // Leading punctuation, except the sigils of mentions and hashtags.
        let mut start = 0;
        while start < chars.len() && is_edge_punct(chars[start]) && !is_sigil_at(&chars, start) {
            out.push(chars[start].to_string());
            start += 1;
        }
        let mut end = chars.len();
        while end > start && is_edge_punct(chars[end - 1]) {
            end -= 1;
        }
        if start < end {
            out.push(chars[start..end].iter().collect());
        }
        out.extend(chars[end..].iter().map(char::to_string));
    }
    out
}

/// URLs as tweets write them (t.co links, www.).
pub fn is_url(chunk: &str) -> bool {
    let lower = chunk.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("www.")
}

fn is_sigil_at(chars: &[char], i: usize) -> bool {
    matches!(chars[i], '@' | '#')
        && chars
            .get(i + 1)
            .is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

fn is_edge_punct(c: char) -> bool {
    (c.is_ascii_punctuation() && c != '_') || matches!(c, '“' | '”' | '‘' | '’' | '…' | '«' | '»')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_the_dataset() {
        assert_eq!(
            tweet_tokens(
                "RT @JayKenMinaj_: Me outside of where George Zimmerman got shot at. http://t.co/Z3ne"
            ),
            vec![
                "RT",
                "@JayKenMinaj_",
                ":",
                "Me",
                "outside",
                "of",
                "where",
                "George",
                "Zimmerman",
                "got",
                "shot",
                "at",
                ".",
                "http://t.co/Z3ne"
            ]
        );
        assert_eq!(
            tweet_tokens("#NBA (don't)!"),
            vec!["#NBA", "(", "don't", ")", "!"]
        );
        assert_eq!(tweet_tokens("  "), Vec::<String>::new());
        assert_eq!(tweet_tokens("🔥🔥 ok"), vec!["🔥🔥", "ok"]);
    }
}
