//! The text side against PyTorch / HF transformers on the same weights (the reference scripts run in
//! `.venv-ref`, see setup/README.md), the chunker, and memoised text features.
use std::path::{Path, PathBuf};
use std::process::Command;

use pipeline::dataset::Dataset;
use pipeline::stages::ingest::OnError;
use pipeline::text::encoder::{EncoderFiles, TextEncoder, default_files};
use pipeline::text::tokenize::is_url;
use serde_json::json;
use tch::{Device, Tensor};

use crate::common;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn encoder_files() -> EncoderFiles {
    default_files(&repo().join("models"))
}

/// Runs a reference script with the reference venv's Python.
fn reference(script: &str, args: &[&str]) {
    let python = repo().join(".venv-ref/bin/python");
    assert!(
        python.is_file(),
        "{} missing: run `make setup-reference` (make test does)",
        python.display()
    );
    let out = Command::new(python)
        .arg(repo().join("scripts/reference").join(script))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first `n` tweets of a Twitter-2017 split, as words.
fn real_tweets(split: pipeline::schema::Split, n: usize) -> Vec<Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let dataset = Dataset::resolve("twitter2017", Some(&common::data_dir()), None).unwrap();
    let (_, tweets) = common::ingest(dir.path(), &dataset, OnError::Fail).unwrap();
    tweets
        .into_iter()
        .filter(|t| t.split == split)
        .take(n)
        .map(|t| t.tokens)
        .collect()
}

#[test]
fn encoder_matches_pytorch_on_real_tweets() {
    let encoder = TextEncoder::load(&encoder_files(), Device::Cpu).unwrap();
    let mut tweets = real_tweets(pipeline::schema::Split::Test, 60);
    // Odd words too: a lone no-break space, an emoji, a mention, a hashtag, a URL.
    tweets.push(
        [
            "RT",
            "@nytimes",
            ":",
            "\u{a0}",
            "Obama",
            "😂",
            "#NBA",
            "http://t.co/Z3neVBQ7vF",
        ]
        .map(String::from)
        .to_vec(),
    );
    let sequences: Vec<Vec<u32>> = tweets
        .iter()
        .map(|t| encoder.pieces.tweet(t).unwrap().ids)
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let ids = dir.path().join("ids.json");
    std::fs::write(&ids, json!({ "input_ids": sequences }).to_string()).unwrap();
    let out = dir.path().join("states.safetensors");
    let model = encoder_files().dir;
    reference(
        "bert_states.py",
        &[
            "--model",
            model.to_str().unwrap(),
            "--input",
            ids.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
    );
    let expected: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&out)
        .unwrap()
        .into_iter()
        .collect();

    // Batched with padding (the pipeline's path), so masking is checked as well.
    let ours = encoder.piece_states(&sequences, 16);
    let mut worst = 0f64;
    for (i, states) in ours.iter().enumerate() {
        let reference = &expected[&format!("states.{i}")];
        assert_eq!(states.size(), reference.size(), "sequence {i}");
        let diff = (states - reference).abs().max().double_value(&[]);
        worst = worst.max(diff);
    }
    eprintln!("max abs difference over {} tweets: {worst:e}", ours.len());
    assert!(worst < 1e-4, "max abs difference {worst}");
}

#[test]
fn word_pieces_match_hf_tokenizer() {
    let encoder = TextEncoder::load(&encoder_files(), Device::Cpu).unwrap();
    let tweets = real_tweets(pipeline::schema::Split::Dev, 200);
    // HF sees what we feed the model: URLs as the word "url".
    let words: Vec<Vec<String>> = tweets
        .iter()
        .map(|t| {
            t.iter()
                .map(|w| {
                    if is_url(w) {
                        "url".to_owned()
                    } else {
                        w.clone()
                    }
                })
                .collect()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("words.json");
    std::fs::write(&input, json!({ "words": words }).to_string()).unwrap();
    let out = dir.path().join("tok.json");
    let model = encoder_files().dir;
    reference(
        "bert_states.py",
        &[
            "--model",
            model.to_str().unwrap(),
            "--tokenize",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
    );
    let hf: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();

    let mut compared = 0;
    for (i, tweet) in tweets.iter().enumerate() {
        let hf_ids: Vec<u32> = serde_json::from_value(hf["input_ids"][i].clone()).unwrap();
        let hf_words: Vec<Option<usize>> =
            serde_json::from_value(hf["word_ids"][i].clone()).unwrap();
        let hf_starts: Vec<u32> = (0..tweet.len())
            .filter_map(|w| {
                hf_words
                    .iter()
                    .position(|x| *x == Some(w))
                    .map(|p| p as u32)
            })
            .collect();
        if hf_starts.len() < tweet.len() {
            continue; // HF drops a word the normaliser erases; we keep it as [UNK] (see below)
        }
        let ours = encoder.pieces.tweet(tweet).unwrap();
        assert_eq!(ours.ids, hf_ids, "tweet {i}: {tweet:?}");
        assert_eq!(ours.word_starts, hf_starts, "tweet {i}");
        compared += 1;
    }
    assert!(compared >= 190, "only {compared} tweets compared");
    // A word HF erases (a lone no-break space) still gets a piece from us, so alignment holds.
    let nbsp = encoder.pieces.tweet(&["a", "\u{a0}", "b"]).unwrap();
    assert_eq!(nbsp.word_starts, vec![1, 2, 3]);
    assert_eq!(nbsp.ids[2], 100, "[UNK]");
}
