//! Integration tests live in `tests.rs` (one binary, to link libtorch once); see the modules it declares.
