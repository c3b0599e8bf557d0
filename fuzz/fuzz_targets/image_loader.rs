//! The image loader on arbitrary bytes: an RGB image within the size limits, or a `BadImage` reason;
//! never a panic, never an allocation beyond the decoder limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use umgf_core::vision::decode::{MAX_SIDE, load_rgb};

fuzz_target!(|data: &[u8]| {
    let path = umgf_fuzz::input_file("image", data);
    if let Ok(image) = load_rgb(&path) {
        let (w, h) = image.dimensions();
        assert!(w > 0 && h > 0 && w.max(h) <= MAX_SIDE, "{w}x{h}");
    }
});
