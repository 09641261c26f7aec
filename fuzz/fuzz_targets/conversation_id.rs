//! `ConversationId` parsing: any string parses or is refused; what parses
//! prints back as the same string and parses to the same id.
#![no_main]

use confab_queue::ConversationId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = s.parse::<ConversationId>() {
        let printed = id.to_string();
        assert_eq!(printed, s, "a parsed id prints back as itself");
        assert_eq!(printed.parse::<ConversationId>().ok(), Some(id));
        assert!(ConversationId::partition(s, 16) < 16);
    }
});
