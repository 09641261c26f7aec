//! The interactive console (confab-chat without a subcommand).
//!
//! Input: line editing and history (rustyline) on a thread of its own;
//! incoming messages are printed above the prompt while the user types
//! (rustyline's external printer). When stdin is not a terminal, rustyline
//! reads plain lines and output goes straight to stdout, so scripts and
//! tests can pipe commands in.
//!
//! Commands are the rows of [`COMMANDS`] (name, arguments, help, handler):
//! a new command is a new row and its handler. `@USER TEXT` sends once; a
//! line without `/` or `@` goes to the user chosen with `/to`. Read
//! receipts, typing notices and recalls are printed as they arrive.

use std::collections::HashMap;
use std::future::Future;
use std::io::IsTerminal;
use std::pin::Pin;

use confab_client::proto::frame::Body;
use confab_client::proto::{self as pb};
use confab_client::{Client, Event, Peer, Update};
use rustyline::ExternalPrinter;
use rustyline::error::ReadlineError;
use serde_json::json;
use tokio::sync::mpsc;

use crate::cli::Cli;
use crate::error::{Error, Result};
use crate::session::login;

/// What the console does after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

type Reply<'a> = Pin<Box<dyn Future<Output = Result<Flow>> + 'a>>;
type Handler = for<'a> fn(&'a mut Console, &'a str) -> Reply<'a>;

/// One console command.
pub struct Command {
    /// Typed as `/name`.
    pub name: &'static str,
    /// Argument synopsis for `/help`.
    pub args: &'static str,
    pub help: &'static str,
    /// Runs the command with the rest of the line.
    pub run: Handler,
}

/// Every command, in `/help` order.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "help",
        args: "",
        help: "this list",
        run: |c, _| Box::pin(async move { c.help() }),
    },
    Command {
        name: "to",
        args: "USER [TEXT]",
        help: "talk to USER: later lines without / or @ go to USER (TEXT is sent now)",
        run: |c, rest| Box::pin(c.to(rest)),
    },
    Command {
        name: "send",
        args: "USER TEXT",
        help: "send TEXT to USER (the same as @USER TEXT)",
        run: |c, rest| Box::pin(c.send_line(rest)),
    },
    Command {
        name: "history",
        args: "USER [N]",
        help: "the last N (20) messages with USER, oldest first",
        run: |c, rest| Box::pin(c.history(rest)),
    },
    Command {
        name: "read",
        args: "USER|#GROUP [SEQ]",
        help: "mark the conversation read up to SEQ (default: the newest)",
        run: |c, rest| Box::pin(c.read(rest)),
    },
    Command {
        name: "typing",
        args: "USER|#GROUP",
        help: "tell USER (or the group's members) that I am typing",
        run: |c, rest| Box::pin(c.typing(rest)),
    },
    Command {
        name: "recall",
        args: "MESSAGE_ID",
        help: "recall my message (within the server's recall window)",
        run: |c, rest| Box::pin(c.recall(rest)),
    },
    Command {
        name: "quit",
        args: "",
        help: "leave (also /exit, Ctrl-D)",
        run: |_, _| Box::pin(async { Ok(Flow::Quit) }),
    },
    Command {
        name: "exit",
        args: "",
        help: "",
        run: |_, _| Box::pin(async { Ok(Flow::Quit) }),
    },
];

/// Where the console writes: above the prompt on a terminal, else plain
/// stdout / stderr.
enum Out {
    Terminal(Box<dyn ExternalPrinter + Send>),
    Plain,
}

/// The console's state: the logged-in client, the current correspondent,
/// the names of the users seen.
pub struct Console {
    cli: Cli,
    client: Client,
    to: Option<String>,
    names: HashMap<u64, String>,
    out: Out,
}

impl Console {
    /// A line of output.
    fn say(&mut self, text: impl Into<String>) {
        let mut text = text.into();
        match &mut self.out {
            Out::Terminal(p) => {
                text.push('\n');
                if p.print(text.clone()).is_err() {
                    print!("{text}");
                }
            }
            Out::Plain => println!("{text}"),
        }
    }

    /// A problem the user should see (stderr when not on a terminal).
    fn warn(&mut self, text: impl Into<String>) {
        match self.out {
            Out::Terminal(_) => self.say(text),
            Out::Plain => eprintln!("{}", text.into()),
        }
    }

    fn help(&mut self) -> Result<Flow> {
        let mut lines = vec![
            "commands:".to_owned(),
            format!("  {:<22} send TEXT to USER", "@USER TEXT"),
        ];
        for c in COMMANDS.iter().filter(|c| !c.help.is_empty()) {
            lines.push(format!(
                "  {:<22} {}",
                format!("/{} {}", c.name, c.args).trim_end(),
                c.help
            ));
        }
        lines.push(format!("  {:<22} send to the user chosen with /to", "TEXT"));
        self.say(lines.join("\n"));
        Ok(Flow::Continue)
    }

    async fn to(&mut self, rest: &str) -> Result<Flow> {
        let (user, text) = split_word(rest);
        if user.is_empty() {
            self.warn("usage: /to USER [TEXT]");
            return Ok(Flow::Continue);
        }
        self.to = Some(user.to_owned());
        self.say(format!("talking to {user}"));
        if !text.is_empty() {
            self.send(user, text).await;
        }
        Ok(Flow::Continue)
    }

    async fn send_line(&mut self, rest: &str) -> Result<Flow> {
        match split_word(rest) {
            (user, text) if !user.is_empty() && !text.is_empty() => self.send(user, text).await,
            _ => self.warn("usage: /send USER TEXT (or @USER TEXT)"),
        }
        Ok(Flow::Continue)
    }

    async fn send(&mut self, user: &str, text: &str) {
        if let Err(e) = self.client.send_to_name(user, text, "").await {
            self.warn(format!("error: {e}"));
        }
    }

    async fn history(&mut self, rest: &str) -> Result<Flow> {
        let (user, n) = split_word(rest);
        if user.is_empty() {
            self.warn("usage: /history USER [N]");
            return Ok(Flow::Continue);
        }
        let n = n.trim().parse().unwrap_or(20);
        let page = async {
            let other = self.client.lookup_user(user).await?;
            self.names.insert(other.user_id, other.name.clone());
            let me = self.client.uid();
            let conv = format!("d:{}:{}", me.min(other.user_id), me.max(other.user_id));
            self.client.history(&conv, 0, n).await
        };
        match page.await {
            Ok(mut page) => {
                page.reverse();
                for m in &page {
                    self.show(m).await;
                }
            }
            Err(e) => self.warn(format!("error: {e}")),
        }
        Ok(Flow::Continue)
    }

    async fn read(&mut self, rest: &str) -> Result<Flow> {
        let (who, seq) = split_word(rest);
        let (Some(peer), Ok(seq)) = (peer_of(who), if seq.is_empty() { Ok(0) } else { seq.parse() }) else {
            self.warn("usage: /read USER|#GROUP [SEQ]");
            return Ok(Flow::Continue);
        };
        match self.client.mark_read(&peer, seq).await {
            Ok(r) => self.say(format!("read {who} up to {}", r.read_seq)),
            Err(e) => self.warn(format!("error: {e}")),
        }
        Ok(Flow::Continue)
    }

    async fn typing(&mut self, rest: &str) -> Result<Flow> {
        let Some(peer) = peer_of(rest.trim()) else {
            self.warn("usage: /typing USER|#GROUP");
            return Ok(Flow::Continue);
        };
        if let Err(e) = self.client.typing(&peer).await {
            self.warn(format!("error: {e}"));
        }
        Ok(Flow::Continue)
    }

    async fn recall(&mut self, rest: &str) -> Result<Flow> {
        let Ok(id) = rest.trim().parse::<u64>() else {
            self.warn("usage: /recall MESSAGE_ID");
            return Ok(Flow::Continue);
        };
        match self.client.recall(id).await {
            Ok(r) => self.say(format!("recalled message {}", r.message_id)),
            Err(e) => self.warn(format!("error: {e}")),
        }
        Ok(Flow::Continue)
    }

    /// Prints a push other than a message: receipts, typing, recalls.
    async fn notice(&mut self, u: Update) {
        let line = match u {
            Update::Receipt(r) if r.reader == self.client.uid() => {
                format!(
                    "(read {} up to {} on another device)",
                    r.conversation_id, r.read_seq
                )
            }
            Update::Receipt(r) => {
                let who = self.name_of(r.reader).await;
                format!("{who} read up to {} in {}", r.read_seq, r.conversation_id)
            }
            Update::Typing(t) => {
                let who = self.name_of(t.user_id).await;
                format!("{who} is typing in {}", t.conversation_id)
            }
            Update::Event(Event::Recalled(r)) => {
                let who = self.name_of(r.by).await;
                format!("{who} recalled message {} in {}", r.message_id, r.conversation_id)
            }
            _ => return,
        };
        if self.cli.json {
            let doc = json!({"notice": line});
            self.say(doc.to_string());
        } else {
            self.say(line);
        }
    }

    /// Runs one input line.
    pub async fn line(&mut self, line: &str) -> Result<Flow> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(Flow::Continue);
        }
        if let Some(rest) = line.strip_prefix('@') {
            return self.send_line(rest).await;
        }
        if let Some(cmd) = line.strip_prefix('/') {
            let (name, rest) = split_word(cmd);
            return match COMMANDS.iter().find(|c| c.name == name) {
                Some(c) => (c.run)(self, rest).await,
                None => {
                    self.warn(format!("unknown command /{name}; /help lists them"));
                    Ok(Flow::Continue)
                }
            };
        }
        match self.to.clone() {
            Some(to) => self.send(&to, line).await,
            None => self.warn("choose whom to talk to with /to USER, or write @USER TEXT"),
        }
        Ok(Flow::Continue)
    }

    /// The name of user `uid` (asked from the gateway once).
    async fn name_of(&mut self, uid: u64) -> String {
        if let Some(n) = self.names.get(&uid) {
            return n.clone();
        }
        let ask = Body::LookupUser(pb::LookupUserRequest {
            user_id: uid,
            name: String::new(),
        });
        let name = match self.client.conn.request(ask).await {
            Ok(Body::User(u)) => u.name,
            _ => format!("user {uid}"),
        };
        self.names.insert(uid, name.clone());
        name
    }

    /// Prints a message: `alice: hi`, or `me -> bob: hi` for our own; a
    /// recalled one as `(recalled)`, a recall entry as who recalled what.
    async fn show(&mut self, m: &pb::Message) {
        if self.cli.json {
            let doc = json!({
                "message_id": m.message_id, "conversation_id": m.conversation_id, "seq": m.seq,
                "sender": m.sender, "body": m.body, "server_time_ms": m.server_time_ms,
                "recalled": m.recalled, "recall_of": m.recall_of,
            });
            self.say(doc.to_string());
            return;
        }
        if m.recall_of != 0 {
            let who = self.name_of(m.sender).await;
            self.say(format!("{who} recalled message {}", m.recall_of));
            return;
        }
        let body = if m.recalled { "(recalled)" } else { m.body.as_str() };
        let me = self.client.uid();
        if m.sender == me {
            let other = other_party(&m.conversation_id, me);
            let to = match other {
                Some(o) => self.name_of(o).await,
                None => m.conversation_id.clone(),
            };
            self.say(format!("me -> {to}: {body}"));
        } else {
            let from = self.name_of(m.sender).await;
            self.say(format!("{from}: {body}"));
        }
    }
}

/// The first word and the rest (trimmed).
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim();
    match s.split_once(char::is_whitespace) {
        Some((w, rest)) => (w, rest.trim()),
        None => (s, ""),
    }
}

/// `USER` or `#GROUP`.
fn peer_of(word: &str) -> Option<Peer> {
    match word.strip_prefix('#') {
        _ if word.is_empty() => None,
        Some(g) => g.parse().ok().map(Peer::Group),
        None => Some(Peer::Name(word.to_owned())),
    }
}

/// The other user of a direct conversation `d:LO:HI`.
fn other_party(conversation: &str, me: u64) -> Option<u64> {
    let rest = conversation.strip_prefix("d:")?;
    let (lo, hi) = rest.split_once(':')?;
    let (lo, hi): (u64, u64) = (lo.parse().ok()?, hi.parse().ok()?);
    Some(if lo == me { hi } else { lo })
}

/// The input thread: reads lines (edited, with history, on a terminal) and
/// hands them over; ends at EOF or Ctrl-C/Ctrl-D.
fn read_lines(
    terminal: bool,
    lines: mpsc::Sender<String>,
    printer: std::sync::mpsc::Sender<Option<Box<dyn ExternalPrinter + Send>>>,
) {
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(e) => e,
        Err(error) => {
            eprintln!("error: cannot read the console: {error}");
            let _ = printer.send(None);
            return;
        }
    };
    let external = if terminal {
        editor
            .create_external_printer()
            .ok()
            .map(|p| Box::new(p) as Box<dyn ExternalPrinter + Send>)
    } else {
        None
    };
    let _ = printer.send(external);
    let prompt = if terminal { "> " } else { "" };
    loop {
        match editor.readline(prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                if lines.blocking_send(line).is_err() {
                    return;
                }
            }
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => return,
            Err(error) => {
                eprintln!("error: reading the console: {error}");
                return;
            }
        }
    }
}

pub async fn run(cli: &Cli) -> Result<()> {
    let client = login(cli).await?;
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let (lines_tx, mut lines) = mpsc::channel::<String>(64);
    let (printer_tx, printer_rx) = std::sync::mpsc::channel();
    // Not joined: it may sit in a read when the console ends.
    std::thread::spawn(move || read_lines(terminal, lines_tx, printer_tx));
    let out = match tokio::task::spawn_blocking(move || printer_rx.recv()).await {
        Ok(Ok(Some(p))) => Out::Terminal(p),
        _ => Out::Plain,
    };
    let mut console = Console {
        cli: cli.clone(),
        client,
        to: None,
        names: HashMap::new(),
        out,
    };
    let me = cli.user.clone().unwrap_or_default();
    console.say(format!(
        "connected to {} as {me}; /help for commands",
        cli.gateway
    ));
    for m in console.client.sync().await? {
        console.show(&m).await;
    }
    let ended = loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(line) = line else { break None };
                if console.line(&line).await? == Flow::Quit {
                    break None;
                }
            }
            ev = console.client.next_update() => match ev {
                Some(Update::Event(Event::Message(m))) => console.show(&m).await,
                Some(Update::Event(Event::Kicked(k))) => break Some(format!(": kicked ({})", k.message)),
                Some(Update::Event(Event::Closed(e))) => {
                    break Some(e.map(|e| format!(": {}", e.message)).unwrap_or_default())
                }
                Some(other) => console.notice(other).await,
                None => break Some(String::new()),
            },
        }
    };
    match ended {
        None => Ok(()),
        Some(why) => {
            if let Out::Terminal(_) = console.out {
                // Let the input thread leave the terminal as it found it.
                console.say(format!("the connection closed{why}; press Enter to leave"));
                let _ = lines.recv().await;
            }
            Err(Error::Closed(why))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_conversations() {
        assert_eq!(split_word("  bob   hello  there "), ("bob", "hello  there"));
        assert_eq!(split_word("bob"), ("bob", ""));
        assert_eq!(split_word(""), ("", ""));
        assert_eq!(other_party("d:3:9", 3), Some(9));
        assert_eq!(other_party("d:3:9", 9), Some(3));
        assert_eq!(other_party("g:4", 3), None);
        assert_eq!(peer_of("bob"), Some(Peer::Name("bob".into())));
        assert_eq!(peer_of("#7"), Some(Peer::Group(7)));
        assert_eq!(peer_of("#x"), None);
        assert_eq!(peer_of(""), None);
    }

    #[test]
    fn every_command_is_unique_and_described() {
        let mut names: Vec<_> = COMMANDS.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), COMMANDS.len());
        for c in COMMANDS {
            assert!(!c.name.starts_with('/') && !c.name.contains(' '), "{}", c.name);
        }
        for needed in ["help", "to", "history", "quit"] {
            assert!(
                COMMANDS.iter().any(|c| c.name == needed && !c.help.is_empty()),
                "{needed}"
            );
        }
    }
}
