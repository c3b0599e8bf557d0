//! The HTML report in a real browser: Debian's chromium (installed by `make setup-reference`), headless,
//! opens a report of three tweets from `file://`, runs its script without a console message, draws
//! the expected entities, boxes and gate strips, and leaves a screenshot.
use std::path::Path;
use std::process::Command;

use umgf::analysis::{Entity, Query, TweetAnalysis, VisualNode};
use umgf::eval::Evaluation;
use umgf::report::{self, Report, chart::EpochPoint};
use umgf::schema::{NodeKind, QueryKind};

use crate::common::repo;

fn entity(tokens: &[&str], ty: &str, start: usize, end: usize) -> Entity {
    Entity {
        text: tokens[start..end].join(" "),
        ty: ty.into(),
        start,
        end,
    }
}

/// A photo tweet whose astronaut box "Sunita Williams" found (predicted right), a captioned tweet
/// with a wrong prediction, and an unlabelled tweet (a predict run's).
fn tweets() -> Vec<TweetAnalysis> {
    let words = |text: &str| text.split(' ').map(String::from).collect::<Vec<_>>();
    let photo = [
        "Astronaut",
        "Sunita",
        "Williams",
        "returns",
        "to",
        "Houston",
    ];
    let captioned = ["Real", "wins", "in", "Milan", "<script>alert(1)</script>"];
    let node =
        |id, kind, label: &str, bbox: Option<[f32; 4]>, query: &str, span: Option<(u32, u32)>| {
            VisualNode {
                id,
                kind,
                label: label.into(),
                bbox,
                image_size: bbox.map(|_| (512, 512)),
                score: bbox.map(|_| 0.9),
                found_by: vec![Query {
                    text: query.into(),
                    kind: if span.is_some() {
                        QueryKind::Phrase
                    } else {
                        QueryKind::General
                    },
                    span,
                    similarity: 1.0,
                }],
            }
        };
    vec![
        TweetAnalysis {
            id: "photo".into(),
            tokens: words(&photo.join(" ")),
            gold: Some(vec![
                entity(&photo, "PER", 1, 3),
                entity(&photo, "LOC", 5, 6),
            ]),
            predicted: vec![entity(&photo, "PER", 1, 3), entity(&photo, "LOC", 5, 6)],
            image: Some(repo().join("photos/astronaut.png").display().to_string()),
            caption: None,
            nodes: vec![node(
                0,
                NodeKind::Image,
                "person",
                Some([100.0, 20.0, 400.0, 500.0]),
                "Astronaut Sunita Williams",
                Some((0, 3)),
            )],
            links: vec![(0, 0), (1, 0), (2, 0)],
            gates: vec![vec![0.2, 0.5, 0.9], vec![0.1, 0.4, 0.8]],
        },
        TweetAnalysis {
            id: "captioned".into(),
            tokens: words(&captioned.join(" ")),
            gold: Some(vec![
                entity(&captioned, "ORG", 0, 1),
                entity(&captioned, "LOC", 3, 4),
            ]),
            predicted: vec![
                entity(&captioned, "PER", 0, 1),
                entity(&captioned, "LOC", 3, 4),
            ],
            image: None,
            caption: Some("a crowd of people in a stadium".into()),
            nodes: vec![node(0, NodeKind::Caption, "a crowd", None, "person", None)],
            links: (0..5).map(|w| (w, 0)).collect(),
            gates: vec![vec![0.3; 5]],
        },
        TweetAnalysis {
            id: "unlabelled".into(),
            tokens: words("Obama in Paris"),
            gold: None,
            predicted: vec![entity(&["Obama"], "PER", 0, 1)],
            image: None,
            caption: None,
            nodes: vec![],
            links: vec![],
            gates: vec![],
        },
    ]
}

/// Chromium, headless, on the page: (stdout, stderr). As root it needs `--no-sandbox`; in a container
/// /dev/shm may be too small for it (`--disable-dev-shm-usage`).
fn chromium(page: &Path, action: &[&str]) -> (String, String) {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .args(action)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium not found: run `make setup-reference` (Debian's chromium)");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_report_runs_in_a_browser_and_shows_entities_boxes_and_gates() {
    let dir = tempfile::tempdir().unwrap();
    let tweets = tweets();
    let epochs: Vec<EpochPoint> = (1..=3)
        .map(|epoch| EpochPoint {
            epoch,
            train_loss: 10.0 / epoch as f64,
            dev_f1: 60.0 + 5.0 * epoch as f64,
        })
        .collect();
    let report = Report {
        title: "three tweets".into(),
        about: vec!["a test".into()],
        tables: vec![("test".into(), Evaluation::default())],
        curve: Some((epochs, Some(3))),
        tweets: &tweets,
        compare: None,
    };
    let out = dir.path().join("report");
    let written = report::write(&out, &report).unwrap();
    assert_eq!((written.images, written.missing_images), (1, 0));
    let page = out.join("index.html");

    let (dom, log) = chromium(&page, &["--dump-dom"]);
    // The script ran without a console message (an exception would be one).
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console: {console:#?}");
    // Every tweet is drawn, with its entities, the photo's box and both tweets' gate strips.
    assert_eq!(dom.matches("<li data-id=").count(), 3, "{dom}");
    assert!(dom.contains("page 1 of 1 (3 of 3 tweets)"));
    assert!(dom.contains(r#"<span class="ent PER">Sunita Williams<sub>PER</sub></span>"#));
    // The wrong prediction is marked; the gold line is not.
    assert!(dom.contains(r#"<span class="ent PER wrong">Real<sub>PER</sub></span>"#));
    assert!(dom.contains(r#"<span class="ent ORG">Real<sub>ORG</sub></span>"#));
    assert!(dom.contains("<rect") && dom.contains("images/0.png"));
    assert_eq!(dom.matches(r#"<table class="gates">"#).count(), 2);
    // A tweet's markup stays text.
    assert!(dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!dom.contains("<script>alert(1)"));

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report.png");
    chromium(
        &page,
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1200,1600",
        ],
    );
    let size = std::fs::metadata(&screenshot).unwrap().len();
    assert!(size > 20_000, "{} is {size} bytes", screenshot.display());
    eprintln!("screenshot: {}", screenshot.display());
}
