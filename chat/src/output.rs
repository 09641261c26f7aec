//! What the subcommands print: text, or one JSON document per result with
//! --json.

use confab_client::Client;
use confab_client::proto::Message;
use serde_json::json;

use crate::cli::Cli;

/// Prints `doc` under --json, else the text `text` makes.
pub fn print(cli: &Cli, doc: serde_json::Value, text: impl FnOnce() -> String) {
    if cli.json {
        println!("{doc}");
    } else {
        println!("{}", text());
    }
}

/// Prints message `m` as `c`'s user sees it (their own as "me").
pub fn show(cli: &Cli, c: &Client, m: &Message) {
    let from = if m.sender == c.uid() {
        "me".to_owned()
    } else {
        format!("user {}", m.sender)
    };
    print(
        cli,
        json!({
            "message_id": m.message_id, "conversation_id": m.conversation_id, "seq": m.seq,
            "sender": m.sender, "body": m.body, "server_time_ms": m.server_time_ms,
        }),
        || format!("[{}] {from}: {}", m.conversation_id, m.body),
    );
}
