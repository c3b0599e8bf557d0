//! Noun-phrase chunk tags (B-NP, I-NP, O), their spans, and decoding that never yields an I-NP that does
//! not continue a phrase.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NpTag {
    O = 0,
    B = 1,
    I = 2,
}

impl NpTag {
    pub const COUNT: usize = 3;

    pub fn from_index(i: usize) -> Self {
        match i {
            1 => NpTag::B,
            2 => NpTag::I,
            _ => NpTag::O,
        }
    }

    /// A CoNLL-2000 chunk label: B-NP and I-NP are kept, every other chunk (VP, PP, ...) is O.
    pub fn from_chunk_label(label: &str) -> Self {
        match label {
            "B-NP" => NpTag::B,
            "I-NP" => NpTag::I,
            _ => NpTag::O,
        }
    }
}

/// Noun phrases as word ranges `start..end`; a stray I-NP starts a phrase (conlleval).
pub fn np_spans(tags: &[NpTag]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, tag) in tags.iter().enumerate() {
        match tag {
            NpTag::I if start.is_some() => {}
            NpTag::B | NpTag::I => {
                if let Some(s) = start.replace(i) {
                    out.push((s, i));
                }
            }
            NpTag::O => {
                if let Some(s) = start.take() {
                    out.push((s, i));
                }
            }
        }
    }
    if let Some(s) = start {
        out.push((s, tags.len()));
    }
    out
}

/// Best tag sequence under per-word log-probabilities `scores[i][tag]`, with I-NP allowed only after
/// B-NP or I-NP (Viterbi over the allowed transitions).
pub fn decode(scores: &[[f32; NpTag::COUNT]]) -> Vec<NpTag> {
    let allowed =
        |prev: Option<usize>, next: usize| next != NpTag::I as usize || matches!(prev, Some(1 | 2));
    let n = scores.len();
    if n == 0 {
        return Vec::new();
    }
    let mut best = vec![[f32::NEG_INFINITY; NpTag::COUNT]; n];
    let mut back = vec![[0usize; NpTag::COUNT]; n];
    for t in 0..NpTag::COUNT {
        if allowed(None, t) {
            best[0][t] = scores[0][t];
        }
    }
    for i in 1..n {
        for t in 0..NpTag::COUNT {
            for p in 0..NpTag::COUNT {
                if allowed(Some(p), t) && best[i - 1][p] + scores[i][t] > best[i][t] {
                    best[i][t] = best[i - 1][p] + scores[i][t];
                    back[i][t] = p;
                }
            }
        }
    }
    let mut tag = (0..NpTag::COUNT)
        .max_by(|&a, &b| best[n - 1][a].total_cmp(&best[n - 1][b]))
        .unwrap_or(0);
    let mut out = vec![NpTag::O; n];
    for i in (0..n).rev() {
        out[i] = NpTag::from_index(tag);
        tag = back[i][tag];
    }
    out
}

/// Precision, recall and F1 (percent) of predicted phrase spans against gold, exact match.
pub fn span_f1(gold: &[Vec<(usize, usize)>], predicted: &[Vec<(usize, usize)>]) -> (f64, f64, f64) {
    let (mut correct, mut n_gold, mut n_pred) = (0usize, 0usize, 0usize);
    for (g, p) in gold.iter().zip(predicted) {
        n_gold += g.len();
        n_pred += p.len();
        correct += p.iter().filter(|span| g.contains(span)).count();
    }
    let precision = if n_pred == 0 {
        0.0
    } else {
        100.0 * correct as f64 / n_pred as f64
    };
    let recall = if n_gold == 0 {
        0.0
    } else {
        100.0 * correct as f64 / n_gold as f64
    };
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    (precision, recall, f1)
}

/// Relations whose dependent, with everything under it, belongs to its nominal head's noun phrase:
/// determiners, adjectives, compounds and names, numbers, possessives.
const NP_MODIFIERS: &[&str] = &[
    "det",
    "det:poss",
    "amod",
    "compound",
    "flat",
    "flat:name",
    "flat:foreign",
    "fixed",
    "goeswith",
    "nummod",
    "nmod:poss",
];

/// Parts of speech that head a noun phrase.
const NOMINALS: &[&str] = &["NOUN", "PROPN", "PRON", "NUM"];

/// Base noun phrases of a dependency tree, as CoNLL-2000 marks them, by this rule: every nominal (UPOS
/// NOUN, PROPN, PRON or NUM) that is not itself a modifier of a nominal heads one phrase, made of it
/// and the whole subtrees of its determiners, adjectives, compounds and flat names, numbers and
/// possessives ([`NP_MODIFIERS`]); prepositional phrases (`nmod`), clauses (`acl`, `acl:relcl`),
/// appositions and conjuncts stay out. The phrase is the contiguous run of those words around the
/// head, without punctuation at its edges; a phrase that would overlap an earlier one is left out.
pub fn base_noun_phrases(sentence: &crate::io::conllu::UdSentence) -> Vec<NpTag> {
    let words = &sentence.words;
    let n = words.len();
    let nominal = |i: usize| NOMINALS.contains(&words[i].upos.as_str());
    let head_of = |i: usize| words[i].head.checked_sub(1);
    let modifies_a_nominal = |i: usize| {
        NP_MODIFIERS.contains(&words[i].deprel.as_str()) && head_of(i).is_some_and(nominal)
    };
    // In the phrase of `head`: the head, and the whole subtree of each of its modifiers (the word
    // on the path that hangs from the head must hang from it by a modifier relation).
    let in_phrase = |word: usize, head: usize| {
        let mut at = word;
        for _ in 0..n {
            if at == head {
                return true;
            }
            let Some(up) = head_of(at) else { return false };
            if up == head {
                return NP_MODIFIERS.contains(&words[at].deprel.as_str());
            }
            at = up;
        }
        false // a cycle: not a tree
    };
    let mut tags = vec![NpTag::O; n];
    for head in (0..n).filter(|&i| nominal(i) && !modifies_a_nominal(i)) {
        let (mut start, mut end) = (head, head + 1);
        while start > 0 && in_phrase(start - 1, head) {
            start -= 1;
        }
        while end < n && in_phrase(end, head) {
            end += 1;
        }
        while start < head && words[start].upos == "PUNCT" {
            start += 1;
        }
        while end > head + 1 && words[end - 1].upos == "PUNCT" {
            end -= 1;
        }
        if tags[start..end].iter().any(|t| *t != NpTag::O) {
            continue;
        }
        tags[start] = NpTag::B;
        tags[start + 1..end].fill(NpTag::I);
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use NpTag::*;

    #[test]
    fn spans_follow_conlleval() {
        assert_eq!(
            np_spans(&[B, I, O, I, B, B, I]),
            vec![(0, 2), (3, 4), (4, 5), (5, 7)]
        );
    }

    #[test]
    fn decoding_never_starts_with_inside() {
        // The most likely tag of word 0 alone is I, which is not allowed first.
        let scores = [[-2.0, -1.0, -0.1], [-3.0, -2.0, -0.1], [-0.1, -3.0, -3.0]];
        assert_eq!(decode(&scores), vec![B, I, O]);
        let after_o = [[-0.1, -3.0, -3.0], [-3.0, -1.0, -0.5]];
        assert_eq!(decode(&after_o), vec![O, B]);
    }

    #[test]
    fn f1_counts_exact_spans() {
        let gold = vec![vec![(0, 2), (3, 4)]];
        let pred = vec![vec![(0, 2), (3, 5)]];
        let (p, r, f) = span_f1(&gold, &pred);
        assert_eq!((p, r, f), (50.0, 50.0, 50.0));
    }

    fn tree(rows: &[(&str, &str, usize, &str)]) -> crate::io::conllu::UdSentence {
        crate::io::conllu::UdSentence {
            words: rows
                .iter()
                .map(|&(form, upos, head, deprel)| crate::io::conllu::UdWord {
                    form: form.to_owned(),
                    upos: upos.to_owned(),
                    head,
                    deprel: deprel.to_owned(),
                })
                .collect(),
        }
    }

    fn phrases(sentence: &crate::io::conllu::UdSentence) -> Vec<String> {
        np_spans(&base_noun_phrases(sentence))
            .into_iter()
            .map(|(s, e)| {
                let words: Vec<&str> = sentence.words[s..e]
                    .iter()
                    .map(|w| w.form.as_str())
                    .collect();
                words.join(" ")
            })
            .collect()
    }

    #[test]
    fn base_noun_phrases_of_tweebank_trees() {
        // Tweebank v2 test, the first tweet.
        let backpack = tree(&[
            ("new", "ADJ", 3, "amod"),
            ("unique", "ADJ", 3, "amod"),
            ("backpack", "NOUN", 0, "root"),
            ("!", "PUNCT", 3, "punct"),
            ("combines", "VERB", 0, "root"),
            ("vintage", "NOUN", 5, "obj"),
            ("with", "ADP", 8, "case"),
            ("modern", "NOUN", 5, "obl"),
            ("!", "PUNCT", 5, "punct"),
            ("URL1283", "X", 0, "root"),
            ("via", "ADP", 12, "case"),
            ("@USER415", "PROPN", 10, "nmod"),
        ]);
        assert_eq!(
            phrases(&backpack),
            ["new unique backpack", "vintage", "modern", "@USER415"]
        );
        // Numbers, determiners, a compound and a name; the PPs stay out.
        let video = tree(&[
            ("It", "PRON", 4, "nsubj"),
            ("'s", "AUX", 4, "aux"),
            ("3", "NUM", 4, "nummod"),
            ("years", "NOUN", 0, "root"),
            ("since", "ADP", 7, "case"),
            ("the", "DET", 7, "det"),
            ("release", "NOUN", 4, "obl"),
            ("of", "ADP", 11, "case"),
            ("the", "DET", 11, "det"),
            ("music", "NOUN", 11, "compound"),
            ("video", "NOUN", 7, "nmod"),
            ("of", "ADP", 13, "case"),
            ("Burning", "PROPN", 11, "nmod"),
            ("Desire", "PROPN", 13, "flat"),
        ]);
        assert_eq!(
            phrases(&video),
            [
                "It",
                "3 years",
                "the release",
                "the music video",
                "Burning Desire"
            ]
        );
        // A possessive belongs to the phrase it modifies, its 's too.
        let wife = tree(&[
            ("Obama", "PROPN", 3, "nmod:poss"),
            ("'s", "PART", 1, "case"),
            ("wife", "NOUN", 4, "nsubj"),
            ("smiles", "VERB", 0, "root"),
        ]);
        assert_eq!(phrases(&wife), ["Obama 's wife"]);
    }
}
