//! Classification of arbitrary JSON: `Message::from_value` must not panic,
//! must agree with `id_of` on the id, and an accepted message must classify
//! the same after re-serialisation, both as a value and through the codec.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use stdiopool::framing::JsonRpcCodec;
use stdiopool::jsonrpc::{Message, id_of};
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(message) = Message::from_value(value.clone()) else {
        return;
    };
    assert_eq!(message.id().cloned(), id_of(&value));
    let again = Message::from_value(message.to_value()).expect("re-serialised message is valid");
    assert_eq!(again, message);

    let mut codec = JsonRpcCodec::default();
    let mut buf = BytesMut::new();
    codec.encode(message.to_value(), &mut buf).expect("encodes");
    let decoded = codec
        .decode(&mut buf)
        .expect("no fatal error")
        .expect("a frame")
        .expect("valid JSON");
    assert!(buf.is_empty());
    assert_eq!(Message::from_value(decoded).expect("still valid"), message);
});
