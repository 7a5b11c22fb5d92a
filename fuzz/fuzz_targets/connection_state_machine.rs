//! Arbitrary frame sequences, from up to three clients and the server's handle at once,
//! through the real connection driver: handshake, frame pipeline, room router, writer.
//! The checks are in `ghost_sync_fuzz::session`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|script: ghost_sync_fuzz::session::Script| {
    ghost_sync_fuzz::session::run(script);
});
