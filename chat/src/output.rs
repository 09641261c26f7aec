//! What confab-chat prints and where: [`Output`] writes a result as text
//! or, with --json, as one JSON document per line, to stdout or above the
//! console's prompt; messages and recalls are shown with the names of
//! users and groups ([`Names`]), never their ids.

use confab_client::Client;
use confab_client::proto::{Message, Recalled};
use rustyline::ExternalPrinter;
use serde_json::{Value, json};

use crate::names::Names;

/// Where results go: stdout (one-shot, or a console whose stdin is not a
/// terminal), or above the prompt of a console on a terminal.
pub struct Output {
    json: bool,
    terminal: Option<Box<dyn ExternalPrinter + Send>>,
    /// Results go nowhere (a console send: the line typed is the message).
    discard: bool,
}

impl Output {
    /// Plain stdout / stderr.
    pub fn stdout(json: bool) -> Self {
        Self {
            json,
            terminal: None,
            discard: false,
        }
    }

    /// Nowhere: for a verb whose result the caller does not show.
    pub fn discard() -> Self {
        Self {
            json: false,
            terminal: None,
            discard: true,
        }
    }

    /// Above the prompt of the console's line editor.
    pub fn terminal(json: bool, printer: Box<dyn ExternalPrinter + Send>) -> Self {
        Self {
            json,
            terminal: Some(printer),
            discard: false,
        }
    }

    pub fn json(&self) -> bool {
        self.json
    }

    pub fn is_terminal(&self) -> bool {
        self.terminal.is_some()
    }

    /// A result: `doc` under --json, else the line `text` makes.
    pub fn result(&mut self, doc: Value, text: impl FnOnce() -> String) {
        if self.json {
            self.say(doc.to_string());
        } else {
            self.say(text());
        }
    }

    /// A line as it is.
    pub fn say(&mut self, text: impl Into<String>) {
        if self.discard {
            return;
        }
        let mut text = text.into();
        match &mut self.terminal {
            Some(p) => {
                text.push('\n');
                if p.print(text.clone()).is_err() {
                    print!("{text}");
                }
            }
            None => println!("{text}"),
        }
    }

    /// A problem the user should see: above the prompt on a terminal,
    /// else on stderr.
    pub fn warn(&mut self, text: impl Into<String>) {
        match self.terminal {
            Some(_) => self.say(text),
            None => eprintln!("{}", text.into()),
        }
    }

    /// Prints message `m` as `c`'s user sees it: `alice: hi`, our own as
    /// `me -> bob: hi`, a group's as `[#team] alice: hi`; a recalled
    /// message as "(recalled)", a recall entry as who recalled what. JSON
    /// keeps the ids and adds `sender_name` and `conversation`.
    pub async fn message(&mut self, c: &Client, names: &mut Names, m: &Message) {
        let me = c.uid() != 0 && m.sender == c.uid();
        let sender = names.user(c, m.sender).await;
        let conversation = names.conversation(c, &m.conversation_id).await;
        let group = m.conversation_id.starts_with("g:");
        let from = if me { "me" } else { sender.as_str() };
        let text = if m.recall_of != 0 {
            match group {
                true => format!("[{conversation}] {from} recalled message {}", m.recall_of),
                false => format!("{from} recalled message {}", m.recall_of),
            }
        } else {
            let body = if m.recalled { "(recalled)" } else { m.body.as_str() };
            match (group, me) {
                (true, _) => format!("[{conversation}] {from}: {body}"),
                (false, true) => format!("me -> {conversation}: {body}"),
                (false, false) => format!("{from}: {body}"),
            }
        };
        let doc = json!({
            "message_id": m.message_id, "conversation_id": m.conversation_id, "seq": m.seq,
            "sender": m.sender, "body": m.body, "server_time_ms": m.server_time_ms,
            "recalled": m.recalled, "recall_of": m.recall_of,
            "sender_name": sender, "conversation": conversation,
        });
        self.result(doc, || text);
    }

    /// Prints a recall pushed while listening: who recalled which message
    /// (and in which group).
    pub async fn recall(&mut self, c: &Client, names: &mut Names, r: &Recalled) {
        let by = if r.by == c.uid() {
            "I".to_owned()
        } else {
            names.user(c, r.by).await
        };
        let conversation = names.conversation(c, &r.conversation_id).await;
        let place = if r.conversation_id.starts_with("g:") {
            format!(" in {conversation}")
        } else {
            String::new()
        };
        let doc = json!({
            "recalled": r.message_id, "conversation_id": r.conversation_id, "by": r.by,
            "seq": r.seq, "entry_id": r.entry_id, "by_name": by, "conversation": conversation,
        });
        self.result(doc, || format!("{by} recalled message {}{place}", r.message_id));
    }
}
