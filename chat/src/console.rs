//! The interactive console (confab-chat without a subcommand).
//!
//! Input: line editing and history (rustyline) on a thread of its own;
//! pushes are printed above the prompt while the user types (rustyline's
//! external printer). When stdin is not a terminal, rustyline reads plain
//! lines and output goes straight to stdout, so scripts and tests can pipe
//! commands in.
//!
//! A line is `@USER TEXT` (send once), `/COMMAND ...`, or text for the
//! conversation chosen with `/to`. The console's own commands are the rows
//! of [`COMMANDS`]; any other `/VERB ARGS` is the one-shot subcommand of
//! that name (`/friends`, `/accept bob`, `/create-group team`,
//! `/approve team bob`, `/group-send team hi all` ...), parsed by the same
//! command line definition and run by the same code ([`crate::verbs`]).
//! Presence changes, friend and join requests, typing, receipts and
//! recalls are printed as they arrive, users and groups by name.

use std::future::Future;
use std::io::IsTerminal;
use std::pin::Pin;

use clap::{CommandFactory, Parser};
use confab_client::{Client, Event, Update};
use rustyline::ExternalPrinter;
use rustyline::error::ReadlineError;
use serde_json::json;
use tokio::sync::mpsc;

use crate::cli::{Cli, Command as Verb, GroupRef};
use crate::error::{Error, Result, report};
use crate::names::Names;
use crate::output::Output;
use crate::session::{login_at, rejoin};

/// What the console does after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

type Reply<'a> = Pin<Box<dyn Future<Output = Result<Flow>> + 'a>>;
type Handler = for<'a> fn(&'a mut Console, &'a str) -> Reply<'a>;

/// One of the console's own commands.
pub struct Command {
    /// Typed as `/name`.
    pub name: &'static str,
    /// Argument synopsis for `/help`.
    pub args: &'static str,
    pub help: &'static str,
    /// Runs the command with the rest of the line.
    pub run: Handler,
}

/// The console's own commands, in `/help` order; the subcommands follow
/// them there.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "help",
        args: "[COMMAND]",
        help: "this list, or how to use COMMAND",
        run: |c, rest| Box::pin(async move { c.help(rest) }),
    },
    Command {
        name: "to",
        args: "USER|#GROUP [TEXT]",
        help: "talk to USER or GROUP: later lines without / or @ go there (TEXT is sent now)",
        run: |c, rest| Box::pin(c.to(rest)),
    },
    Command {
        name: "history",
        args: "USER|#GROUP [N]",
        help: "the last N (20) messages with USER or of GROUP, oldest first",
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

/// Subcommands that make no sense inside a logged-in console.
const NOT_HERE: &[&str] = &["register", "login", "listen"];

/// Subcommands whose last argument is free text: everything after their
/// first word is that text, quotes or not.
const TEXT_LAST: &[&str] = &["send", "group-send"];

/// A console line after its `/`, parsed as a subcommand.
#[derive(Debug, Parser)]
#[command(name = "", no_binary_name = true, disable_help_subcommand = true)]
struct Line {
    #[command(subcommand)]
    verb: Verb,
}

/// Where lines without `/` or `@` go.
#[derive(Debug, Clone)]
enum Target {
    User(String),
    Group(GroupRef),
}

/// The console's state: the logged-in client, the current correspondent,
/// the names seen, where output goes.
pub struct Console {
    client: Client,
    to: Option<Target>,
    names: Names,
    out: Output,
}

impl Console {
    fn help(&mut self, rest: &str) -> Result<Flow> {
        let topic = rest.trim().trim_start_matches('/');
        if !topic.is_empty() {
            match COMMANDS.iter().find(|c| c.name == topic) {
                Some(c) => self.out.say(format!("/{} {}: {}", c.name, c.args, c.help)),
                None => match Line::command().find_subcommand_mut(topic) {
                    Some(sub) if !NOT_HERE.contains(&topic) => {
                        let text = sub.render_long_help().to_string();
                        self.out.say(format!("/{}", text.trim_end()));
                    }
                    _ => self
                        .out
                        .warn(format!("unknown command /{topic}; /help lists them")),
                },
            }
            return Ok(Flow::Continue);
        }
        let mut lines = vec![
            "commands:".to_owned(),
            format!("  {:<28} send TEXT to USER", "@USER TEXT"),
        ];
        for c in COMMANDS.iter().filter(|c| !c.help.is_empty()) {
            lines.push(format!(
                "  {:<28} {}",
                format!("/{} {}", c.name, c.args).trim_end(),
                c.help
            ));
        }
        lines.push(format!(
            "  {:<28} send to the user or group chosen with /to",
            "TEXT"
        ));
        lines.push("and the subcommands of confab-chat (/help COMMAND for its arguments; a GROUP is its id or name):".into());
        for sub in Line::command().get_subcommands() {
            let name = sub.get_name();
            if NOT_HERE.contains(&name) || COMMANDS.iter().any(|c| c.name == name) {
                continue;
            }
            let args: Vec<String> = sub
                .get_positionals()
                .map(|a| {
                    let v = a
                        .get_value_names()
                        .and_then(|v| v.first().map(|s| s.to_string()))
                        .unwrap_or_else(|| a.get_id().as_str().to_uppercase());
                    if a.is_required_set() { v } else { format!("[{v}]") }
                })
                .collect();
            let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
            lines.push(format!(
                "  {:<28} {}",
                format!("/{name} {}", args.join(" ")).trim_end(),
                about.lines().next().unwrap_or("")
            ));
        }
        self.out.say(lines.join("\n"));
        Ok(Flow::Continue)
    }

    async fn to(&mut self, rest: &str) -> Result<Flow> {
        let (who, text) = split_word(rest);
        let target = match who.strip_prefix('#') {
            _ if who.is_empty() => None,
            Some(g) => g.parse().ok().map(Target::Group),
            None => Some(Target::User(who.to_owned())),
        };
        let Some(target) = target else {
            self.out.warn("usage: /to USER|#GROUP [TEXT]");
            return Ok(Flow::Continue);
        };
        self.out.say(format!("talking to {who}"));
        self.to = Some(target.clone());
        if !text.is_empty() {
            self.send_to(&target, text).await;
        }
        Ok(Flow::Continue)
    }

    async fn send_to(&mut self, target: &Target, text: &str) {
        let verb = match target {
            Target::User(to) => Verb::Send {
                to: to.clone(),
                text: text.to_owned(),
            },
            Target::Group(group) => Verb::GroupSend {
                group: group.clone(),
                text: text.to_owned(),
            },
        };
        // Quiet on success: the line typed is the message.
        if let Err(e) = self.quietly(verb).await {
            self.out.warn(report(&e));
        }
    }

    /// Runs `verb` without printing its result (errors are returned).
    async fn quietly(&mut self, verb: Verb) -> Result<()> {
        let mut sink = Output::discard();
        crate::verbs::run(&mut self.client, &mut self.names, &mut sink, verb).await
    }

    /// Runs `verb`, printing its results or its error.
    async fn verb(&mut self, verb: Verb) -> Result<Flow> {
        if let Err(e) = crate::verbs::run(&mut self.client, &mut self.names, &mut self.out, verb).await {
            self.out.warn(report(&e));
        }
        Ok(Flow::Continue)
    }

    async fn history(&mut self, rest: &str) -> Result<Flow> {
        let (who, n) = split_word(rest);
        let (Some(target), Ok(limit)) = (target_of(who), if n.is_empty() { Ok(20) } else { n.parse() })
        else {
            self.out.warn("usage: /history USER|#GROUP [N]");
            return Ok(Flow::Continue);
        };
        let verb = match target {
            Target::User(u) => Verb::History {
                with: Some(u),
                group: None,
                limit,
            },
            Target::Group(g) => Verb::History {
                with: None,
                group: Some(g),
                limit,
            },
        };
        self.verb(verb).await
    }

    async fn read(&mut self, rest: &str) -> Result<Flow> {
        let (who, seq) = split_word(rest);
        let (Some(target), Ok(seq)) = (target_of(who), if seq.is_empty() { Ok(0) } else { seq.parse() })
        else {
            self.out.warn("usage: /read USER|#GROUP [SEQ]");
            return Ok(Flow::Continue);
        };
        let (with, group) = split_target(target);
        self.verb(Verb::Read { with, group, seq }).await
    }

    async fn typing(&mut self, rest: &str) -> Result<Flow> {
        let Some(target) = target_of(rest.trim()) else {
            self.out.warn("usage: /typing USER|#GROUP");
            return Ok(Flow::Continue);
        };
        let (with, group) = split_target(target);
        let verb = Verb::Typing { with, group };
        if let Err(e) = self.quietly(verb).await {
            self.out.warn(report(&e));
        }
        Ok(Flow::Continue)
    }

    /// `/VERB ARGS`: the subcommand VERB.
    async fn subcommand(&mut self, name: &str, rest: &str) -> Result<Flow> {
        if NOT_HERE.contains(&name) {
            self.out
                .warn(format!("/{name} is for the command line, not the console"));
            return Ok(Flow::Continue);
        }
        if Line::command().find_subcommand(name).is_none() {
            self.out
                .warn(format!("unknown command /{name}; /help lists them"));
            return Ok(Flow::Continue);
        }
        let words = match words_of(name, rest) {
            Ok(w) => w,
            Err(why) => {
                self.out.warn(format!("/{name}: {why}"));
                return Ok(Flow::Continue);
            }
        };
        match Line::try_parse_from(std::iter::once(name.to_owned()).chain(words)) {
            Ok(line) => self.verb(line.verb).await,
            Err(e) => {
                // clap's message on one line, without its pointer to --help.
                let text = e.render().to_string();
                let said: Vec<&str> = text
                    .lines()
                    .take_while(|l| !l.starts_with("For more information"))
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                let said = said.join(" ");
                let said = said.trim_start_matches("error: ");
                self.out.warn(format!("/{name}: {said} (/help {name})"));
                Ok(Flow::Continue)
            }
        }
    }

    /// Prints a push other than a message ([`crate::notices`] words it).
    /// The gateway was lost (`why`): asks the directory again until a
    /// gateway takes the session back, then shows what was missed.
    async fn rejoin(
        &mut self,
        directory: &confab_client::Directory,
        tls: Option<&confab_client::ClientTls>,
        why: &str,
    ) {
        self.out.say(format!(
            "the connection closed{why}; asking the directory for a gateway"
        ));
        let out = &mut self.out;
        let (at, sent, missed) = rejoin(&mut self.client, directory, tls, |m| out.say(m)).await;
        self.out.say(format!(
            "reconnected to {at}: {sent} waiting message(s) sent, {} missed",
            missed.len()
        ));
        for m in missed {
            self.out.message(&self.client, &mut self.names, &m).await;
        }
    }

    async fn notice(&mut self, u: Update) {
        let Some((kind, line)) = crate::notices::describe(&self.client, &mut self.names, u).await else {
            return;
        };
        if self.out.json() {
            self.out.say(json!({"notice": kind, "text": line}).to_string());
        } else {
            self.out.say(line);
        }
    }

    /// Runs one input line.
    pub async fn line(&mut self, line: &str) -> Result<Flow> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(Flow::Continue);
        }
        if let Some(rest) = line.strip_prefix('@') {
            return match split_word(rest) {
                (user, text) if !user.is_empty() && !text.is_empty() => {
                    self.send_to(&Target::User(user.to_owned()), text).await;
                    Ok(Flow::Continue)
                }
                _ => {
                    self.out.warn("usage: @USER TEXT");
                    Ok(Flow::Continue)
                }
            };
        }
        if let Some(cmd) = line.strip_prefix('/') {
            let (name, rest) = split_word(cmd);
            return match COMMANDS.iter().find(|c| c.name == name) {
                Some(c) => (c.run)(self, rest).await,
                None => self.subcommand(name, rest).await,
            };
        }
        match self.to.clone() {
            Some(to) => self.send_to(&to, line).await,
            None => self
                .out
                .warn("choose whom to talk to with /to USER (or /to #GROUP), or write @USER TEXT"),
        }
        Ok(Flow::Continue)
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

/// The arguments of subcommand `name`: shell-like words (quotes group
/// words), except that a message's text is the whole rest of the line.
fn words_of(name: &str, rest: &str) -> std::result::Result<Vec<String>, &'static str> {
    if TEXT_LAST.contains(&name) {
        let (first, text) = split_word(rest);
        return Ok([first, text]
            .into_iter()
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect());
    }
    shlex::split(rest).ok_or("a quote is not closed")
}

/// `USER` or `#GROUP` (a group's id or name).
fn target_of(word: &str) -> Option<Target> {
    match word.strip_prefix('#') {
        _ if word.is_empty() => None,
        Some(g) => g.parse().ok().map(Target::Group),
        None => Some(Target::User(word.to_owned())),
    }
}

fn split_target(t: Target) -> (Option<String>, Option<GroupRef>) {
    match t {
        Target::User(u) => (Some(u), None),
        Target::Group(g) => (None, Some(g)),
    }
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
    let (client, at) = login_at(cli).await?;
    let (directory, tls) = (cli.directory()?, cli.client_tls()?);
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let (lines_tx, mut lines) = mpsc::channel::<String>(64);
    let (printer_tx, printer_rx) = std::sync::mpsc::channel();
    // Not joined: it may sit in a read when the console ends.
    std::thread::spawn(move || read_lines(terminal, lines_tx, printer_tx));
    let out = match tokio::task::spawn_blocking(move || printer_rx.recv()).await {
        Ok(Ok(Some(p))) => Output::terminal(cli.json, p),
        _ => Output::stdout(cli.json),
    };
    let mut console = Console {
        client,
        to: None,
        names: Names::default(),
        out,
    };
    let me = cli.user.clone().unwrap_or_default();
    console
        .out
        .say(format!("connected to {at} as {me}; /help for commands"));
    match (console.client.sync().await, &directory) {
        (Ok(missed), _) => {
            for m in missed {
                console.out.message(&console.client, &mut console.names, &m).await;
            }
        }
        // The gateway went away at once: the directory names another.
        (Err(e), Some(d)) => console.rejoin(d, tls.as_ref(), &format!(" ({e})")).await,
        (Err(e), None) => return Err(e.into()),
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
                Some(Update::Event(Event::Message(m))) => {
                    console.out.message(&console.client, &mut console.names, &m).await
                }
                Some(Update::Event(Event::Kicked(k))) => break Some(format!(": kicked ({})", k.message)),
                Some(Update::Event(Event::Closed(e))) => {
                    let why = e.map(|e| format!(": {}", e.message)).unwrap_or_default();
                    match &directory {
                        Some(d) => console.rejoin(d, tls.as_ref(), &why).await,
                        None => break Some(why),
                    }
                }
                Some(other) => console.notice(other).await,
                None => match &directory {
                    Some(d) => console.rejoin(d, tls.as_ref(), "").await,
                    None => break Some(String::new()),
                },
            },
        }
    };
    match ended {
        None => Ok(()),
        Some(why) => {
            if console.out.is_terminal() {
                // Let the input thread leave the terminal as it found it.
                console
                    .out
                    .say(format!("the connection closed{why}; press Enter to leave"));
                let _ = lines.recv().await;
            }
            Err(Error::Closed(why))
        }
    }
}

#[cfg(test)]
mod tests;
