//! The MPNet encoder (all-mpnet-base-v2, `models/mpnet-base`) and its word pieces against HF
//! transformers on the same files (`scripts/reference/mpnet_states.py` in `.venv-ref`).
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::json;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use umgf::schema::Split;
use umgf::text::mpnet::{Mpnet, MpnetConfig};
use umgf::text::transformer::Init;
use umgf::text::wordpiece::{Architecture, WordPieces};

use crate::common::{self, real_tweets, repo};

fn model_dir() -> PathBuf {
    repo().join("models/mpnet-base")
}

/// The installed MPNet as the pipeline loads an encoder: modules under `encoder`, weights by name.
fn load() -> (VarStore, Mpnet, WordPieces) {
    let dir = model_dir();
    let architecture = Architecture::of_config(&dir.join("config.json")).unwrap();
    assert_eq!(architecture, Architecture::Mpnet);
    let pieces = WordPieces::from_files(&dir.join("tokenizer.json"), architecture).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let config = MpnetConfig::from_file(&dir.join("config.json")).unwrap();
    let model = Mpnet::new(&(vs.root() / "encoder"), config, Init::Zeros);
    let loaded =
        umgf::torch::load_safetensors(&vs, "encoder.", &dir.join("model.safetensors")).unwrap();
    // 12 layers x 16 + embeddings 4 + relative bias 1; the stored pooler and position_ids are unused.
    assert_eq!(loaded, 197);
    (vs, model, pieces)
}

/// Runs `mpnet_states.py` (see [`common::run_encoder_reference`]) on two threads.
fn run_mpnet_reference(dir: &Path, mode: &str, input: serde_json::Value, output: &str) -> PathBuf {
    let extra = ["--threads", "2"];
    common::run_encoder_reference(
        "mpnet_states.py",
        &model_dir(),
        dir,
        (mode, input),
        output,
        &extra,
    )
}

/// Pads `sequences` with `pad` to their longest: ids and mask, [batch, len] int64.
fn pad_batch(sequences: &[Vec<u32>], pad: u32) -> (Tensor, Tensor) {
    let len = sequences.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(sequences.len() * len);
    let mut mask = Vec::with_capacity(sequences.len() * len);
    for s in sequences {
        ids.extend(s.iter().map(|&i| i64::from(i)));
        ids.extend(std::iter::repeat_n(i64::from(pad), len - s.len()));
        mask.extend(std::iter::repeat_n(1i64, s.len()));
        mask.extend(std::iter::repeat_n(0i64, len - s.len()));
    }
    let shape = [sequences.len() as i64, len as i64];
    (
        Tensor::from_slice(&ids).view(shape),
        Tensor::from_slice(&mask).view(shape),
    )
}

/// Every hidden state of each sequence, [layers + 1, len, hidden], run in padded batches of `batch`.
fn our_states(model: &Mpnet, sequences: &[Vec<u32>], pad: u32, batch: usize) -> Vec<Tensor> {
    let mut out = Vec::with_capacity(sequences.len());
    for chunk in sequences.chunks(batch) {
        let (ids, mask) = pad_batch(chunk, pad);
        let layers = tch::no_grad(|| model.forward_layers_t(&ids, &mask, false));
        let stacked = Tensor::stack(&layers, 1).to_kind(Kind::Float); // [batch, layers + 1, len, hidden]
        for (row, s) in chunk.iter().enumerate() {
            out.push(stacked.get(row as i64).narrow(1, 0, s.len() as i64));
        }
    }
    out
}

/// The parity tweets: 60 real Twitter-2017 test tweets plus odd words (a lone no-break space, an emoji,
/// a mention, a hashtag, a URL, a word that is one of MPNet's special tokens, full-width letters).
fn parity_tweets() -> Vec<Vec<String>> {
    let mut tweets = real_tweets(Split::Test, 60);
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
    tweets.push(
        ["<s>", "[CLS]", "ＡＢＣ", "café", "…", "\u{200b}", "#MUFC"]
            .map(String::from)
            .to_vec(),
    );
    tweets
}

#[test]
fn mpnet_matches_pytorch_on_real_tweets_at_every_layer() {
    let (_vs, model, pieces) = load();
    let tweets = parity_tweets();
    let sequences: Vec<Vec<u32>> = tweets
        .iter()
        .map(|t| pieces.tweet(t).unwrap().ids)
        .collect();
    for s in &sequences {
        assert_eq!((s[0], s[s.len() - 1]), (0, 2), "<s> ... </s>");
    }

    let dir = tempfile::tempdir().unwrap();
    let out = run_mpnet_reference(
        dir.path(),
        "--input",
        json!({ "input_ids": sequences }),
        "states.safetensors",
    );
    let expected: HashMap<String, Tensor> = Tensor::read_safetensors(&out)
        .unwrap()
        .into_iter()
        .collect();

    // Ours in padded batches (padding with <pad>, masked), HF's one sequence at a time, unpadded.
    let ours = our_states(&model, &sequences, pieces.pad_id(), 16);
    let layers = model.config.num_hidden_layers + 1;
    let mut worst = vec![0f64; layers as usize];
    for (i, states) in ours.iter().enumerate() {
        let reference = &expected[&format!("states.{i}")];
        assert_eq!(states.size(), reference.size(), "sequence {i}");
        let per_layer = (states - reference).abs().amax([1, 2], false);
        let per_layer: Vec<f64> = Vec::try_from(&per_layer.to_kind(Kind::Double)).unwrap();
        for (w, d) in worst.iter_mut().zip(per_layer) {
            *w = w.max(d);
        }
    }
    let overall = worst.iter().copied().fold(0f64, f64::max);
    eprintln!(
        "MPNet vs HF over {} tweets ({} pieces): max abs difference per hidden state (embeddings, \
         layers 1-{}): {}; overall {overall:e}",
        sequences.len(),
        sequences.iter().map(Vec::len).sum::<usize>(),
        layers - 1,
        worst
            .iter()
            .map(|w| format!("{w:.1e}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert!(overall <= 1e-4, "max abs difference {overall}");
}

#[test]
fn mpnet_runs_in_bfloat16_close_to_float32() {
    let (mut vs, model, pieces) = load();
    let tweets = real_tweets(Split::Test, 16);
    let sequences: Vec<Vec<u32>> = tweets
        .iter()
        .map(|t| pieces.tweet(t).unwrap().ids)
        .collect();
    let last = |states: Vec<Tensor>| -> Tensor {
        Tensor::cat(
            &states
                .iter()
                .map(|s| s.get(s.size()[0] - 1))
                .collect::<Vec<_>>(),
            0,
        )
    };
    let f32_states = last(our_states(&model, &sequences, pieces.pad_id(), 8));
    vs.bfloat16();
    let bf16_states = last(our_states(&model, &sequences, pieces.pad_id(), 8));
    let cosine = Tensor::cosine_similarity(&f32_states, &bf16_states, 1, 1e-8)
        .min()
        .double_value(&[]);
    eprintln!(
        "MPNet bf16 vs f32 over {} pieces: min cosine {cosine:.5}",
        f32_states.size()[0]
    );
    assert!(cosine > 0.99, "min cosine {cosine}");
}

#[test]
fn mpnet_word_pieces_match_hf_tokenizer() {
    let pieces = WordPieces::from_files(
        &model_dir().join("tokenizer.json"),
        Architecture::of_config(&model_dir().join("config.json")).unwrap(),
    )
    .unwrap();
    // MPNet's special pieces, not the [CLS]/[SEP]/[PAD] entries its BERT-derived vocabulary still has.
    assert_eq!(
        (
            pieces.cls_id(),
            pieces.sep_id(),
            pieces.pad_id(),
            pieces.unk_id()
        ),
        (0, 2, 1, 104)
    );
    let tweets = real_tweets(Split::Dev, 200);
    let hf = common::hf_word_pieces("mpnet_states.py", &model_dir(), &tweets);

    let (mut compared, mut words_compared) = (0, 0);
    for (i, (tweet, hf)) in tweets.iter().zip(&hf).enumerate() {
        // Word by word: the same pieces, except that a word HF's normaliser erases gets [UNK] from us.
        assert_eq!(hf.word_pieces.len(), tweet.len());
        for (word, theirs) in tweet.iter().zip(&hf.word_pieces) {
            let ours = pieces.word(word).unwrap();
            if theirs.is_empty() {
                assert_eq!(ours, [pieces.unk_id()], "tweet {i}: {word:?}");
            } else {
                assert_eq!(&ours, theirs, "tweet {i}: {word:?}");
            }
            words_compared += 1;
        }
        // The whole tweet: <s> pieces </s> and each word's first piece.
        let Some(hf_starts) = &hf.word_starts else {
            continue; // HF drops a word the normaliser erases; we keep it as [UNK] (checked above)
        };
        let ours = pieces.tweet(tweet).unwrap();
        assert_eq!(ours.ids, hf.ids, "tweet {i}: {tweet:?}");
        assert_eq!(&ours.word_starts, hf_starts, "tweet {i}");
        compared += 1;
    }
    eprintln!("MPNet word pieces: {compared} tweets and {words_compared} words equal to HF's");
    assert!(compared >= 190, "only {compared} tweets compared");
    // A word HF erases (a lone no-break space) still gets a piece from us, so alignment holds.
    let nbsp = pieces.tweet(&["a", "\u{a0}", "b"]).unwrap();
    assert_eq!(nbsp.word_starts, vec![1, 2, 3]);
    assert_eq!(nbsp.ids[2], 104, "[UNK]");
    assert_eq!((nbsp.ids[0], nbsp.ids[4]), (0, 2), "<s> ... </s>");
}

/// A tweet with its caption after it is HF's pair encoding: `<s> tweet </s></s> caption </s>`.
#[test]
fn mpnet_caption_pairs_match_hf_tokenizer() {
    let pieces = WordPieces::from_files(
        &model_dir().join("tokenizer.json"),
        Architecture::of_config(&model_dir().join("config.json")).unwrap(),
    )
    .unwrap();
    let pairs = common::real_captioned_tweets(Split::Dev, 40);
    let words: Vec<Vec<String>> = pairs
        .iter()
        .map(|(t, _)| common::encoder_words(t))
        .collect();
    let captions: Vec<&str> = pairs.iter().map(|(_, c)| c.as_str()).collect();
    let dir = tempfile::tempdir().unwrap();
    let out = common::run_encoder_reference(
        "mpnet_states.py",
        &model_dir(),
        dir.path(),
        (
            "--tokenize",
            serde_json::json!({ "words": words, "contexts": captions }),
        ),
        "tok.json",
        &[],
    );
    let hf: serde_json::Value = serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap();
    let hf_ids: Vec<Vec<u32>> = serde_json::from_value(hf["pair_ids"].clone()).unwrap();
    let word_pieces: Vec<Vec<Vec<u32>>> =
        serde_json::from_value(hf["word_pieces"].clone()).unwrap();
    let mut compared = 0;
    for (i, ((tweet, caption), hf_ids)) in pairs.iter().zip(&hf_ids).enumerate() {
        if word_pieces[i].iter().any(Vec::is_empty) {
            continue; // HF drops a word its normaliser erases; we keep it as [UNK] (tested apart)
        }
        let (ours, tweet_end) = pieces.tweet_with_context(tweet, caption).unwrap();
        assert_eq!(&ours.ids, hf_ids, "tweet {i}: {tweet:?} + {caption:?}");
        assert_eq!(
            ours.ids[tweet_end..tweet_end + 2],
            [2, 2],
            "tweet {i}: </s></s>"
        );
        compared += 1;
    }
    assert!(compared >= 30, "only {compared} pairs compared");
}

#[test]
fn mpnet_and_bert_tokenizers_take_their_special_tokens_from_the_architecture() {
    let models = repo().join("models");
    let minilm = models.join("minilm-l6");
    assert_eq!(
        Architecture::of_config(&minilm.join("config.json")).unwrap(),
        Architecture::Bert
    );
    let bert = WordPieces::from_file(&minilm.join("tokenizer.json")).unwrap();
    assert_eq!(
        (bert.cls_id(), bert.sep_id(), bert.pad_id(), bert.unk_id()),
        (101, 102, 0, 100)
    );
    // MPNet's tokenizer.json read as BERT's is refused: its post-processor adds <s>/</s>, not [CLS]/[SEP].
    let err = WordPieces::from_files(&model_dir().join("tokenizer.json"), Architecture::Bert)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("post-processor"), "{err}");
    // An unknown model_type names the file.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"model_type": "roberta"}"#).unwrap();
    let err = Architecture::of_config(&config).unwrap_err().to_string();
    assert!(
        err.contains("config.json") && err.contains("roberta"),
        "{err}"
    );
}
