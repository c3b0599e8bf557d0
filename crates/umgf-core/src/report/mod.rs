//! `report`: one static HTML page of what a run did and why, from the outputs of `train`, `eval` and
//! `predict` (never re-running a model): the dev and test tables, the training curve, where the
//! entities went wrong, and every tweet with its gold and predicted entities, its image with the
//! grounded boxes (or its caption and phrases), and how strongly each word took in each visual node.
//!
//! The folder is self-contained: `index.html` (styles, script and data inline; no server, no
//! network) plus the tweets' images under `images/`. It is written beside its final place and
//! renamed there, so a killed run leaves the previous report whole.
pub mod canvas;
pub mod chart;
pub mod errors;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::analysis::{Entity, TweetAnalysis};
use crate::eval::{Evaluation, Scores};
use crate::{IoContext, Result};

use chart::EpochPoint;
use errors::Confusion;

const PAGE: &str = include_str!("page.html");
const STYLE: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("report.js");

/// What a report shows.
pub struct Report<'a> {
    /// The page's heading: which run, on what.
    pub title: String,
    /// Lines under the heading (model, seed, counts).
    pub about: Vec<String>,
    /// Score tables by name ("dev", "test"), in order.
    pub tables: Vec<(String, Evaluation)>,
    /// The training curve and the kept epoch, for a run with a trained model at hand.
    pub curve: Option<(Vec<EpochPoint>, Option<usize>)>,
    pub tweets: &'a [TweetAnalysis],
    /// Another run over the same tweets, by its name: the page lists where predictions differ.
    pub compare: Option<(String, &'a [TweetAnalysis])>,
}

/// What `write` did.
#[derive(Debug, Default, Serialize)]
pub struct Written {
    pub tweets: usize,
    pub images: usize,
    /// Images the tweets name that could not be read (the tweet is shown without).
    pub missing_images: usize,
    pub html_bytes: usize,
}

/// The data the page's script reads: the tweets, each with its image's path in the folder.
#[derive(Serialize)]
struct PageData<'a> {
    tweets: Vec<PageTweet<'a>>,
    compare: Option<&'a str>,
    types: Vec<String>,
}

#[derive(Serialize)]
struct PageTweet<'a> {
    #[serde(flatten)]
    tweet: &'a TweetAnalysis,
    /// `images/<n>.<ext>` in the report folder.
    image_src: Option<String>,
    /// The other run's entities, when comparing and the tweet is there.
    other: Option<&'a [Entity]>,
}

/// Writes the report folder `dir` (replacing it whole).
pub fn write(dir: &Path, report: &Report<'_>) -> Result<Written> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).at(parent)?;
    let name = dir
        .file_name()
        .map_or("report".into(), |n| n.to_string_lossy().into_owned());
    let building = parent.join(format!(".{name}.building-{}", std::process::id()));
    if building.exists() {
        std::fs::remove_dir_all(&building).at(&building)?;
    }
    let images = building.join("images");
    std::fs::create_dir_all(&images).at(&images)?;
    let mut written = Written {
        tweets: report.tweets.len(),
        ..Written::default()
    };
    let mut sources: BTreeMap<&str, String> = BTreeMap::new();
    for tweet in report.tweets {
        let Some(image) = &tweet.image else { continue };
        let path = PathBuf::from(image);
        let ext = path
            .extension()
            .map_or("jpg".into(), |e| e.to_string_lossy().to_lowercase());
        let file = format!("{}.{ext}", sources.len());
        match std::fs::copy(&path, images.join(&file)) {
            Ok(_) => {
                sources.insert(&tweet.id, format!("images/{file}"));
                written.images += 1;
            }
            Err(_) => written.missing_images += 1,
        }
    }
    let html = render(report, &sources)?;
    written.html_bytes = html.len();
    let index = building.join("index.html");
    std::fs::write(&index, html).at(&index)?;
    // Swap the new folder in: the old one is moved aside first, then removed.
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    if dir.exists() {
        std::fs::rename(dir, &old).at(dir)?;
    }
    std::fs::rename(&building, dir).at(dir)?;
    if old.exists() {
        std::fs::remove_dir_all(&old).at(&old)?;
    }
    Ok(written)
}

/// The page, given each tweet's image path in the folder.
pub fn render(report: &Report<'_>, images: &BTreeMap<&str, String>) -> Result<String> {
    let others: BTreeMap<&str, &[Entity]> = report
        .compare
        .iter()
        .flat_map(|(_, tweets)| {
            tweets
                .iter()
                .map(|t| (t.id.as_str(), t.predicted.as_slice()))
        })
        .collect();
    let data = PageData {
        tweets: report
            .tweets
            .iter()
            .map(|t| PageTweet {
                tweet: t,
                image_src: images.get(t.id.as_str()).cloned(),
                other: others.get(t.id.as_str()).copied(),
            })
            .collect(),
        compare: report.compare.as_ref().map(|(name, _)| name.as_str()),
        types: crate::labels::EntityType::ALL
            .iter()
            .map(|t| t.name().to_owned())
            .collect(),
    };
    // Inside <script>, "</script" or "<!--" would end or upset the element: "<" occurs in JSON only
    // within strings, where "\u003c" writes it.
    let json = serde_json::to_string(&data)?.replace('<', "\\u003c");
    let mut summary = String::new();
    for line in &report.about {
        let _ = write!(summary, "<p>{}</p>", escape(line));
    }
    let mut tables = String::new();
    for (name, evaluation) in &report.tables {
        tables.push_str(&score_table(name, evaluation));
    }
    let curve = report
        .curve
        .as_ref()
        .filter(|(epochs, _)| !epochs.is_empty())
        .map_or(String::new(), |(epochs, kept)| {
            let svg = chart::training_curve(epochs, *kept).to_svg();
            format!("<section><h2>Training curve</h2>{svg}</section>")
        });
    let confusion = confusion_table(&Confusion::of(report.tweets));
    Ok(fill(
        PAGE,
        &[
            ("title", &escape(&report.title)),
            ("style", STYLE),
            ("summary", &summary),
            ("tables", &tables),
            ("curve", &curve),
            ("confusion", &confusion),
            ("script", SCRIPT),
            ("data", &json),
        ],
    ))
}

/// `template` with each `{{name}}` replaced by its value, in one pass (a value is never searched).
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let value = after.find("}}").and_then(|close| {
            let name = &after[..close];
            let value = values.iter().find(|(n, _)| *n == name)?.1;
            Some((value, close))
        });
        match value {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Text for HTML: `&`, `<`, `>` and quotes escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn score_table(name: &str, e: &Evaluation) -> String {
    let row = |label: &str, s: &Scores| {
        format!(
            "<tr><th>{label}</th><td>{:.2}</td><td>{:.2}</td><td><b>{:.2}</b></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.precision, s.recall, s.f1, s.gold, s.predicted, s.correct
        )
    };
    let mut html = format!(
        "<table class=\"scores\"><caption>{} ({} tweets)</caption><tr><th>type</th><th>P</th><th>R</th><th>F1</th><th>gold</th><th>predicted</th><th>correct</th></tr>",
        escape(name),
        e.sentences
    );
    for (ty, s) in &e.per_type {
        html.push_str(&row(&escape(ty), s));
    }
    html.push_str(&row("all", &e.overall));
    html.push_str("</table>");
    html
}

fn confusion_table(c: &Confusion) -> String {
    if c.types.is_empty() && c.missed.is_empty() && c.spurious.is_empty() {
        return String::new();
    }
    let types: Vec<String> = crate::labels::EntityType::ALL
        .iter()
        .map(|t| t.name().to_owned())
        .collect();
    let count = |map: Option<&BTreeMap<String, usize>>, k: &str| {
        map.and_then(|m| m.get(k)).copied().unwrap_or(0)
    };
    let mut html = String::from(
        "<section><h2>Where entities went</h2><p>Each gold entity (rows) is found with the type of its column (same words), \
         found with other boundaries (a predicted entity overlaps it) or missed; a predicted entity that \
         overlaps no gold one is spurious.</p><table class=\"confusion\"><tr><th>gold \\ predicted</th>",
    );
    for t in &types {
        let _ = write!(html, "<th>{t}</th>");
    }
    html.push_str("<th>boundary</th><th>missed</th></tr>");
    for g in &types {
        let _ = write!(html, "<tr><th>{g}</th>");
        for p in &types {
            let n = count(c.types.get(g), p);
            let class = if g == p {
                "hit"
            } else if n > 0 {
                "miss"
            } else {
                ""
            };
            let _ = write!(html, "<td class=\"{class}\">{n}</td>");
        }
        let _ = write!(
            html,
            "<td>{}</td><td>{}</td></tr>",
            count(Some(&c.boundary), g),
            count(Some(&c.missed), g)
        );
    }
    html.push_str("<tr><th>spurious</th>");
    for p in &types {
        let _ = write!(html, "<td>{}</td>", count(Some(&c.spurious), p));
    }
    html.push_str("<td></td><td></td></tr></table></section>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::VisualNode;
    use crate::schema::{NodeKind, QueryKind};

    fn tweet(id: &str, text: &str) -> TweetAnalysis {
        TweetAnalysis {
            id: id.into(),
            tokens: vec!["<b>Obama</b>".into(), "</script>".into()],
            gold: Some(vec![Entity {
                text: text.into(),
                ty: "PER".into(),
                start: 0,
                end: 1,
            }]),
            predicted: vec![],
            image: None,
            caption: Some("a man".into()),
            nodes: vec![VisualNode {
                id: 0,
                kind: NodeKind::Caption,
                label: "a man".into(),
                bbox: None,
                image_size: None,
                score: None,
                found_by: vec![crate::analysis::Query {
                    text: "person".into(),
                    kind: QueryKind::General,
                    span: None,
                    similarity: 1.0,
                }],
            }],
            links: vec![(0, 0), (1, 0)],
            gates: vec![vec![0.25, 0.75]],
        }
    }

    #[test]
    fn the_page_holds_its_data_and_no_raw_markup_from_tweets() {
        let tweets = [tweet("t1", "<b>Obama</b>")];
        let report = Report {
            title: "eval <twitter2017>".into(),
            about: vec!["seed 1".into()],
            tables: vec![("test".into(), Evaluation::default())],
            curve: None,
            tweets: &tweets,
            compare: None,
        };
        let html = render(&report, &BTreeMap::new()).unwrap();
        assert!(html.contains("<title>eval &lt;twitter2017&gt;</title>"));
        // The tweet's words reach the page only inside the JSON, where "</" cannot end the script.
        assert!(!html.contains("<b>Obama"));
        assert!(!html.contains("\"</script>\""));
        assert!(html.contains("\\u003c/script>"));
        let start = html.find("id=\"data\">").unwrap() + "id=\"data\">".len();
        let end = start + html[start..].find("</script>").unwrap();
        let data: serde_json::Value = serde_json::from_str(&html[start..end]).unwrap();
        assert_eq!(data["tweets"][0]["id"], "t1");
        assert_eq!(data["tweets"][0]["gates"][0][1], 0.75);
        // Missed: the gold PER.
        assert!(html.contains("Where entities went"));
    }

    #[test]
    fn writing_replaces_the_folder_whole() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("report");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("stale.txt"), "old").unwrap();
        let mut photo = tweet("t1", "Obama");
        photo.image = Some(dir.path().join("missing.jpg").display().to_string());
        let tweets = [photo];
        let report = Report {
            title: "t".into(),
            about: vec![],
            tables: vec![],
            curve: None,
            tweets: &tweets,
            compare: Some(("other".into(), &tweets)),
        };
        let written = write(&out, &report).unwrap();
        assert_eq!(
            (written.tweets, written.images, written.missing_images),
            (1, 0, 1)
        );
        assert!(out.join("index.html").is_file());
        assert!(!out.join("stale.txt").exists());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
