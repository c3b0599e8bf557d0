//! Helpers shared by the fuzz targets.
use std::path::PathBuf;

use umgf_core::io::{Limits, ParsedFile};

/// A record limit small enough for the fuzzer's inputs (a few KB) to cross it: the readers' path for
/// over-long lines is fuzzed too.
pub const LIMITS: Limits = Limits {
    max_record_bytes: 512,
};

/// The readers take a path (they stream lines and name the file in diagnostics), so each input is
/// written to a per-process scratch file first.
pub fn input_file(kind: &str, data: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("umgf-fuzz-{}-{kind}", std::process::id()));
    std::fs::write(&path, data).expect("write the fuzz input");
    path
}

/// What every reader promises about the tweets it keeps and the records it rejects. Tokens are never
/// empty; `blank_tokens` says whether a reader may keep a token of whitespace: the CoNLL reader must
/// (Twitter-2015's valid.txt has a token that is one no-break space), the JSONL reader refuses them.
pub fn check_tweets(parsed: &ParsedFile, blank_tokens: bool) {
    for tweet in &parsed.tweets {
        assert!(!tweet.id.is_empty(), "a tweet without id: {tweet:?}");
        assert!(
            !tweet.tokens.is_empty(),
            "a tweet without tokens: {tweet:?}"
        );
        assert!(
            tweet
                .tokens
                .iter()
                .all(|t| !t.is_empty() && (blank_tokens || !t.trim().is_empty())),
            "an empty token: {tweet:?}"
        );
        if let Some(labels) = &tweet.labels {
            assert_eq!(labels.len(), tweet.tokens.len(), "{tweet:?}");
        }
        assert!(tweet.line >= 1);
    }
    for d in parsed.rejected.iter().chain(&parsed.warnings) {
        assert!(d.line >= 1 && !d.message.is_empty(), "{d:?}");
    }
}
