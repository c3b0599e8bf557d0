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
}
