//! Shards of a per-record stage (DESIGN.md section 8): `--shard K/N` runs the stage's work on the
//! records whose digest falls in shard K of N, so N processes (Slurm array tasks, or local processes)
//! can share one store.
//!
//! A shard's partition is its records' memo entries; a *shard run* (stage `<stage>-shard`, the whole
//! run's spec plus the shard) records that the partition is complete, so a re-submitted shard that
//! finished is a cache hit. The merge is the stage's ordinary whole run: every record is then a memo
//! hit, so its output is, by construction, the same file a single process writes, and it is keyed
//! like one (nothing downstream can tell).
//!
//! Concurrency, with no coordinator: shards of one split own disjoint records, so no work is done
//! twice; every store write is an atomic rename of a finished temp file (named by host and pid, so a
//! process never removes another host's half-written files); memo entries are idempotent (the same
//! key always holds the same payload); and each run holds its key's lock, so two tasks given the
//! same shard do its work once.
use std::fmt;
use std::str::FromStr;

use serde_json::json;

use super::RunSpec;
use crate::digest::Digest;
use crate::error::{Error, Result};

/// Shard `index` of `count` (0-based, as Slurm's `SLURM_ARRAY_TASK_ID` counts from `--array=0-N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Every record: a single-process run.
    pub const WHOLE: Self = Self { index: 0, count: 1 };

    pub fn new(index: u32, count: u32) -> Result<Self> {
        if count == 0 || index >= count {
            crate::bail!(Config, "shard {index}/{count}: want K/N with 0 <= K < N");
        }
        Ok(Self { index, count })
    }

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// Whether this shard owns the record with digest `record`. The digest is uniform, so shards are
    /// balanced, and a record always lands in the same shard of N.
    pub fn owns(&self, record: &Digest) -> bool {
        self.is_whole() || shard_of(record, self.count) == self.index
    }

    /// Every shard of `count`.
    pub fn all(count: u32) -> impl Iterator<Item = Self> {
        (0..count).map(move |index| Self { index, count })
    }

    /// The spec of this shard's run of the stage whose whole run is `whole`.
    pub fn spec(&self, whole: &RunSpec) -> RunSpec {
        RunSpec {
            stage: format!("{}-shard", whole.stage),
            version: whole.version,
            params: json!({"whole": whole.params, "shard": self.to_string()}),
            inputs: whole.inputs.clone(),
        }
    }
}

fn shard_of(record: &Digest, count: u32) -> u32 {
    let first = u64::from_le_bytes(record.as_bytes()[..8].try_into().expect("32-byte digest"));
    (first % u64::from(count)) as u32
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Config(format!("shard {s:?}: want K/N, e.g. 0/4"));
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let parse = |v: &str| v.trim().parse::<u32>().map_err(|_| bad());
        Self::new(parse(k)?, parse(n)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            "2/4".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 4 }
        );
        for bad in ["4/4", "1/0", "x/4", "3", "-1/4", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(Shard::new(3, 8).unwrap().to_string(), "3/8");
    }

    #[test]
    fn each_record_has_exactly_one_owner_and_shards_are_balanced() {
        let records: Vec<Digest> = (0..4000)
            .map(|i| Digest::of_bytes(format!("tweet {i}").as_bytes()))
            .collect();
        let mut sizes = [0usize; 4];
        for record in &records {
            let owners: Vec<Shard> = Shard::all(4).filter(|s| s.owns(record)).collect();
            assert_eq!(owners.len(), 1);
            sizes[owners[0].index as usize] += 1;
            assert!(Shard::WHOLE.owns(record));
        }
        // 1000 expected per shard; the binomial sd is about 27.
        assert!(sizes.iter().all(|&n| (850..1150).contains(&n)), "{sizes:?}");
    }

    #[test]
    fn shard_runs_have_their_own_keys() {
        let whole = RunSpec {
            stage: "chunk".into(),
            version: 1,
            params: json!({}),
            inputs: Default::default(),
        };
        let keys: std::collections::HashSet<Digest> = Shard::all(4)
            .map(|s| s.spec(&whole).key())
            .chain([whole.key()])
            .collect();
        assert_eq!(keys.len(), 5);
    }
}
