//! The embedded queue's replay: arbitrary bytes as a log segment are read
//! into the index, or refused with an error; never a panic. The first byte
//! picks the partition count (1..=64).
#![no_main]

use confab_queue::embedded::scan_segment;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&p, segment)) = data.split_first() else {
        return;
    };
    let partitions = u32::from(p % 64) + 1;
    if let Ok(scan) = scan_segment(segment, partitions) {
        assert!(scan.good_bytes <= segment.len());
        assert!(scan.live <= scan.records);
    }
});
