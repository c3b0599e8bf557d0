//! JSONL dumps of tweets: one object per line, `{"id": ..., "text": "..." or "tokens": [...],
//! "image": "path" or null}`, optionally `"labels": [...]` (BIO tags, one per token) and `"caption":
//! "..."` (what the image shows). Blank lines are skipped; other fields are ignored.
use std::path::Path;

use serde_json::Value;

use super::{
    Diagnostic, ImageRef, Limits, ParsedFile, RawTweet, lines, stray_inside_warnings, utf8_message,
};
use crate::error::Result;
use crate::labels::Tag;
use crate::text::words::tweet_tokens;

pub fn read(path: &Path, limits: &Limits) -> Result<ParsedFile> {
    let mut out = ParsedFile::default();
    for line in lines(path, limits.max_record_bytes)? {
        let line = line?;
        let n = line.number;
        let reject = |record: Option<String>, message: String| Diagnostic {
            path: path.to_owned(),
            line: n,
            record,
            message,
        };
        if let Some(bytes) = line.too_long {
            out.rejected.push(reject(None, limits.too_long(bytes)));
            continue;
        }
        let text = match std::str::from_utf8(&line.bytes) {
            Ok(text) => text,
            Err(e) => {
                out.rejected.push(reject(None, utf8_message(&e)));
                continue;
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        match parse_record(text, n) {
            Ok(tweet) => {
                if let Some(labels) = &tweet.labels {
                    out.warnings
                        .extend(stray_inside_warnings(path, &tweet.id, labels, |_| n));
                }
                out.tweets.push(tweet);
            }
            Err((id, message)) => {
                let message = if line.terminated {
                    message
                } else {
                    format!("file is truncated: its last line is incomplete ({message})")
                };
                out.rejected.push(reject(id, message));
            }
        }
    }
    Ok(out)
}

/// Parses one record; an error carries the id when it could be read.
fn parse_record(text: &str, line: usize) -> Result<RawTweet, (Option<String>, String)> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| (None, format!("invalid JSON: {e}")))?;
    let Value::Object(record) = value else {
        return Err((None, "expected a JSON object per line".to_owned()));
    };
    let id = match record.get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err((
                None,
                "missing \"id\" (a non-empty string or a number)".to_owned(),
            ));
        }
    };
    let fail = |message: String| (Some(id.clone()), message);

    let tokens = match (record.get("tokens"), record.get("text")) {
        (Some(tokens), _) => string_list(tokens)
            .ok_or_else(|| fail("\"tokens\" must be a list of strings".into()))?,
        (None, Some(Value::String(text))) => tweet_tokens(text),
        (None, Some(_)) => return Err(fail("\"text\" must be a string".into())),
        (None, None) => return Err(fail("needs \"text\" or \"tokens\"".into())),
    };
    if tokens.is_empty() {
        return Err(fail("empty tweet: no tokens".into()));
    }
    if let Some(empty) = tokens.iter().position(|t| t.trim().is_empty()) {
        return Err(fail(format!("token {empty} is empty or blank")));
    }

    let labels = match record.get("labels") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let labels = string_list(value)
                .ok_or_else(|| fail("\"labels\" must be a list of strings".into()))?;
            if labels.len() != tokens.len() {
                return Err(fail(format!(
                    "{} labels for {} tokens",
                    labels.len(),
                    tokens.len()
                )));
            }
            let tags = labels
                .iter()
                .map(|l| l.parse::<Tag>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| fail(e.to_string()))?;
            Some(tags)
        }
    };

    let image = match record.get("image") {
        None | Some(Value::Null) => ImageRef::None,
        Some(Value::String(p)) if !p.trim().is_empty() => ImageRef::Path(p.clone()),
        Some(_) => return Err(fail("\"image\" must be a path or null".into())),
    };
    let caption = match record.get("caption") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) if !c.trim().is_empty() => Some(c.trim().to_owned()),
        Some(_) => {
            return Err(fail(
                "\"caption\" must be a non-empty string or null".into(),
            ));
        }
    };

    Ok(RawTweet {
        id,
        tokens,
        labels,
        image,
        caption,
        line,
    })
}

fn string_list(value: &Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_or_tokens() {
        let t = parse_record(r#"{"id": 7, "text": "Obama in Paris!", "image": null}"#, 1).unwrap();
        assert_eq!(t.id, "7");
        assert_eq!(t.tokens, vec!["Obama", "in", "Paris", "!"]);
        assert_eq!(t.image, ImageRef::None);
        let t = parse_record(
            r#"{"id": "a", "tokens": ["x"], "image": "a.jpg", "labels": ["B-OTHER"]}"#,
            1,
        )
        .unwrap();
        assert_eq!(t.image, ImageRef::Path("a.jpg".into()));
        assert_eq!(t.labels.unwrap()[0].to_string(), "B-MISC");
    }

    #[test]
    fn bad_records_say_why() {
        let err = |s: &str| parse_record(s, 1).unwrap_err().1;
        assert!(err(r#"{"id": 1, "text": "a""#).starts_with("invalid JSON"));
        assert!(err(r#"{"text": "a"}"#).contains("missing \"id\""));
        assert!(err(r#"{"id": 1}"#).contains("needs \"text\" or \"tokens\""));
        assert!(err(r#"{"id": 1, "text": "  "}"#).contains("empty tweet"));
        assert!(
            err(r#"{"id": 1, "tokens": ["a"], "labels": ["O", "O"]}"#)
                .contains("2 labels for 1 tokens")
        );
        assert!(
            err(r#"{"id": 1, "tokens": ["a"], "labels": ["B-XYZ"]}"#).contains("unknown label")
        );
    }

    #[test]
    fn a_caption_is_read_and_checked() {
        let t = parse_record(r#"{"id": 1, "text": "a", "caption": " a dog "}"#, 1).unwrap();
        assert_eq!(t.caption.as_deref(), Some("a dog"));
        let err = parse_record(r#"{"id": 1, "text": "a", "caption": 3}"#, 1).unwrap_err();
        assert!(err.1.contains("\"caption\" must be"), "{}", err.1);
    }

    fn read_text(content: &[u8], limits: &Limits) -> ParsedFile {
        use std::io::Write;
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(content).unwrap();
        read(file.path(), limits).unwrap()
    }

    #[test]
    fn a_byte_order_mark_at_the_start_is_accepted() {
        let parsed = read_text(
            b"\xEF\xBB\xBF{\"id\": 1, \"text\": \"a\"}\n",
            &Limits::default(),
        );
        assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
        assert_eq!(parsed.tweets.len(), 1);
    }

    #[test]
    fn a_line_over_the_size_limit_is_rejected_without_being_read_whole() {
        let limits = Limits {
            max_record_bytes: 64,
        };
        let mut content = format!("{{\"id\": 1, \"text\": \"{}\"}}\n", "a ".repeat(10_000));
        content.push_str("{\"id\": 2, \"text\": \"b\"}\n");
        let parsed = read_text(content.as_bytes(), &limits);
        assert_eq!(parsed.tweets.len(), 1);
        assert_eq!(parsed.tweets[0].id, "2");
        assert_eq!(parsed.tweets[0].line, 2);
        assert_eq!(parsed.rejected.len(), 1);
        assert_eq!(parsed.rejected[0].line, 1);
        assert_eq!(
            parsed.rejected[0].message,
            "record too long: 67 bytes or more, over the limit of 64 (--max-record-bytes, MAX_RECORD_BYTES=)"
        );
    }
}
