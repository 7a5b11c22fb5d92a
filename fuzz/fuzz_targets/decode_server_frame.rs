//! `decode_frame::<ServerFrame>` on arbitrary bytes, and the `FrameReader` length-prefix path
//! on an arbitrary stream in arbitrary chunks: what the client does with every relay byte.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ghost_sync_fuzz::server(data));
