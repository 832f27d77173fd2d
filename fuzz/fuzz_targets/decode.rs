//! Arbitrary bytes through the stdio decoder: it must not panic, must keep
//! its buffer within the frame limit plus one read, and must consume
//! everything by EOF. Several limits, so overlong-line handling is reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stdiopool::framing::DEFAULT_MAX_FRAME_BYTES;
use stdiopool_fuzz::drive;

fuzz_target!(|data: &[u8]| {
    for max in [0, 16, 1024, DEFAULT_MAX_FRAME_BYTES] {
        drive(max, &[data]);
        drive(max, &data.chunks(61).collect::<Vec<_>>());
    }
});
