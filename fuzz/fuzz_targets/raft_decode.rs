//! The router's Raft payload and snapshot decoders: bytes in as a
//! `RaftRequest` payload (AppendEntries, Vote, InstallSnapshot), as
//! snapshot data and as a stored snapshot. Each decodes or is refused;
//! what decodes encodes and decodes again to the same value.
#![no_main]

use confab_router_state::codec::{
    AppendEntries, InstallSnapshot, VoteRequest, decode, decode_group_data, decode_stored_snapshot, encode,
};
use confab_router_state::types::Command;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = decode::<AppendEntries>(data) {
        let again: AppendEntries = decode(&encode(&m).expect("encode")).expect("decode");
        assert_eq!(format!("{m:?}"), format!("{again:?}"));
    }
    if let Ok(m) = decode::<VoteRequest>(data) {
        let again: VoteRequest = decode(&encode(&m).expect("encode")).expect("decode");
        assert_eq!(format!("{m:?}"), format!("{again:?}"));
    }
    if let Ok((vote, meta, bytes)) = decode::<InstallSnapshot>(data) {
        let _ = (vote, meta);
        let _ = decode_group_data(&bytes);
    }
    if let Ok(d) = decode_group_data(data) {
        assert_eq!(
            decode_group_data(&encode(&d).expect("encode")).expect("decode"),
            d
        );
    }
    if let Ok(s) = decode_stored_snapshot(data) {
        let _ = decode_group_data(&s.data);
    }
    if let Ok(c) = decode::<Command>(data) {
        assert_eq!(
            decode::<Command>(&encode(&c).expect("encode")).expect("decode"),
            c
        );
    }
});
