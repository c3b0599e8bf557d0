//! The text side against PyTorch / HF transformers on the same weights (the reference scripts run in
//! `.venv-ref`, see setup/README.md), the chunker, and memoised text features.
use std::path::{Path, PathBuf};

use serde_json::json;
use tch::{Device, Tensor};
use umgf::schema::{Artifact, NounPhrase, PhraseSource, Split, TextFeatures, Tweet};
use umgf::text::encoder::{EncoderFiles, Precision, TextEncoder, default_files};

use crate::common::{self, real_tweets, repo};

fn encoder_files() -> EncoderFiles {
    default_files(&repo().join("models"))
}

/// Runs `bert_states.py` (see [`common::run_encoder_reference`]).
fn run_bert_reference(dir: &Path, mode: &str, input: serde_json::Value, output: &str) -> PathBuf {
    let model = encoder_files().dir;
    common::run_encoder_reference("bert_states.py", &model, dir, (mode, input), output, &[])
}

#[test]
fn encoder_matches_pytorch_on_real_tweets() {
    let encoder = TextEncoder::load(&encoder_files(), Device::Cpu).unwrap();
    let mut tweets = real_tweets(Split::Test, 60);
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
    let out = run_bert_reference(
        dir.path(),
        "--input",
        json!({ "input_ids": sequences }),
        "states.safetensors",
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

/// A tweet with its caption after it (`--text-context caption`): the pair's pieces and BERT token
/// types are HF's own pair encoding, and the states equal HF's given those token types; a caption too
/// long for the room left is cut, and a tweet that fills the encoder alone is encoded alone.
#[test]
fn caption_pairs_match_hf_pieces_token_types_and_states() {
    let encoder = TextEncoder::load(&encoder_files(), Device::Cpu).unwrap();
    let pairs = common::real_captioned_tweets(Split::Dev, 40);
    let words: Vec<Vec<String>> = pairs
        .iter()
        .map(|(t, _)| common::encoder_words(t))
        .collect();
    let captions: Vec<&str> = pairs.iter().map(|(_, c)| c.as_str()).collect();
    let dir = tempfile::tempdir().unwrap();
    let tok = run_bert_reference(
        dir.path(),
        "--tokenize",
        json!({ "words": words, "contexts": captions }),
        "tok.json",
    );
    let hf: serde_json::Value = serde_json::from_slice(&std::fs::read(tok).unwrap()).unwrap();
    let hf_ids: Vec<Vec<u32>> = serde_json::from_value(hf["pair_ids"].clone()).unwrap();
    let hf_types: Vec<Vec<i64>> = serde_json::from_value(hf["pair_types"].clone()).unwrap();
    let erased = erases_a_word(&hf);

    let (mut ours, mut theirs, mut types) = (Vec::new(), Vec::new(), Vec::new());
    for (i, ((tweet, caption), hf_ids)) in pairs.iter().zip(&hf_ids).enumerate() {
        if erased[i] {
            continue; // HF drops a word its normaliser erases; we keep it as [UNK] (tested apart)
        }
        let (pieces, tweet_end) = encoder.pieces.tweet_with_context(tweet, caption).unwrap();
        assert!(hf_ids.len() <= 128, "tweet {i}: every dev pair fits");
        assert_eq!(&pieces.ids, hf_ids, "tweet {i}: {tweet:?} + {caption:?}");
        assert_eq!(pieces.ids[tweet_end], encoder.pieces.sep_id(), "tweet {i}");
        assert_eq!(
            hf_types[i][tweet_end + 1],
            1,
            "tweet {i}: the caption is segment 2"
        );
        assert_eq!(
            pieces.word_starts,
            encoder.pieces.tweet(tweet).unwrap().word_starts
        );
        ours.push(pieces.ids);
        theirs.push(hf_ids.clone());
        types.push(hf_types[i].clone());
    }
    assert!(ours.len() >= 30, "only {} pairs compared", ours.len());
    let out = run_bert_reference(
        dir.path(),
        "--input",
        json!({ "input_ids": theirs, "token_type_ids": types }),
        "states.safetensors",
    );
    let expected: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&out)
        .unwrap()
        .into_iter()
        .collect();
    let mut worst = 0f64;
    for (i, states) in encoder.piece_states(&ours, 16).iter().enumerate() {
        let diff = (states - &expected[&format!("states.{i}")])
            .abs()
            .max()
            .double_value(&[]);
        worst = worst.max(diff);
    }
    eprintln!(
        "caption pairs: max abs difference over {} pairs: {worst:e}",
        ours.len()
    );
    assert!(worst < 1e-4, "max abs difference {worst}");

    // 120 one-piece words leave room for 5 caption pieces; 127 leave none.
    let long: Vec<String> = vec!["the".to_owned(); 120];
    let caption = "a man is standing on a skateboard in the snow";
    let (pieces, tweet_end) = encoder.pieces.tweet_with_context(&long, caption).unwrap();
    assert_eq!((pieces.ids.len(), tweet_end), (128, 121));
    assert_eq!(
        pieces.ids[122..127],
        encoder.pieces.text(caption).unwrap()[..5]
    );
    let full: Vec<String> = vec!["the".to_owned(); 127];
    let (pieces, _) = encoder.pieces.tweet_with_context(&full, caption).unwrap();
    assert_eq!(pieces, encoder.pieces.tweet(&full).unwrap());
}

/// For each tweet of a reference tokenizer output, whether HF's normaliser erased one of its words
/// (its pieces are empty).
fn erases_a_word(hf: &serde_json::Value) -> Vec<bool> {
    let pieces: Vec<Vec<Vec<u32>>> = serde_json::from_value(hf["word_pieces"].clone()).unwrap();
    pieces.iter().map(|t| t.iter().any(Vec::is_empty)).collect()
}

/// A tweet's states are the same bits whichever tweets share its batches: what lets shards, an
/// incremental dump and a single process store identical features (see `run_batched`).
#[test]
fn encoder_states_do_not_depend_on_the_batch() {
    let encoder = TextEncoder::load_for_inference(&encoder_files(), Device::Cpu).unwrap();
    let tweets = real_tweets(Split::Dev, 150);
    let sequences: Vec<Vec<u32>> = tweets
        .iter()
        .map(|t| encoder.pieces.tweet(t).unwrap().ids)
        .collect();
    let all = encoder.piece_states(&sequences, 32);
    // Every third tweet, last first: other batch peers, other rows, other partial batches.
    let picked: Vec<usize> = (0..sequences.len()).step_by(3).rev().collect();
    let subset: Vec<Vec<u32>> = picked.iter().map(|&i| sequences[i].clone()).collect();
    for (states, &i) in encoder.piece_states(&subset, 32).iter().zip(&picked) {
        assert!(
            states.equal(&all[i]),
            "tweet {i}: states differ with other batch peers"
        );
    }
    // Alone: a batch of one.
    for i in [0, 7, 77] {
        let alone = encoder.piece_states(&sequences[i..=i], 32);
        assert!(
            alone[0].equal(&all[i]),
            "tweet {i}: states differ in a batch of one"
        );
    }
}

#[test]
fn word_pieces_match_hf_tokenizer() {
    let encoder = TextEncoder::load(&encoder_files(), Device::Cpu).unwrap();
    let tweets = real_tweets(Split::Dev, 200);
    let hf = common::hf_word_pieces("bert_states.py", &encoder_files().dir, &tweets);

    let mut compared = 0;
    for (i, (tweet, hf)) in tweets.iter().zip(&hf).enumerate() {
        let Some(hf_starts) = &hf.word_starts else {
            continue; // HF drops a word the normaliser erases; we keep it as [UNK] (see below)
        };
        let ours = encoder.pieces.tweet(tweet).unwrap();
        assert_eq!(ours.ids, hf.ids, "tweet {i}: {tweet:?}");
        assert_eq!(&ours.word_starts, hf_starts, "tweet {i}");
        compared += 1;
    }
    assert!(compared >= 190, "only {compared} tweets compared");
    // A word HF erases (a lone no-break space) still gets a piece from us, so alignment holds.
    let nbsp = encoder.pieces.tweet(&["a", "\u{a0}", "b"]).unwrap();
    assert_eq!(nbsp.word_starts, vec![1, 2, 3]);
    assert_eq!(nbsp.ids[2], 100, "[UNK]");
}

/// Writes the first `n` tweets (blank-line separated records) of a CoNLL file, plus `extra` records of
/// another, as one dump.
fn conll_dump(dir: &Path, name: &str, parts: &[(&Path, std::ops::Range<usize>)]) -> PathBuf {
    let mut out = String::new();
    for (path, range) in parts {
        let text = std::fs::read_to_string(path).unwrap();
        for record in text
            .split("\n\n")
            .filter(|r| !r.trim().is_empty())
            .skip(range.start)
            .take(range.len())
        {
            out.push_str(record.trim_matches('\n'));
            out.push_str("\n\n");
        }
    }
    let path = dir.join(name);
    std::fs::write(&path, out).unwrap();
    path
}

/// Ingests a dump into `store` and returns the tweets blob's digest.
#[test]
fn features_of_a_grown_dump_encode_only_the_new_tweets() {
    use umgf::stages::text_features;
    let dir = tempfile::tempdir().unwrap();
    let store = umgf::store::Store::open(dir.path().join("store")).unwrap();
    let data = common::data_dir().join("twitter2017");
    let (train, dev) = (data.join("train.txt"), data.join("valid.txt"));

    let old = conll_dump(dir.path(), "old.txt", &[(&train, 0..3373)]);
    // The last layer only in the artifact.
    let last = text_features::TextFeatureParams {
        layers: "last".parse().unwrap(),
        ..Default::default()
    };
    let old_tweets = common::ingest_dump(&store, &old);
    let first = common::text_features(&store, old_tweets, &last);
    // Every distinct text encoded once (a text met again in a later part is found in the memo).
    let distinct_texts = |tweets: &umgf::Digest| {
        Tweet::read(&store.blob_path(tweets))
            .unwrap()
            .iter()
            .map(|t| t.text_digest)
            .collect::<std::collections::HashSet<_>>()
    };
    assert_eq!(
        first.manifest.counts["memo_computed"],
        distinct_texts(&old_tweets).len() as u64
    );

    // Twitter-2017 train plus 10% new tweets (from dev).
    let grown = conll_dump(
        dir.path(),
        "grown.txt",
        &[(&train, 0..3373), (&dev, 0..337)],
    );
    let tweets = common::ingest_dump(&store, &grown);
    let started = std::time::Instant::now();
    let second = common::text_features(&store, tweets, &last);
    eprintln!(
        "grown dump: {:.2} s, first run {:.2} s",
        started.elapsed().as_secs_f64(),
        first.manifest.seconds
    );
    let rows = TextFeatures::read(
        &store.blob_path(
            &second
                .manifest
                .output(text_features::TEXT_FEATURES)
                .unwrap()
                .digest,
        ),
    )
    .unwrap();
    assert_eq!(rows.len(), 3373 + 337);
    let counts = &second.manifest.counts;
    let computed = counts["memo_computed"].as_u64().unwrap();
    let reused = counts["memo_reused"].as_u64().unwrap();
    // Tweets whose text already occurs in train are reused too: at most the 337 new ones are encoded.
    assert!((300..=337).contains(&computed), "computed {computed}");
    // The parts of train before its last are found by key, without a memo lookup (issue 27): the
    // run looks up only the tweets of the parts it redoes.
    let distinct = distinct_texts(&tweets);
    assert!(counts["parts_reused"].as_u64().unwrap() >= 1, "{counts}");
    assert!(computed + reused < distinct.len() as u64, "{counts}");
    // Word-level states have one row of hidden-size values per word.
    assert!(
        rows.iter()
            .all(|r| r.states.len() == r.word_starts.len() * 384
                && r.shapes.len() == r.word_starts.len())
    );

    // Another layer set or pooling runs the encoder again: the memo holds each tweet's row as the
    // artifact keeps it, not every state of every piece (issue 27: 4.5 times the row for MPNet).
    let every_layer_mean = text_features::TextFeatureParams {
        layers: "all".parse().unwrap(),
        pooling: text_features::Pooling::Mean,
        ..Default::default()
    };
    let third = common::text_features(&store, tweets, &every_layer_mean);
    assert_eq!(third.manifest.counts["parts_reused"], 0);
    assert_eq!(
        third.manifest.counts["memo_computed"],
        distinct.len() as u64
    );
    let pooled = TextFeatures::read(
        &store.blob_path(
            &third
                .manifest
                .output(text_features::TEXT_FEATURES)
                .unwrap()
                .digest,
        ),
    )
    .unwrap();
    // 7 hidden states (embeddings + 6 layers) per word; the last of them, for a word of one piece,
    // is its first piece's state again (to float16 rounding).
    let (mut one_piece_words, mut multi_piece_differs) = (0, 0);
    for (a, b) in rows.iter().zip(&pooled) {
        assert_eq!(b.states.len(), b.word_starts.len() * 7 * 384);
        let (mut first, mut mean) = (vec![0f32; 384], vec![0f32; 384]);
        for (w, &start) in a.word_starts.iter().enumerate() {
            let end = a
                .word_starts
                .get(w + 1)
                .map_or(a.piece_ids.len() - 1, |&e| e as usize);
            a.states.copy_to_f32(w * 384..(w + 1) * 384, &mut first);
            b.states
                .copy_to_f32((w * 7 + 6) * 384..(w * 7 + 7) * 384, &mut mean);
            let diff = first
                .iter()
                .zip(&mean)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            if end - start as usize == 1 {
                one_piece_words += 1;
                assert!(
                    diff < 1e-2,
                    "tweet {}: word {w} differs by {diff}",
                    a.tweet_id
                );
            } else if diff > 1e-2 {
                multi_piece_differs += 1;
            }
        }
    }
    assert!(one_piece_words > 1000 && multi_piece_differs > 100);
}

/// `--text-context caption`: a captioned tweet's words get other states (the same words and word
/// starts, more pieces), an uncaptioned tweet's are those it has without context (the same memo
/// entry), and a changed caption re-encodes only its tweet.
#[test]
fn caption_context_changes_captioned_tweets_only_and_memoises_per_caption() {
    use umgf::stages::text_features::{TEXT_FEATURES, TextContext, TextFeatureParams};
    let dir = tempfile::tempdir().unwrap();
    let store = umgf::store::Store::open(dir.path().join("store")).unwrap();
    let dump = |name: &str, first_caption: &str| {
        let path = dir.path().join(name);
        let records = [
            json!({"id": "1", "text": "Kobe Bryant scores 60 in his last game", "caption": first_caption}),
            json!({"id": "2", "text": "Great night at the Staples Center", "caption": "a crowd in a stadium"}),
            json!({"id": "3", "text": "Manchester looking lovely today"}),
            json!({"id": "4", "text": "Happy birthday to my little sister"}),
        ];
        let lines: Vec<String> = records.iter().map(|r| r.to_string()).collect();
        std::fs::write(&path, lines.join("\n")).unwrap();
        common::ingest_dump(&store, &path)
    };
    let rows = |run: &umgf::store::RunOutcome| {
        let digest = run.manifest.output(TEXT_FEATURES).unwrap().digest;
        TextFeatures::read(&store.blob_path(&digest)).unwrap()
    };
    let tweets = dump("a.jsonl", "a basketball player on a court");
    let alone = rows(&common::text_features(
        &store,
        tweets,
        &TextFeatureParams::default(),
    ));
    let with_caption = TextFeatureParams {
        context: TextContext::Caption,
        ..Default::default()
    };
    let run = common::text_features(&store, tweets, &with_caption);
    assert_eq!(
        run.manifest.counts["memo_computed"], 2,
        "the two captioned tweets"
    );
    assert_eq!(
        run.manifest.counts["memo_reused"], 2,
        "the two without a caption"
    );
    let paired = rows(&run);
    for (a, p) in alone.iter().zip(&paired) {
        assert_eq!(a.word_starts, p.word_starts, "tweet {}", a.tweet_id);
        assert_eq!(a.states.len(), p.states.len(), "tweet {}", a.tweet_id);
        let captioned = a.tweet_id == "1" || a.tweet_id == "2";
        assert_eq!(
            p.piece_ids.len() > a.piece_ids.len(),
            captioned,
            "tweet {}",
            a.tweet_id
        );
        assert_eq!(a.states != p.states, captioned, "tweet {}", a.tweet_id);
    }
    // Another caption for tweet 1: it alone is encoded again.
    let tweets = dump("b.jsonl", "a man holding a trophy");
    let run = common::text_features(&store, tweets, &with_caption);
    assert_eq!(run.manifest.counts["memo_computed"], 1);
    assert_ne!(rows(&run)[0].states, paired[0].states);
    assert_eq!(rows(&run)[1..], paired[1..]);
}

#[test]
fn chunk_stage_finds_phrases_and_memoises_per_tweet() {
    use umgf::stages::Stage;
    use umgf::stages::chunk;
    use umgf::stages::chunker::{self, ChunkerStage};
    use umgf::text::chunker::ChunkerTraining;
    let dir = tempfile::tempdir().unwrap();
    let store = umgf::store::Store::open(dir.path().join("store")).unwrap();
    // A small chunker (the real one trains on all of CoNLL-2000: `make chunker`).
    let training = ChunkerTraining {
        epochs: 1,
        limit: 600,
        ..ChunkerTraining::default()
    };
    let input = chunker::Input {
        files: chunker::ChunkerInputs::new(&common::data_dir(), encoder_files(), &training),
        training,
    };
    let trained = ChunkerStage::run(&store, &input).unwrap();
    assert!(
        trained.manifest.counts["test_f1"].as_f64().unwrap() > 50.0,
        "{}",
        trained.manifest.counts
    );
    let model = trained.manifest.output(chunker::MODEL).unwrap().digest;

    let test = common::data_dir().join("twitter2017/test.txt");
    let small = conll_dump(dir.path(), "small.txt", &[(&test, 0..40)]);
    let first = common::chunk(&store, common::ingest_dump(&store, &small), model);
    let phrases = NounPhrase::read(
        &store.blob_path(&first.manifest.output(chunk::NOUN_PHRASES).unwrap().digest),
    )
    .unwrap();
    assert!(phrases.len() > 40, "{} phrases in 40 tweets", phrases.len());
    for p in &phrases {
        assert!(
            p.start < p.end && p.start <= p.head_index && p.head_index < p.end,
            "{p:?}"
        );
    }

    let grown = conll_dump(dir.path(), "grown.txt", &[(&test, 0..50)]);
    let second = common::chunk(&store, common::ingest_dump(&store, &grown), model);
    assert_eq!(second.manifest.counts["memo_reused"], 40);
    assert_eq!(second.manifest.counts["memo_computed"], 10);

    // Captions are chunked too, each distinct caption once, into phrases of their own source.
    let captioned = dir.path().join("captioned.jsonl");
    let lines = [
        json!({"id": "a", "text": "Kobe scores 60", "caption": "a man holding a basketball"}),
        json!({"id": "b", "text": "What a night", "caption": "a man holding a basketball"}),
        json!({"id": "c", "text": "Rome at dawn"}),
    ];
    let lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(&captioned, lines.join("\n")).unwrap();
    let third = common::chunk(&store, common::ingest_dump(&store, &captioned), model);
    assert_eq!(third.manifest.counts["captions"], 2);
    assert_eq!(
        third.manifest.counts["memo_computed"], 4,
        "3 tweets and 1 distinct caption"
    );
    let rows = NounPhrase::read(
        &store.blob_path(&third.manifest.output(chunk::NOUN_PHRASES).unwrap().digest),
    )
    .unwrap();
    let in_captions: Vec<(&str, &str)> = rows
        .iter()
        .filter(|p| p.source == PhraseSource::Caption)
        .map(|p| (p.tweet_id.as_str(), p.head.as_str()))
        .collect();
    assert!(
        in_captions.contains(&("a", "basketball")),
        "{in_captions:?}"
    );
    assert!(
        in_captions.contains(&("b", "basketball")),
        "{in_captions:?}"
    );
}

#[test]
fn bf16_states_stay_close_to_f32() {
    let mut encoder = TextEncoder::load(&encoder_files(), Device::Cpu).unwrap();
    let tweets = real_tweets(Split::Test, 60);
    let pieces: Vec<_> = tweets
        .iter()
        .map(|t| encoder.pieces.tweet(t).unwrap())
        .collect();
    let f32_states = Tensor::cat(&encoder.word_states(&pieces, 16), 0);
    encoder.set_precision(Precision::Bf16);
    let bf16_states = Tensor::cat(&encoder.word_states(&pieces, 16), 0);
    let cosine = Tensor::cosine_similarity(&f32_states, &bf16_states, 1, 1e-8);
    let (worst, max_diff) = (
        cosine.min().double_value(&[]),
        (&f32_states - &bf16_states).abs().max().double_value(&[]),
    );
    eprintln!(
        "bf16 vs f32 over {} words: min cosine {worst:.5}, max abs difference {max_diff:.4}",
        cosine.size()[0]
    );
    assert!(worst > 0.99, "min cosine {worst}");
}
