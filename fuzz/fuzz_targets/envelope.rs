//! Differential: the reader's envelope path (a success response forwarded
//! from its top level, no `Value` tree) must never accept a line the full
//! path (parse, classify, our id) would refuse, nor read it differently.
//! Arbitrary bytes, plus each input wrapped as the `result` of a response
//! to counter 7 (so most runs exercise the acceptance side).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stdiopool::upstream::connection::envelope_check_agreement;

fuzz_target!(|data: &[u8]| {
    if let Err(why) = envelope_check_agreement(data) {
        panic!("{why}: {}", String::from_utf8_lossy(data));
    }
    let mut wrapped = br#"{"jsonrpc":"2.0","id":7,"result":"#.to_vec();
    wrapped.extend_from_slice(data);
    wrapped.push(b'}');
    if let Err(why) = envelope_check_agreement(&wrapped) {
        panic!("{why}: {}", String::from_utf8_lossy(&wrapped));
    }
});
