//! A linear-chain CRF over per-word tag scores: the training loss (negative log-likelihood by the
//! forward algorithm) and Viterbi decoding, batched, with a prefix mask for sentences of different
//! lengths. Both are checked against brute-force enumeration of every tag sequence in the tests.
use tch::nn::{self, Init};
use tch::{Kind, Tensor};

/// Scores of starting in, ending in, and moving between tags.
#[derive(Debug)]
pub(crate) struct Crf {
    /// [tags]
    pub start: Tensor,
    /// [tags]
    pub end: Tensor,
    /// [from, to]
    pub transitions: Tensor,
    tags: i64,
}

impl Crf {
    /// Parameters start uniform in [-0.1, 0.1] (as pytorch-crf does).
    pub(crate) fn new(p: &nn::Path, tags: i64) -> Self {
        let init = Init::Uniform { lo: -0.1, up: 0.1 };
        Self {
            start: p.var("start", &[tags], init),
            end: p.var("end", &[tags], init),
            transitions: p.var("transitions", &[tags, tags], init),
            tags,
        }
    }

    /// Mean negative log-likelihood of `tags` [batch, len] (int64) under `emissions`
    /// [batch, len, tags]; `mask` [batch, len] (bool) marks real words, a prefix of each row, the
    /// first always set.
    pub(crate) fn neg_log_likelihood(
        &self,
        emissions: &Tensor,
        tags: &Tensor,
        mask: &Tensor,
    ) -> Tensor {
        (self.log_partition(emissions, mask) - self.score(emissions, tags, mask)).mean(Kind::Float)
    }

    /// Score of given tag sequences, [batch].
    pub(crate) fn score(&self, emissions: &Tensor, tags: &Tensor, mask: &Tensor) -> Tensor {
        let len = emissions.size()[1];
        let maskf = mask.to_kind(emissions.kind());
        // Emission of each word's tag.
        let emitted = emissions
            .gather(2, &tags.unsqueeze(2), false)
            .squeeze_dim(2);
        let mut score = self.start.index_select(0, &tags.select(1, 0))
            + (emitted * &maskf).sum_dim_intlist(1, false, emissions.kind());
        if len > 1 {
            let from = tags.narrow(1, 0, len - 1);
            let to = tags.narrow(1, 1, len - 1);
            let moves = self
                .transitions
                .reshape([-1])
                .index_select(0, &(from * self.tags + to).reshape([-1]))
                .reshape([-1, len - 1]);
            score +=
                (moves * maskf.narrow(1, 1, len - 1)).sum_dim_intlist(1, false, emissions.kind());
        }
        // The tag of each row's last real word.
        let last = mask
            .to_kind(Kind::Int64)
            .sum_dim_intlist(1, false, Kind::Int64)
            - 1;
        let last_tags = tags.gather(1, &last.unsqueeze(1), false).squeeze_dim(1);
        score + self.end.index_select(0, &last_tags)
    }

    /// log Z of each row by the forward algorithm, [batch].
    pub(crate) fn log_partition(&self, emissions: &Tensor, mask: &Tensor) -> Tensor {
        let len = emissions.size()[1];
        let mut alpha = &self.start + emissions.select(1, 0);
        for t in 1..len {
            // [batch, from, 1] + [from, to] + [batch, 1, to]
            let next =
                (alpha.unsqueeze(2) + &self.transitions + emissions.select(1, t).unsqueeze(1))
                    .logsumexp(&[1i64][..], false);
            alpha = next.where_self(&mask.select(1, t).unsqueeze(1), &alpha);
        }
        (alpha + &self.end).logsumexp(&[1i64][..], false)
    }

    /// The best tag sequence of each row, as long as its mask.
    pub(crate) fn viterbi(&self, emissions: &Tensor, mask: &Tensor) -> Vec<Vec<i64>> {
        let (batch, len) = (emissions.size()[0], emissions.size()[1]);
        let mut best = &self.start + emissions.select(1, 0);
        let mut backpointers = Vec::new();
        for t in 1..len {
            let candidates =
                best.unsqueeze(2) + &self.transitions + emissions.select(1, t).unsqueeze(1);
            let (next, from) = candidates.max_dim(1, false);
            let on = mask.select(1, t).unsqueeze(1);
            best = next.where_self(&on, &best);
            backpointers.push(from);
        }
        let best = best + &self.end;
        let lengths = Vec::<i64>::try_from(mask.to_kind(Kind::Int64).sum_dim_intlist(
            1,
            false,
            Kind::Int64,
        ))
        .unwrap_or_default();
        let last = Vec::<i64>::try_from(best.argmax(1, false)).unwrap_or_default();
        let pointers: Vec<Vec<i64>> = backpointers
            .iter()
            .map(|b| Vec::<i64>::try_from(b.flatten(0, -1)).unwrap_or_default())
            .collect();
        (0..batch as usize)
            .map(|row| {
                let n = lengths.get(row).copied().unwrap_or(0) as usize;
                let mut path = vec![last.get(row).copied().unwrap_or(0)];
                for t in (1..n).rev() {
                    let previous = path[path.len() - 1];
                    path.push(pointers[t - 1][row * self.tags as usize + previous as usize]);
                }
                path.reverse();
                path
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Every tag sequence of length `n` over `tags` tags.
    fn sequences(tags: i64, n: usize) -> Vec<Vec<i64>> {
        let mut all = vec![vec![]];
        for _ in 0..n {
            all = all
                .into_iter()
                .flat_map(|s: Vec<i64>| (0..tags).map(move |t| [s.clone(), vec![t]].concat()))
                .collect();
        }
        all
    }

    fn brute_score(crf: &Crf, emissions: &Tensor, row: i64, path: &[i64]) -> f64 {
        let e = |t: usize, tag: i64| emissions.double_value(&[row, t as i64, tag]);
        let mut s = crf.start.double_value(&[path[0]]) + e(0, path[0]);
        for t in 1..path.len() {
            s += crf.transitions.double_value(&[path[t - 1], path[t]]) + e(t, path[t]);
        }
        s + crf.end.double_value(&[path[path.len() - 1]])
    }

    #[test]
    fn forward_score_and_viterbi_match_brute_force() {
        tch::manual_seed(7);
        let vs = nn::VarStore::new(Device::Cpu);
        let tags = 3;
        let crf = Crf::new(&vs.root(), tags);
        // Give the parameters some spread so that a wrong transition index shows.
        tch::no_grad(|| {
            crf.transitions
                .shallow_clone()
                .copy_(&(Tensor::randn([tags, tags], (Kind::Float, Device::Cpu))));
            crf.start
                .shallow_clone()
                .copy_(&Tensor::randn([tags], (Kind::Float, Device::Cpu)));
            crf.end
                .shallow_clone()
                .copy_(&Tensor::randn([tags], (Kind::Float, Device::Cpu)));
        });
        // Three rows of lengths 4, 2 and 1 in one padded batch.
        let lengths = [4usize, 2, 1];
        let emissions = Tensor::randn([3, 4, tags], (Kind::Float, Device::Cpu));
        let mask = Tensor::from_slice(&[
            true, true, true, true, true, true, false, false, true, false, false, false,
        ])
        .view([3, 4]);
        let log_z = crf.log_partition(&emissions, &mask);
        let decoded = crf.viterbi(&emissions, &mask);
        for (row, &n) in lengths.iter().enumerate() {
            let all = sequences(tags, n);
            let scores: Vec<f64> = all
                .iter()
                .map(|p| brute_score(&crf, &emissions, row as i64, p))
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let brute_log_z = max + scores.iter().map(|s| (s - max).exp()).sum::<f64>().ln();
            assert!(
                (log_z.double_value(&[row as i64]) - brute_log_z).abs() < 1e-4,
                "row {row}"
            );
            let best = &all[scores.iter().position(|s| *s == max).unwrap()];
            assert_eq!(&decoded[row], best, "row {row}");
            // The score of one padded tag sequence.
            let mut padded = best.clone();
            padded.resize(4, 0);
            let tag_tensor = Tensor::from_slice(&padded).view([1, 4]);
            let one = crf.score(
                &emissions.narrow(0, row as i64, 1),
                &tag_tensor,
                &mask.narrow(0, row as i64, 1),
            );
            assert!((one.double_value(&[0]) - max).abs() < 1e-4, "row {row}");
        }
        // The loss is finite and has gradients for every parameter.
        let tag_batch = Tensor::from_slice(&[0i64, 1, 2, 1, 2, 2, 0, 0, 1, 0, 0, 0]).view([3, 4]);
        let loss = crf.neg_log_likelihood(&emissions, &tag_batch, &mask);
        assert!(loss.double_value(&[]) > 0.0);
        loss.backward();
        for v in vs.trainable_variables() {
            assert!(v.grad().defined() && v.grad().isfinite().all().int64_value(&[]) == 1);
        }
    }
}
