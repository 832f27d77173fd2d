//! Arbitrary bytes through the stdio decoder: it must not panic, must keep
//! its buffer within the frame limit plus one read, and must consume
//! everything by EOF. Several limits, so overlong-line handling is reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stdiopool::framing::DEFAULT_MAX_FRAME_BYTES;
use stdiopool_fuzz::drive;

fuzz_target!(|data: &[u8]| {
    // Tiny limits reach the overlong-line paths; odd read sizes reach the
    // incremental search; the default limit is what production runs.
    drive(0, &data.chunks(7).collect::<Vec<_>>());
    drive(16, &[data]);
    drive(1024, &data.chunks(61).collect::<Vec<_>>());
    drive(
        DEFAULT_MAX_FRAME_BYTES,
        &data.chunks(4096).collect::<Vec<_>>(),
    );
});
