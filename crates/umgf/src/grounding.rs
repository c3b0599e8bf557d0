//! Targeted visual guidance: which detected objects (or which phrases of the image's caption) a
//! tweet's noun phrases and the general words point at.
//!
//! The paper grounds each phrase with a one-stage visual grounding model. No such model ships in a
//! package registry, so [`ClassMatchGrounder`] matches phrases to the classes of a COCO detector's
//! objects instead: a small synonym table first ("fans" -> person, "puppy" -> dog), then the text
//! encoder's similarity between the phrase (and its head word) and each class name. Where the image
//! is known only by its caption, [`CaptionGrounder`] matches them to the caption's noun phrases the
//! same way: the same head word, the same class by the table, or the encoder's similarity.
//! [`Grounder`] is the seam where a real phrase-grounding model would go.
use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tch::{Kind, Tensor};

use crate::Result;
use crate::schema::QueryKind;
use crate::text::encoder::TextEncoder;
use crate::torch::TorchResult;
use crate::vision::coco;
use crate::vision::detector::Detection;

/// Something in the tweet that may point at an object: a noun phrase or a general word.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Query {
    pub text: String,
    /// The phrase's head word (the general word itself for general words).
    pub head: String,
    pub kind: QueryKind,
    /// Word range of a phrase (end exclusive).
    pub span: Option<(u32, u32)>,
}

/// What a tweet's queries may point at.
pub enum Candidates<'a> {
    /// The objects a detector found in the tweet's image (the image file: a grounding model that
    /// proposes its own boxes reads it; ours does not).
    Detections {
        image: &'a Path,
        detections: &'a [Detection],
    },
    /// The noun phrases of the image's caption.
    CaptionPhrases(&'a [CaptionPhrase]),
}

/// A noun phrase of an image's caption, a candidate visual node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaptionPhrase {
    pub text: String,
    pub head: String,
}

/// One tweet's grounding problem.
pub struct GroundingInput<'a> {
    pub candidates: Candidates<'a>,
    pub queries: &'a [Query],
}

impl<'a> GroundingInput<'a> {
    /// The detections among the candidates (none if they are caption phrases).
    pub fn detections(&self) -> &'a [Detection] {
        match self.candidates {
            Candidates::Detections { detections, .. } => detections,
            Candidates::CaptionPhrases(_) => &[],
        }
    }

    /// The caption phrases among the candidates (none if they are detections).
    pub fn caption_phrases(&self) -> &'a [CaptionPhrase] {
        match self.candidates {
            Candidates::CaptionPhrases(phrases) => phrases,
            Candidates::Detections { .. } => &[],
        }
    }
}

/// `query` (an index into the input's queries) points at candidate `candidate` (a detection or a
/// caption phrase, by index).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// Memo entries from before caption phrases were candidates name it `detection`.
    #[serde(alias = "detection")]
    pub candidate: usize,
    pub query: usize,
    pub similarity: f32,
}

/// Finds the objects a tweet's queries point at.
pub trait Grounder {
    /// What identifies this grounder's results (name, model digests, parameters): part of cache keys.
    fn identity(&self) -> serde_json::Value;

    /// The matches of each input, in input order; many inputs at once so a model can batch them.
    fn ground(&mut self, inputs: &[GroundingInput<'_>]) -> Result<Vec<Vec<Match>>>;
}

/// Words that name a COCO class without being similar enough to its name for the encoder: the
/// crowd of a tweet is a person, a pup is a dog. Lower-case; plural forms listed where common.
const SYNONYMS: &[(&str, &[&str])] = &[
    (
        "person",
        &[
            "person",
            "people",
            "man",
            "men",
            "woman",
            "women",
            "guy",
            "guys",
            "boy",
            "boys",
            "girl",
            "girls",
            "kid",
            "kids",
            "child",
            "children",
            "baby",
            "babies",
            "lady",
            "ladies",
            "fan",
            "fans",
            "player",
            "players",
            "crowd",
            "actor",
            "actress",
            "singer",
            "star",
            "stars",
            "team",
            "friend",
            "friends",
            "family",
            "mom",
            "dad",
            "mother",
            "father",
            "son",
            "daughter",
            "wife",
            "husband",
            "bride",
            "groom",
            "couple",
            "president",
            "leader",
            "coach",
            "officer",
            "police",
            "cop",
            "cops",
            "soldier",
            "soldiers",
            "athlete",
            "rider",
            "driver",
            "student",
            "students",
            "artist",
            "band",
            "rapper",
            "celebrity",
            "queen",
            "king",
            "prince",
            "princess",
            "selfie",
            "member",
            "members",
            "dancer",
            "model",
            "fighter",
            "champion",
            "captain",
            "boss",
            "host",
            "winner",
            "hero",
            "legend",
            "teen",
            "teens",
            "youth",
            "audience",
            "squad",
        ],
    ),
    (
        "dog",
        &["puppy", "puppies", "pup", "pups", "doggy", "doggo", "pooch"],
    ),
    ("cat", &["kitten", "kittens", "kitty"]),
    ("horse", &["pony", "ponies", "stallion", "mare"]),
    ("cow", &["cattle", "bull", "calf"]),
    ("bicycle", &["bike", "bikes", "cycle"]),
    ("motorcycle", &["motorbike", "motorbikes", "scooter"]),
    ("car", &["cars", "vehicle", "taxi", "suv"]),
    (
        "airplane",
        &["plane", "planes", "jet", "aircraft", "airliner"],
    ),
    ("boat", &["ship", "yacht", "ferry", "canoe"]),
    ("bus", &["buses", "minibus"]),
    ("truck", &["lorry", "pickup"]),
    ("tv", &["television", "screen"]),
    ("cell phone", &["phone", "smartphone", "iphone", "mobile"]),
    ("laptop", &["notebook", "macbook", "computer"]),
    ("couch", &["sofa"]),
    ("dining table", &["table"]),
    (
        "sports ball",
        &["ball", "football", "soccer", "basketball", "baseball"],
    ),
    (
        "cup",
        &["mug", "mugs", "cups", "coffee", "espresso", "latte", "tea"],
    ),
    ("wine glass", &["wine", "glass"]),
    ("bottle", &["beer", "bottles"]),
    ("potted plant", &["plant", "plants", "flowers"]),
    ("handbag", &["bag", "purse"]),
    ("backpack", &["rucksack"]),
    ("tie", &["necktie"]),
    ("donut", &["doughnut", "doughnuts"]),
    ("teddy bear", &["teddy"]),
];

/// Class index of a word by the synonym table or the class's own name (singular or plural).
fn table_class(word: &str) -> Option<usize> {
    let word = word.to_lowercase();
    let word = word.trim_start_matches(['#', '@']);
    let singular = word.strip_suffix('s').unwrap_or(word);
    coco::class_index(word)
        .or_else(|| coco::class_index(singular))
        .or_else(|| {
            SYNONYMS
                .iter()
                .find(|(_, words)| words.contains(&word))
                .and_then(|(class, _)| coco::class_index(class))
        })
}

/// Parameters of [`ClassMatchGrounder`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMatchConfig {
    /// Cosine similarity (of MiniLM sentence embeddings) from which a phrase or its head matches a
    /// class name. 0.5 keeps "my new car" -> car and rejects "Wayne Rooney" -> person (names reach
    /// the person objects through the general word instead).
    pub min_similarity: f32,
}

impl Default for ClassMatchConfig {
    fn default() -> Self {
        Self {
            min_similarity: 0.5,
        }
    }
}

/// Bump when the synonym table or the matching rule changes: cached groundings are then redone.
const CLASS_MATCH_VERSION: u32 = 1;

/// [`ClassMatchGrounder`]'s identity, known without loading the encoder (for cache keys).
pub fn class_match_identity(encoder_digest: &str, config: &ClassMatchConfig) -> serde_json::Value {
    json!({
        "grounder": "class-match",
        "version": CLASS_MATCH_VERSION,
        "encoder": encoder_digest,
        "config": config,
    })
}

/// Grounds queries to detections of the classes they name (synonym table, then encoder similarity).
pub struct ClassMatchGrounder {
    encoder: TextEncoder,
    encoder_digest: String,
    config: ClassMatchConfig,
    /// Sentence embeddings of the 80 class names, [80, hidden].
    classes: Tensor,
}

const EMBED_BATCH: usize = 64;

impl ClassMatchGrounder {
    pub fn new(
        encoder: TextEncoder,
        encoder_digest: String,
        config: ClassMatchConfig,
    ) -> Result<Self> {
        let names: Vec<Vec<&str>> = coco::CLASSES
            .iter()
            .map(|c| c.split_whitespace().collect())
            .collect();
        let classes = encoder.sentence_embeddings(&names, EMBED_BATCH)?;
        Ok(Self {
            encoder,
            encoder_digest,
            config,
            classes,
        })
    }

    /// Similarity of each text to each class, [texts, 80].
    fn similarities(&self, texts: &[&str]) -> Result<Tensor> {
        let words: Vec<Vec<&str>> = texts
            .iter()
            .map(|t| t.split_whitespace().collect())
            .collect();
        let embeddings = self.encoder.sentence_embeddings(&words, EMBED_BATCH)?;
        Ok(embeddings.matmul(&self.classes.tr()))
    }

    /// Best similarity of a query to each class: 1 for a table match, else the larger of the
    /// phrase's and the head's encoder similarity.
    fn class_scores(&self, queries: &[&Query]) -> Result<Vec<Vec<f32>>> {
        let mut texts: Vec<&str> = Vec::new();
        let mut slot: HashMap<&str, usize> = HashMap::new();
        for q in queries {
            for t in [q.text.as_str(), q.head.as_str()] {
                slot.entry(t).or_insert_with(|| {
                    texts.push(t);
                    texts.len() - 1
                });
            }
        }
        let sims = self.similarities(&texts)?.to_kind(Kind::Float);
        let sims: Vec<Vec<f32>> = (0..texts.len() as i64)
            .map(|i| Vec::<f32>::try_from(sims.get(i)))
            .collect::<std::result::Result<_, _>>()
            .torch()?;
        Ok(queries
            .iter()
            .map(|q| {
                let (phrase, head) = (&sims[slot[q.text.as_str()]], &sims[slot[q.head.as_str()]]);
                let mut scores: Vec<f32> =
                    phrase.iter().zip(head).map(|(a, b)| a.max(*b)).collect();
                if let Some(class) = table_class(&q.head) {
                    scores[class] = 1.0;
                }
                scores
            })
            .collect())
    }
}

impl Grounder for ClassMatchGrounder {
    fn identity(&self) -> serde_json::Value {
        class_match_identity(&self.encoder_digest, &self.config)
    }

    fn ground(&mut self, inputs: &[GroundingInput<'_>]) -> Result<Vec<Vec<Match>>> {
        // Only queries of tweets with detections need embeddings; all of them go in one batch.
        let queries: Vec<&Query> = inputs
            .iter()
            .filter(|i| !i.detections().is_empty())
            .flat_map(|i| i.queries.iter())
            .collect();
        let mut scores = self.class_scores(&queries)?.into_iter();
        Ok(inputs
            .iter()
            .map(|input| {
                let detections = input.detections();
                if detections.is_empty() {
                    return Vec::new();
                }
                let mut matches = Vec::new();
                for (q, class_scores) in scores.by_ref().take(input.queries.len()).enumerate() {
                    for (d, detection) in detections.iter().enumerate() {
                        let similarity = class_scores[detection.class];
                        if similarity >= self.config.min_similarity {
                            matches.push(Match {
                                candidate: d,
                                query: q,
                                similarity,
                            });
                        }
                    }
                }
                matches
            })
            .collect())
    }
}

/// Parameters of [`CaptionGrounder`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaptionMatchConfig {
    /// Cosine similarity (of the encoder's sentence embeddings) from which a tweet phrase matches a
    /// caption phrase that has neither its head word nor its class. Higher than the class match's
    /// 0.5: two phrases share more words by chance than a phrase and a class name do.
    pub min_similarity: f32,
}

impl Default for CaptionMatchConfig {
    fn default() -> Self {
        Self {
            min_similarity: 0.6,
        }
    }
}

/// Bump when the caption matching rule changes: cached groundings are then redone.
const CAPTION_MATCH_VERSION: u32 = 1;

/// [`CaptionGrounder`]'s identity, known without loading the encoder (for cache keys).
pub fn caption_match_identity(
    encoder_digest: &str,
    config: &CaptionMatchConfig,
) -> serde_json::Value {
    json!({
        "grounder": "caption-match",
        "version": CAPTION_MATCH_VERSION,
        "encoder": encoder_digest,
        "config": config,
    })
}

/// A word as a head is compared: lower case, without a hashtag or mention sign or a plural `s`.
fn head_form(word: &str) -> String {
    let word = word.to_lowercase();
    let word = word.trim_start_matches(['#', '@']);
    word.strip_suffix('s').unwrap_or(word).to_owned()
}

/// Grounds a tweet's queries to the noun phrases of its image's caption: a phrase matches a caption
/// phrase with the same head word (1), with a head of the same class by the synonym table (1: "fans"
/// and "a crowd"), or whose text the encoder finds similar enough; a general word ("person")
/// matches the caption phrases whose head is of its class ("a man", "two women").
pub struct CaptionGrounder {
    encoder: TextEncoder,
    encoder_digest: String,
    config: CaptionMatchConfig,
}

impl CaptionGrounder {
    pub fn new(encoder: TextEncoder, encoder_digest: String, config: CaptionMatchConfig) -> Self {
        Self {
            encoder,
            encoder_digest,
            config,
        }
    }
}

impl Grounder for CaptionGrounder {
    fn identity(&self) -> serde_json::Value {
        caption_match_identity(&self.encoder_digest, &self.config)
    }

    fn ground(&mut self, inputs: &[GroundingInput<'_>]) -> Result<Vec<Vec<Match>>> {
        // Every distinct phrase text of every input, embedded in one batch.
        let mut texts: Vec<&str> = Vec::new();
        let mut slot: HashMap<&str, usize> = HashMap::new();
        for input in inputs.iter().filter(|i| !i.caption_phrases().is_empty()) {
            let queries = input.queries.iter().filter(|q| q.kind == QueryKind::Phrase);
            for text in queries
                .map(|q| q.text.as_str())
                .chain(input.caption_phrases().iter().map(|c| c.text.as_str()))
            {
                slot.entry(text).or_insert_with(|| {
                    texts.push(text);
                    texts.len() - 1
                });
            }
        }
        let words: Vec<Vec<&str>> = texts
            .iter()
            .map(|t| t.split_whitespace().collect())
            .collect();
        let embeddings = self.encoder.sentence_embeddings(&words, EMBED_BATCH)?;
        let similarity = |a: &str, b: &str| -> Result<f32> {
            let (a, b) = (slot[a] as i64, slot[b] as i64);
            Ok(embeddings.get(a).dot(&embeddings.get(b)).double_value(&[]) as f32)
        };
        inputs
            .iter()
            .map(|input| {
                let mut matches = Vec::new();
                for (q, query) in input.queries.iter().enumerate() {
                    for (c, phrase) in input.caption_phrases().iter().enumerate() {
                        let same_class = table_class(&query.head)
                            .is_some_and(|class| table_class(&phrase.head) == Some(class));
                        let score = match query.kind {
                            QueryKind::General => same_class.then_some(1.0),
                            QueryKind::Phrase => {
                                if same_class || head_form(&query.head) == head_form(&phrase.head) {
                                    Some(1.0)
                                } else {
                                    let s = similarity(&query.text, &phrase.text)?;
                                    (s >= self.config.min_similarity).then_some(s)
                                }
                            }
                        };
                        if let Some(similarity) = score {
                            matches.push(Match {
                                candidate: c,
                                query: q,
                                similarity,
                            });
                        }
                    }
                }
                Ok(matches)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_names_plurals_and_synonyms() {
        let class = |w: &str| table_class(w).map(|c| coco::CLASSES[c]);
        assert_eq!(class("Fans"), Some("person"));
        assert_eq!(class("dogs"), Some("dog"));
        assert_eq!(class("puppy"), Some("dog"));
        assert_eq!(class("#cat"), Some("cat"));
        assert_eq!(class("motorbike"), Some("motorcycle"));
        assert_eq!(class("Rooney"), None);
        for (class, _) in SYNONYMS {
            assert!(
                coco::class_index(class).is_some(),
                "{class} is not a COCO class"
            );
        }
    }
}
