//! Differential: a POST body's fast path (a plain request's top level
//! decoded without a `Value` tree) must never accept a body the full path
//! (parse, classify) would refuse, nor read it differently. Arbitrary bytes,
//! plus each input as the `params` and as the `id` of a request (so most
//! runs exercise the acceptance side).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stdiopool::request_check_agreement;

fn check(body: &[u8]) {
    if let Err(why) = request_check_agreement(body) {
        panic!("{why}: {}", String::from_utf8_lossy(body));
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut as_params = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"#.to_vec();
    as_params.extend_from_slice(data);
    as_params.push(b'}');
    check(&as_params);
    let mut as_id = br#"{"jsonrpc":"2.0","method":"m","id":"#.to_vec();
    as_id.extend_from_slice(data);
    as_id.push(b'}');
    check(&as_id);
});
