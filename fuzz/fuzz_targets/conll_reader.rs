//! The CoNLL reader (Twitter-2015/2017 format) on arbitrary bytes: it must return tweets plus
//! diagnostics, never panic, and every tweet it keeps must be well formed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use umgf_core::io::conll;

fuzz_target!(|data: &[u8]| {
    let path = umgf_fuzz::input_file("conll", data);
    let parsed = conll::read(&path, &umgf_fuzz::LIMITS).expect("reading a local file only fails on I/O");
    umgf_fuzz::check_tweets(&parsed, true);
});
