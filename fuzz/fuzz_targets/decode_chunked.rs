//! Chunking invariance: the same bytes split at fuzzer-chosen points must
//! give exactly the messages and errors of a single read.
//!
//! Input layout: byte 0 picks the frame limit, byte 1 the number of cuts
//! (mod 32), then one little-endian u16 per cut (taken modulo the payload
//! length + 1), then the payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stdiopool::framing::DEFAULT_MAX_FRAME_BYTES;
use stdiopool_fuzz::drive;

const LIMITS: [usize; 8] = [0, 1, 8, 64, 256, 4096, 65536, DEFAULT_MAX_FRAME_BYTES];

fuzz_target!(|data: &[u8]| {
    let [limit, cuts, rest @ ..] = data else {
        return;
    };
    let max = LIMITS[usize::from(*limit) % LIMITS.len()];
    let n = usize::from(*cuts) % 32;
    if rest.len() < 2 * n {
        return;
    }
    let (cut_bytes, payload) = rest.split_at(2 * n);
    let mut points: Vec<usize> = cut_bytes
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (payload.len() + 1))
        .collect();
    points.sort_unstable();
    let mut chunks = Vec::with_capacity(n + 1);
    let mut start = 0;
    for p in points {
        chunks.push(&payload[start..p]);
        start = p;
    }
    chunks.push(&payload[start..]);
    assert_eq!(drive(max, &chunks), drive(max, &[payload]));
});
