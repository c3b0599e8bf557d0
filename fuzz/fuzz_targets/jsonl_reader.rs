//! The JSONL dump reader on arbitrary bytes: tweets plus diagnostics, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use umgf_core::io::jsonl;

fuzz_target!(|data: &[u8]| {
    let path = umgf_fuzz::input_file("jsonl", data);
    let parsed = jsonl::read(&path, &umgf_fuzz::LIMITS).expect("reading a local file only fails on I/O");
    umgf_fuzz::check_tweets(&parsed, false);
});
