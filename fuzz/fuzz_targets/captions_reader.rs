//! The captions reader on arbitrary bytes: captions plus diagnostics, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use umgf_core::io::{Limits, captions};

fuzz_target!(|data: &[u8]| {
    let path = umgf_fuzz::input_file("captions", data);
    let parsed = captions::read(&path, &umgf_fuzz::LIMITS)
        .expect("reading a local file only fails on I/O");
    for caption in &parsed.captions {
        assert!(caption.line >= 1, "{caption:?}");
        assert!(
            !caption.image.is_empty() && !caption.image.contains(char::is_whitespace),
            "{caption:?}"
        );
        assert!(!caption.text.trim().is_empty(), "{caption:?}");
        assert!(caption.text.len() <= Limits::DEFAULT_MAX_RECORD_BYTES);
    }
    for d in &parsed.rejected {
        assert!(d.line >= 1 && !d.message.is_empty(), "{d:?}");
    }
});
