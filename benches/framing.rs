//! Decode throughput of the stdio framing: the framing alone
//! (`RawLineCodec`: newline search, limit, split), framing plus JSON
//! validation (no tree built), and framing plus parsing into `Value`
//! (`JsonRpcCodec`), on small MCP requests and on 1 MiB tool results (a
//! base64 image, and structured JSON); and the reader's envelope path on
//! one such line of each kind (`envelope_1mib`).
//! Figures and the command are in docs/PERFORMANCE-framing.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde::de::IgnoredAny;
use stdiopool::framing::{DEFAULT_MAX_FRAME_BYTES, JsonRpcCodec, RawLineCodec};
use stdiopool::upstream::connection::{envelope_success_response_len, envelope_tree_would_refuse};
use tokio_util::codec::Decoder;

const MIB: usize = 1024 * 1024;

/// 4 096 small `tools/call` requests (~200 bytes each), as clients send them.
fn small_requests() -> Vec<u8> {
    let mut out = Vec::new();
    for id in 0..4096 {
        out.extend_from_slice(
            format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"get-sum\",\"arguments\":{{\"a\":{id},\"b\":3}},\"_meta\":{{\"progressToken\":\"tok-{id}\"}}}}}}\n"
            )
            .as_bytes(),
        );
    }
    out
}

/// 8 tool results of ~1 MiB each: a base64 image, the usual large payload.
fn large_results() -> Vec<u8> {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    for id in 0..8 {
        let data: String = (0..MIB).map(|i| B64[(i * 7 + id) % 64] as char).collect();
        out.extend_from_slice(
            format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"content\":[{{\"type\":\"image\",\"data\":\"{data}\",\"mimeType\":\"image/png\"}}]}}}}\n"
            )
            .as_bytes(),
        );
    }
    out
}

/// 8 tool results of ~1 MiB each whose bulk is structured JSON (an array of
/// small objects in `structuredContent`): the worst case for parsing.
fn large_structured_results() -> Vec<u8> {
    let mut out = Vec::new();
    for id in 0..8 {
        let mut rows = String::from("[");
        let mut i = 0;
        while rows.len() < MIB {
            if i > 0 {
                rows.push(',');
            }
            rows.push_str(&format!(
                "{{\"id\":{i},\"name\":\"row-{i}\",\"score\":{}.5,\"tags\":[\"alpha\",\"beta\"],\"ok\":true}}",
                i % 100
            ));
            i += 1;
        }
        rows.push(']');
        out.extend_from_slice(
            format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"content\":[],\"structuredContent\":{{\"rows\":{rows}}}}}}}\n"
            )
            .as_bytes(),
        );
    }
    out
}

/// Decodes every frame of `input`, handed over in reads of `read` bytes.
fn decode_all<D: Decoder>(mut codec: D, input: &[u8], read: usize) -> usize
where
    D::Error: std::fmt::Debug,
{
    let mut buf = BytesMut::with_capacity(read.min(input.len()) + 1);
    let mut frames = 0;
    for chunk in input.chunks(read) {
        buf.extend_from_slice(chunk);
        while let Some(frame) = codec.decode(&mut buf).expect("no fatal error") {
            black_box(frame);
            frames += 1;
        }
    }
    frames
}

fn bench_input(c: &mut Criterion, name: &str, input: &[u8], frames: usize) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(4));
    // One read holding everything: the decoder's own cost, nothing else.
    group.bench_function("framing_only/one_read", |b| {
        b.iter_batched(
            || BytesMut::from(input),
            |mut buf| {
                let mut codec = RawLineCodec::new(DEFAULT_MAX_FRAME_BYTES);
                let mut n = 0;
                while let Some(frame) = codec.decode(&mut buf).expect("no fatal error") {
                    black_box(frame.expect("valid frame"));
                    n += 1;
                }
                assert_eq!(n, frames);
            },
            BatchSize::LargeInput,
        )
    });
    // JSON validation without building a `Value`: separates the parser's own
    // cost from the cost of allocating the tree.
    group.bench_function("framing_and_validate/one_read", |b| {
        b.iter_batched(
            || BytesMut::from(input),
            |mut buf| {
                let mut codec = RawLineCodec::new(DEFAULT_MAX_FRAME_BYTES);
                let mut n = 0;
                while let Some(frame) = codec.decode(&mut buf).expect("no fatal error") {
                    let frame = frame.expect("valid frame");
                    black_box(serde_json::from_slice::<IgnoredAny>(&frame).expect("valid JSON"));
                    n += 1;
                }
                assert_eq!(n, frames);
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("framing_and_parse/one_read", |b| {
        b.iter_batched(
            || BytesMut::from(input),
            |mut buf| {
                let mut codec = JsonRpcCodec::new(DEFAULT_MAX_FRAME_BYTES);
                let mut n = 0;
                while let Some(frame) = codec.decode(&mut buf).expect("no fatal error") {
                    black_box(frame.expect("valid frame"));
                    n += 1;
                }
                assert_eq!(n, frames);
            },
            BatchSize::LargeInput,
        )
    });
    // 64 KiB reads, as from a pipe: includes copying into the buffer and the
    // incremental newline search across reads.
    group.bench_function("framing_only/64k_reads", |b| {
        b.iter(|| {
            assert_eq!(
                decode_all(RawLineCodec::new(DEFAULT_MAX_FRAME_BYTES), input, 64 * 1024),
                frames
            )
        })
    });
    group.bench_function("framing_and_parse/64k_reads", |b| {
        b.iter(|| {
            assert_eq!(
                decode_all(JsonRpcCodec::new(DEFAULT_MAX_FRAME_BYTES), input, 64 * 1024),
                frames
            )
        })
    });
    group.finish();
}

/// The reader's envelope path (`success_response`: the top level read with
/// the `result` borrowed, then the depth and surrogate scan) on one ~1 MiB
/// line of each kind, and the scan alone.
fn envelope(c: &mut Criterion) {
    let first_line = |input: Vec<u8>| {
        let end = memchr::memchr(b'\n', &input).expect("a newline");
        String::from_utf8(input[..end].to_vec()).expect("UTF-8")
    };
    let mut group = c.benchmark_group("envelope_1mib");
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(4));
    for (name, line) in [
        ("structured", first_line(large_structured_results())),
        ("base64", first_line(large_results())),
    ] {
        group.throughput(Throughput::Bytes(line.len() as u64));
        let (n, len) = envelope_success_response_len(line.as_bytes()).expect("a success response");
        assert_eq!(n, 0);
        group.bench_function(format!("{name}/success_response"), |b| {
            b.iter(|| {
                assert_eq!(
                    envelope_success_response_len(black_box(line.as_bytes())),
                    Some((0, len))
                )
            })
        });
        group.bench_function(format!("{name}/tree_would_refuse"), |b| {
            b.iter(|| assert!(!envelope_tree_would_refuse(black_box(&line))))
        });
    }
    group.finish();
}

fn framing(c: &mut Criterion) {
    bench_input(c, "small_requests", &small_requests(), 4096);
    bench_input(c, "large_1mib_results", &large_results(), 8);
    bench_input(c, "large_1mib_structured", &large_structured_results(), 8);
}

criterion_group!(benches, framing, envelope);
criterion_main!(benches);
