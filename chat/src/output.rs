//! What the subcommands print: text, or one JSON document per result with
//! --json.

use confab_client::Client;
use confab_client::proto::{Message, Recalled};
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

/// Prints message `m` as `c`'s user sees it (their own as "me"): a
/// recalled message as "(recalled)", a recall entry as who recalled what.
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
            "recalled": m.recalled, "recall_of": m.recall_of,
        }),
        || {
            if m.recall_of != 0 {
                format!("[{}] {from} recalled message {}", m.conversation_id, m.recall_of)
            } else if m.recalled {
                format!("[{}] {from}: (recalled)", m.conversation_id)
            } else {
                format!("[{}] {from}: {}", m.conversation_id, m.body)
            }
        },
    );
}

/// Prints a recall pushed while listening.
pub fn show_recall(cli: &Cli, r: &Recalled) {
    print(
        cli,
        json!({
            "recalled": r.message_id, "conversation_id": r.conversation_id, "by": r.by,
            "seq": r.seq, "entry_id": r.entry_id,
        }),
        || {
            format!(
                "[{}] user {} recalled message {}",
                r.conversation_id, r.by, r.message_id
            )
        },
    );
}
