//! Memory budgets: sizes written as people write them (`4G`, `512M`), and the default budget of
//! the stages that choose between holding a dataset in memory and streaming it.
use crate::error::{Error, Result};

/// When physical memory cannot be read (no `/proc/meminfo`): a budget most machines that train
/// this model have.
const FALLBACK_BUDGET: u64 = 8 << 30;

/// `4G`, `512M`, `64k`, `1.5G` or a plain number of bytes; the suffixes (K, M, G, T, with or
/// without a trailing `B` or `iB`, any case) are powers of 1024.
pub fn parse_bytes(text: &str) -> Result<u64> {
    let bad = || {
        Error::Config(format!(
            "{text:?} is not a size in bytes (a number, or one with a suffix: 512M, 4G)"
        ))
    };
    let lower = text.trim().to_ascii_lowercase();
    let number = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (digits, shift) = match number.chars().last() {
        Some('k') => (&number[..number.len() - 1], 10),
        Some('m') => (&number[..number.len() - 1], 20),
        Some('g') => (&number[..number.len() - 1], 30),
        Some('t') => (&number[..number.len() - 1], 40),
        _ => (number, 0),
    };
    let value: f64 = digits.trim().parse().map_err(|_| bad())?;
    if !value.is_finite() || value < 0.0 {
        return Err(bad());
    }
    Ok((value * (1u64 << shift) as f64) as u64)
}

/// Physical memory (`MemTotal` of `/proc/meminfo`), if it can be read.
pub fn physical() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The default budget: half of physical memory, else 8 GiB. Half, because the model, libtorch's
/// buffers and the batches come on top of what the budget counts (the examples), and the machine is
/// shared with other processes. Physical memory rather than what is free right now: the budget
/// decides whether a training run streams, which changes its result, so the same command on the
/// same machine must decide the same way whatever else runs beside it.
pub fn default_budget() -> u64 {
    physical().map_or(FALLBACK_BUDGET, |total| total / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_and_without_suffixes() {
        assert_eq!(parse_bytes("123").unwrap(), 123);
        assert_eq!(parse_bytes("4G").unwrap(), 4 << 30);
        assert_eq!(parse_bytes("4gib").unwrap(), 4 << 30);
        assert_eq!(parse_bytes("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("64k").unwrap(), 64 << 10);
        assert_eq!(parse_bytes("1.5G").unwrap(), 3 << 29);
        for bad in ["", "G", "four", "-1G", "1X"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }
}
