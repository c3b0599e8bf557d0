//! `train` and `predict` through the whole visual path: skimage's photos with hand-labelled tweets
//! (noun phrases hand-made, so no chunker is trained), grounded objects, visual features, graph
//! edges, a trained UMGF whose word states change with the visual nodes, a cache hit on the second
//! run, and entities predicted by the trained model. Also a short fine-tune run.
use std::path::Path;

use umgf::Digest;
use umgf::analysis::Entity;
use umgf::analysis::TweetAnalysis;
use umgf::eval::table;
use umgf::labels::Tag;
use umgf::model::batch::{assemble, collate};
use umgf::model::tagger::{ModelKind, Tagger, TextMode};
use umgf::model::train::{TrainConfig, evaluate_predicted, predict_with_gates};
use umgf::model::umgf::{TextHeadConfig, UmgfConfig};
use umgf::schema::{Artifact, GraphEdge, GroundedObject, TextFeatures, Tweet, VisualFeatures};
use umgf::stages::Stage;
use umgf::stages::predict::{self, ModelFiles, PredictStage, Which};
use umgf::stages::train::{self, DatasetArtifacts, TrainParams};
use umgf::stages::{graphs, ground, text_features, visual_features};
use umgf::store::Store;
use umgf::text::encoder::default_files;

use crate::common::{self, repo};
use crate::ground::{Record, photo, store_phrases};

/// (record, BIO labels).
pub(crate) fn records() -> Vec<(Record<'static>, &'static str)> {
    vec![
        (
            (
                "astronaut",
                "An astronaut poses with the flag at NASA",
                photo("astronaut.png"),
                &[(0, 2, 1), (4, 6, 5), (7, 8, 7)],
            ),
            "O O O O O O O B-ORG",
        ),
        (
            (
                "astronaut-name",
                "NASA astronaut Eileen Collins on the flight deck",
                photo("astronaut.png"),
                &[(0, 4, 3), (5, 8, 7)],
            ),
            "B-ORG O B-PER I-PER O O O O",
        ),
        (
            (
                "motorbike",
                "Just bought a new Ducati motorbike , ride with the guys",
                photo("motorcycle_left.png"),
                &[(2, 6, 5), (9, 11, 10)],
            ),
            "O O O O B-ORG O O O O O O",
        ),
        (
            (
                "horse",
                "Beautiful horse at the Kentucky Derby today",
                photo("horse.png"),
                &[(0, 2, 1), (3, 6, 5)],
            ),
            "O O O O B-MISC I-MISC O",
        ),
        (
            (
                "coffee",
                "Morning espresso at Blue Bottle in Oakland",
                photo("coffee.png"),
                &[(0, 2, 1), (3, 5, 4), (6, 7, 6)],
            ),
            "O O O B-ORG I-ORG O B-LOC",
        ),
        (
            (
                "rocket",
                "SpaceX launches another rocket from Cape Canaveral",
                photo("rocket.jpg"),
                &[(0, 1, 0), (2, 4, 3), (5, 7, 6)],
            ),
            "B-ORG O O O O B-LOC I-LOC",
        ),
        (
            (
                "no-image",
                "No picture with this one from London",
                None,
                &[(5, 7, 6)],
            ),
            "O O O O O O B-LOC",
        ),
    ]
}

pub(crate) fn write_labelled_dump(path: &Path, records: &[(Record<'_>, &str)]) {
    let lines: Vec<String> = records
        .iter()
        .map(|((id, text, image, _), labels)| {
            let labels: Vec<&str> = labels.split_whitespace().collect();
            serde_json::json!({"id": id, "text": text, "image": image, "labels": labels})
                .to_string()
        })
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// Runs the stages before `train` on the dump (hand-made noun phrases instead of `chunk`).
fn model_inputs(
    store: &Store,
    dump: &Path,
    records: &[Record<'_>],
    grounding: &ground::GroundParams,
) -> (DatasetArtifacts, Digest) {
    let tweets = common::ingest_dump(store, dump);
    let phrases = store_phrases(store, records);
    let grounded = common::ground(store, tweets, phrases, grounding);
    let objects = grounded.manifest.output(ground::OBJECTS).unwrap().digest;
    let text = common::text_features(store, tweets, &text_features::TextFeatureParams::default());
    let visual = common::visual_features(store, tweets, objects);
    let edges = common::graphs(store, tweets, objects);
    let data = DatasetArtifacts {
        tweets,
        text_features: text
            .manifest
            .output(text_features::TEXT_FEATURES)
            .unwrap()
            .digest,
        visual_features: visual
            .manifest
            .output(visual_features::VISUAL_FEATURES)
            .unwrap()
            .digest,
        graph_edges: edges.manifest.output(graphs::EDGES).unwrap().digest,
    };
    (data, objects)
}

/// The labelled photo dump written into `dir` and every stage before `train` run on it: what
/// `train` reads, and the objects artifact.
fn photo_inputs(
    store: &Store,
    dir: &Path,
    grounding: &ground::GroundParams,
) -> (DatasetArtifacts, Digest) {
    let labelled = records();
    let records: Vec<Record<'_>> = labelled.iter().map(|(r, _)| r.clone()).collect();
    let dump = dir.join("photos.jsonl");
    write_labelled_dump(&dump, &labelled);
    model_inputs(store, &dump, &records, grounding)
}

fn params(mode: TextMode, max_epochs: usize) -> TrainParams {
    TrainParams {
        dataset: "photos".into(),
        kind: ModelKind::Umgf,
        mode,
        model: UmgfConfig {
            // Dropout off: with seven tweets the check below should see the model, not the noise.
            dropout: 0.0,
            text: TextHeadConfig {
                dropout: 0.0,
                word_dropout: 0.0,
                ..UmgfConfig::default().text
            },
            ..UmgfConfig::default()
        },
        training: TrainConfig {
            max_epochs,
            batch_size: 4,
            lr: 1e-3,
            ..TrainConfig::default()
        },
        features: text_features::TextFeatureParams::default(),
        memory_budget: umgf::memory::default_budget(),
        streamed: false,
    }
}

/// The tagger a `train` run stored.
fn load(store: &Store, run: &umgf::store::RunOutcome) -> Tagger {
    let out = |name: &str| store.blob_path(&run.manifest.output(name).unwrap().digest);
    let encoder = default_files(&repo().join("models"));
    Tagger::load_files(
        &out(train::CONFIG),
        &out(train::MODEL),
        &encoder,
        tch::Device::Cpu,
    )
    .unwrap()
}

#[test]
fn train_on_photos_uses_the_visual_nodes_and_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let records = records().len();
    let (inputs, objects) = photo_inputs(&store, dir.path(), &ground::GroundParams::default());
    let frozen = params(TextMode::Frozen, 3);
    let first = common::train(&store, inputs, &frozen);
    assert!(!first.hit);
    let out = |name: &str| store.blob_path(&first.manifest.output(name).unwrap().digest);
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out(train::METRICS)).unwrap()).unwrap();
    eprintln!("{}", std::fs::read_to_string(out(train::TABLE)).unwrap());
    assert_eq!(metrics["train_dataset"], "photos");
    assert_eq!(metrics["seed"], 1);
    for key in ["precision", "recall", "f1", "per_type"] {
        assert!(metrics["dev"].get(key).is_some(), "dev lacks {key}");
    }
    // A dump has no test split: dev is a tenth of it (one tweet), the rest is training data.
    assert!(metrics["test"].is_null());
    assert_eq!(first.manifest.counts["dev_tweets"], 1);
    assert_eq!(first.manifest.counts["train_tweets"], 6);
    assert_eq!(metrics["training"]["epochs"].as_array().unwrap().len(), 3);
    let curve = image::ImageReader::open(out(train::CURVE))
        .unwrap()
        .with_guessed_format()
        .unwrap()
        .decode()
        .unwrap();
    assert!(curve.width() > 100);

    // The trained model: objects and their links reach the word states.
    let tagger = load(&store, &first);
    let examples = inputs.examples(&store).unwrap();
    let with_objects: Vec<_> = examples.iter().filter(|e| !e.objects.is_empty()).collect();
    assert!(
        with_objects.len() >= 4,
        "{} tweets with objects",
        with_objects.len()
    );
    assert!(with_objects.iter().all(|e| !e.links.is_empty()));
    let motorbike = examples.iter().find(|e| e.tweet_id == "motorbike").unwrap();
    // "a new Ducati motorbike" (words 2..6) was grounded to the motorcycle: its words are linked.
    assert!(motorbike.links.iter().any(|&(w, _)| (2..6).contains(&w)));
    let c = &tagger.config.model;
    let batch = collate(
        &with_objects,
        tagger.config.cached_width(),
        c.visual_dim,
        tagger.pad_id,
        tch::Device::Cpu,
    );
    let with = tagger.word_states(&batch);
    let mut unlinked = collate(
        &with_objects,
        tagger.config.cached_width(),
        c.visual_dim,
        tagger.pad_id,
        tch::Device::Cpu,
    );
    unlinked.graph.links = unlinked.graph.links.zeros_like();
    let without = tagger.word_states(&unlinked);
    let change = (&with - &without).abs().max().double_value(&[]);
    assert!(
        change > 1e-3,
        "visual nodes changed the word states by only {change}"
    );

    // Same inputs and settings: a cache hit, no training.
    let again = common::train(&store, inputs, &frozen);
    assert!(again.hit);

    // Predict with the trained model: one JSONL line per tweet.
    let model = ModelFiles {
        config: out(train::CONFIG),
        weights: out(train::MODEL),
    };
    let input = predict::Input {
        model,
        data: inputs,
        objects,
        dataset: "photos".into(),
        encoder: default_files(&repo().join("models")),
        which: Which::All,
    };
    let predicted = PredictStage::run(&store, &input).unwrap();
    let entities = std::fs::read_to_string(
        store.blob_path(&predicted.manifest.output(predict::ENTITIES).unwrap().digest),
    )
    .unwrap();
    assert_eq!(entities.lines().count(), records);
    for line in entities.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["entities"].is_array() && v["id"].is_string());
    }
    assert!(predicted.manifest.output(predict::METRICS).is_ok());
    // Streamed, a chunk at a time, predict writes what it wrote with every tweet in memory.
    for (name, before) in predict_outputs_before_streaming(&store, &inputs, objects, &tagger) {
        let now = std::fs::read_to_string(
            store.blob_path(&predicted.manifest.output(name).unwrap().digest),
        )
        .unwrap();
        assert_eq!(now, before, "{name}");
    }
    // What a report shows of each tweet: the motorbike tweet's nodes, its links and, per fusion
    // layer, a gate in (0, 1) on each link.
    let analysis = std::fs::read_to_string(
        store.blob_path(&predicted.manifest.output(predict::ANALYSIS).unwrap().digest),
    )
    .unwrap();
    let analysed: Vec<TweetAnalysis> = analysis
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(analysed.len(), records);
    let motorbike = analysed.iter().find(|a| a.id == "motorbike").unwrap();
    assert!(motorbike.gold.is_some());
    assert!(
        motorbike.nodes.iter().any(|n| n.label == "motorcycle"),
        "{motorbike:?}"
    );
    assert!(!motorbike.links.is_empty());
    assert_eq!(motorbike.gates.len() as i64, frozen.model.layers);
    for layer in &motorbike.gates {
        assert_eq!(layer.len(), motorbike.links.len());
        assert!(layer.iter().all(|g| (0.0..=1.0).contains(g)), "{layer:?}");
    }
    // Its report: the page, and a copy of every tweet's image.
    let with_image = analysed.iter().filter(|a| a.image.is_some()).count();
    assert!(with_image >= 4);
    let report = umgf::report::Report {
        title: "photos".into(),
        about: vec![],
        tables: vec![],
        curve: None,
        tweets: &analysed,
        compare: None,
    };
    let written = umgf::report::write(&dir.path().join("report"), &report).unwrap();
    assert_eq!((written.images, written.missing_images), (with_image, 0));
    let page = std::fs::read_to_string(dir.path().join("report/index.html")).unwrap();
    assert!(page.contains("\"label\":\"motorcycle\""));

    // Fine-tune mode: the encoder is trained too, saved with the model, and loads back.
    let tuned = common::train(&store, inputs, &params(TextMode::FineTune, 1));
    let tagger = load(&store, &tuned);
    assert_eq!(tagger.config.mode, TextMode::FineTune);
    let weights = tch::Tensor::read_safetensors(
        store.blob_path(&tuned.manifest.output(train::MODEL).unwrap().digest),
    )
    .unwrap();
    assert!(weights.iter().any(|(name, _)| name.starts_with("encoder.")));
}

/// What `predict` (version 2) wrote before it streamed, every tweet read, joined and predicted at
/// once, for `Which::All` on the labelled dataset "photos".
fn predict_outputs_before_streaming(
    store: &Store,
    inputs: &DatasetArtifacts,
    objects: Digest,
    tagger: &Tagger,
) -> Vec<(&'static str, String)> {
    use std::fmt::Write as _;
    let blob = |d: &Digest| store.blob_path(d);
    let tweets = Tweet::read(&blob(&inputs.tweets)).unwrap();
    let examples = assemble(
        &tweets,
        &TextFeatures::read(&blob(&inputs.text_features)).unwrap(),
        &VisualFeatures::read(&blob(&inputs.visual_features)).unwrap(),
        &GraphEdge::read(&blob(&inputs.graph_edges)).unwrap(),
    )
    .unwrap();
    let with_gates = predict_with_gates(tagger, &examples);
    let predicted: Vec<Vec<Tag>> = with_gates.iter().map(|p| p.tags.clone()).collect();
    let evaluation = evaluate_predicted(&examples, &predicted);
    let (mut entities, mut analysis, mut conll) = (String::new(), String::new(), String::new());
    let objects = GroundedObject::read(&blob(&objects)).unwrap();
    for ((e, p), tweet) in examples.iter().zip(&with_gates).zip(&tweets) {
        let line = serde_json::json!({
            "id": e.tweet_id, "tokens": e.words, "entities": Entity::all(&e.words, &p.tags)
        });
        entities.push_str(&(line.to_string() + "\n"));
        let rows: Vec<&GroundedObject> =
            objects.iter().filter(|o| o.tweet_id == tweet.id).collect();
        let line = TweetAnalysis::new(tweet, &rows, &p.tags, &e.links, &p.gates);
        analysis.push_str(&(serde_json::to_string(&line).unwrap() + "\n"));
        let _ = writeln!(conll, "IMGID:{}", e.tweet_id);
        for (word, tag) in e.words.iter().zip(&p.tags) {
            let _ = writeln!(conll, "{word}\t{tag}");
        }
        conll.push('\n');
    }
    let scored = train::predictions(&examples, &predicted);
    let metrics = serde_json::json!({
        "train_dataset": tagger.config.trained_on,
        "test_dataset": "photos",
        "tweets": Which::All,
        "model": tagger.config.kind,
        "mode": tagger.config.mode,
        "test": evaluation,
    });
    let heading = format!(
        "{} {} trained on {}, tested on photos ({} tweets)\n",
        tagger.config.kind.name(),
        tagger.config.mode.name(),
        tagger.config.trained_on,
        examples.len()
    );
    vec![
        (predict::ENTITIES, entities),
        (predict::ANALYSIS, analysis),
        (predict::CONLL, conll),
        (predict::SCORED, scored),
        (
            predict::METRICS,
            serde_json::to_string_pretty(&metrics).unwrap(),
        ),
        (predict::TABLE, heading + &table(&[("test", &evaluation)])),
    ]
}

#[test]
fn over_its_memory_budget_train_streams_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let (inputs, _) = photo_inputs(&store, dir.path(), &ground::GroundParams::default());
    let in_memory = params(TextMode::Frozen, 2);
    let mut streamed = in_memory.clone();
    streamed.memory_budget = 1;
    streamed.fit(&store, &inputs).unwrap();
    assert!(streamed.streamed);
    let mut roomy = in_memory.clone();
    roomy.memory_budget = 1 << 40;
    roomy.fit(&store, &inputs).unwrap();
    assert!(!roomy.streamed);
    // The budget is not in the key; streaming is.
    let key = |params: &TrainParams| {
        let input = train::Input {
            data: inputs,
            encoder: default_files(&repo().join("models")),
            params: params.clone(),
        };
        train::TrainStage::spec(&input).unwrap().key()
    };
    assert_eq!(key(&roomy), key(&in_memory));
    assert_ne!(key(&streamed), key(&in_memory));

    let first = common::train(&store, inputs, &streamed);
    assert!(!first.hit);
    assert_eq!(first.manifest.counts["train_tweets"], 6);
    assert_eq!(first.manifest.counts["dev_tweets"], 1);
    // The same seed again (another label, so another run): the same training.
    let mut again = streamed.clone();
    again.dataset = "photos again".into();
    let second = common::train(&store, inputs, &again);
    assert!(!second.hit);
    let read = |run: &umgf::store::RunOutcome, name: &str| {
        std::fs::read_to_string(store.blob_path(&run.manifest.output(name).unwrap().digest))
            .unwrap()
    };
    assert_eq!(
        read(&first, train::DEV_PREDICTIONS),
        read(&second, train::DEV_PREDICTIONS)
    );
    let training = |run| {
        let metrics: serde_json::Value = serde_json::from_str(&read(run, train::METRICS)).unwrap();
        metrics["training"].clone()
    };
    assert_eq!(training(&first), training(&second));
    assert_eq!(
        training(&first)["epochs"].as_array().unwrap().len(),
        2,
        "{}",
        training(&first)
    );
}

/// The "w/o targeted objects" ablation: a 2 x 2 grid of each image replaces the grounded objects, and
/// every word links to every cell.
#[test]
fn grid_regions_replace_targeted_objects() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let grid = ground::GroundParams {
        grid: 2,
        ..Default::default()
    };
    let (inputs, _) = photo_inputs(&store, dir.path(), &grid);
    let examples = inputs.examples(&store).unwrap();
    for e in &examples {
        let with_image = e.tweet_id != "no-image";
        assert_eq!(
            e.objects.len(),
            if with_image { 4 } else { 0 },
            "{}",
            e.tweet_id
        );
        assert_eq!(e.links.len(), e.objects.len() * e.len(), "{}", e.tweet_id);
    }
    // Different cells of one image have different features.
    let astronaut = examples.iter().find(|e| e.tweet_id == "astronaut").unwrap();
    assert_ne!(astronaut.objects[0], astronaut.objects[3]);
    let run = common::train(&store, inputs, &params(TextMode::Frozen, 1));
    assert_eq!(run.manifest.counts["train_tweets"], 6);
}
