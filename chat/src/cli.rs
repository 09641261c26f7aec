//! The command line.

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Parser, Subcommand};

/// Confab's console client.
#[derive(Debug, Clone, Parser)]
#[command(name = "confab-chat", version, about)]
pub struct Cli {
    /// Gateway client address (TCP).
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:7201",
        env = "CONFAB_CHAT_GATEWAY"
    )]
    pub gateway: String,
    /// Start from the directory instead of --gateway: `GET /v1/gateway` at
    /// URL (any gateway's public HTTP address, http://HOST:PORT; several
    /// separated by commas) names the gateway this network reaches, and
    /// the console asks again when that gateway is lost.
    #[arg(long, global = true, value_name = "URL", env = "CONFAB_CHAT_DIRECTORY")]
    pub directory: Option<String>,
    /// TLS to the gateway, trusting only the CA certificate(s) in FILE
    /// (the local cluster's: .cluster/tls/ca.pem).
    #[arg(long, global = true, value_name = "FILE", env = "CONFAB_CHAT_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// TLS to the gateway, trusting the system's CA store.
    #[arg(long, global = true)]
    pub tls: bool,
    /// Log in as this user.
    #[arg(long, global = true, env = "CONFAB_CHAT_USER")]
    pub user: Option<String>,
    /// Password of --user.
    #[arg(long, global = true, env = "CONFAB_CHAT_PASSWORD")]
    pub password: Option<String>,
    /// Device id of this client (a second login from it replaces the first).
    #[arg(long, global = true, default_value = "confab-chat")]
    pub device: String,
    /// Print results as JSON (one document per result line).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent_and_positionals_do_not_shadow_globals() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["confab-chat", "--user", "a", "--password", "p", "send", "b", "hi"])
            .expect("parse");
        assert_eq!(cli.user.as_deref(), Some("a"));
        assert!(matches!(cli.command, Some(Command::Send { ref to, .. }) if to == "b"));
        assert!(!cli.tls && cli.tls_ca.is_none(), "plain unless asked");
        let cli =
            Cli::try_parse_from(["confab-chat", "send", "b", "hi", "--tls-ca", "ca.pem"]).expect("parse");
        assert_eq!(cli.tls_ca, Some(PathBuf::from("ca.pem")));
        assert!(cli.directory().expect("no directory").is_none());
        let cli = Cli::try_parse_from(["confab-chat", "--directory", "http://198.18.1.1:8201", "friends"])
            .expect("parse");
        assert!(cli.directory().expect("a directory").is_some());
        let cli =
            Cli::try_parse_from(["confab-chat", "--directory", "198.18.1.1:8201", "friends"]).expect("parse");
        assert!(cli.directory().is_err(), "a directory URL needs its scheme");
    }

    #[test]
    fn friend_and_group_subcommands_parse() {
        let cli = Cli::try_parse_from(["confab-chat", "--json", "approve", "7", "bob"]).expect("parse");
        assert!(cli.json);
        assert!(
            matches!(cli.command, Some(Command::Approve { group: GroupRef::Id(7), ref who }) if who == "bob")
        );
        let cli = Cli::try_parse_from(["confab-chat", "--user", "a", "add-friend", "b"]).expect("parse");
        assert_eq!(
            cli.user.as_deref(),
            Some("a"),
            "the positional does not shadow --user"
        );
        assert!(matches!(cli.command, Some(Command::AddFriend { ref who, .. }) if who == "b"));
        let cli = Cli::try_parse_from(["confab-chat", "history", "--group", "3"]).expect("parse");
        assert!(matches!(
            cli.command,
            Some(Command::History {
                with: None,
                group: Some(GroupRef::Id(3)),
                ..
            })
        ));
        assert!(Cli::try_parse_from(["confab-chat", "history"]).is_err());
        let cli = Cli::try_parse_from(["confab-chat", "group-send", "3", "hello all"]).expect("parse");
        assert!(
            matches!(cli.command, Some(Command::GroupSend { group: GroupRef::Id(3), ref text }) if text == "hello all")
        );
    }

    #[test]
    fn read_recall_and_typing_parse() {
        let cli = Cli::try_parse_from(["confab-chat", "read", "bob", "--seq", "4"]).expect("parse");
        assert!(
            matches!(cli.command, Some(Command::Read { ref with, group: None, seq: 4 }) if with.as_deref() == Some("bob"))
        );
        let cli = Cli::try_parse_from(["confab-chat", "read", "--group", "7"]).expect("parse");
        assert!(matches!(
            cli.command,
            Some(Command::Read {
                with: None,
                group: Some(GroupRef::Id(7)),
                seq: 0
            })
        ));
        assert!(Cli::try_parse_from(["confab-chat", "read"]).is_err());
        assert!(Cli::try_parse_from(["confab-chat", "read", "bob", "--group", "7"]).is_err());
        let cli = Cli::try_parse_from(["confab-chat", "recall", "123"]).expect("parse");
        assert!(matches!(cli.command, Some(Command::Recall { message_id: 123 })));
        assert!(Cli::try_parse_from(["confab-chat", "recall", "x"]).is_err());
        let cli = Cli::try_parse_from(["confab-chat", "typing", "--group", "2"]).expect("parse");
        assert!(matches!(
            cli.command,
            Some(Command::Typing {
                with: None,
                group: Some(GroupRef::Id(2))
            })
        ));
    }
}

impl Cli {
    /// The TLS of --tls-ca or --tls (`None`: plain).
    pub fn client_tls(&self) -> confab_client::Result<Option<confab_client::ClientTls>> {
        confab_client::ClientTls::from_flags(self.tls, self.tls_ca.as_deref())
    }

    /// The directory of --directory, when given.
    pub fn directory(&self) -> confab_client::Result<Option<confab_client::Directory>> {
        self.directory
            .as_deref()
            .map(|urls| confab_client::Directory::new([urls]))
            .transpose()
    }

    /// Connects to the gateway the directory names (with --directory) or
    /// to --gateway, over TLS with --tls-ca or --tls; returns the client
    /// and the gateway's address.
    pub async fn connect_at(&self) -> confab_client::Result<(confab_client::Client, String)> {
        let tls = self.client_tls()?;
        match self.directory()? {
            Some(d) => {
                let (c, pick) = confab_client::Client::connect_via(&d, tls.as_ref()).await?;
                Ok((c, pick.addr))
            }
            None => Ok((
                confab_client::Client::connect_with(&self.gateway, tls.as_ref()).await?,
                self.gateway.clone(),
            )),
        }
    }

    /// [`Cli::connect_at`], the client only.
    pub async fn connect(&self) -> confab_client::Result<confab_client::Client> {
        Ok(self.connect_at().await?.0)
    }
}

/// A group on the command line: its id, or the name of one of my groups
/// (resolved by [`crate::names::Names::group_id`]); a leading `#` is
/// dropped (`#7`, `#team`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRef {
    Id(u64),
    Name(String),
}

impl FromStr for GroupRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.strip_prefix('#').unwrap_or(s);
        if s.is_empty() {
            return Err("a group id or name".into());
        }
        Ok(match s.parse() {
            Ok(id) => GroupRef::Id(id),
            Err(_) => GroupRef::Name(s.to_owned()),
        })
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Create an account NAME with --password PW.
    Register { name: String },
    /// Check the credentials of --user and print the session.
    Login,
    /// Send TEXT to USER; succeeds once the message is durable.
    Send {
        #[arg(value_name = "USER")]
        to: String,
        text: String,
    },
    /// Sync, then print incoming messages as they arrive.
    Listen {
        /// Stop after this many messages.
        #[arg(long)]
        count: Option<usize>,
        /// Stop after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// The last messages with USER (or of --group GROUP), oldest first.
    History {
        #[arg(value_name = "USER", required_unless_present = "group")]
        with: Option<String>,
        /// A group's history instead of a user's.
        #[arg(long, value_name = "GROUP", conflicts_with = "with")]
        group: Option<GroupRef>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Users whose name starts with PREFIX.
    Search {
        prefix: String,
        /// Names after this one (the last name of the previous page).
        #[arg(long, default_value = "")]
        after: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// My friends with their presence, and pending friend requests.
    Friends,
    /// Ask USER for friendship.
    AddFriend {
        #[arg(value_name = "USER")]
        who: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Accept the friend request of USER.
    Accept {
        #[arg(value_name = "USER")]
        who: String,
    },
    /// Decline the friend request of USER.
    Decline {
        #[arg(value_name = "USER")]
        who: String,
    },
    /// Remove USER from my friends.
    RemoveFriend {
        #[arg(value_name = "USER")]
        who: String,
    },
    /// The groups I am a member of.
    Groups,
    /// Create a group NAME (I own it).
    CreateGroup { name: String },
    /// Owner or admin: invite USER to GROUP (USER joins by accepting;
    /// at once if USER had asked to join).
    Invite {
        #[arg(value_name = "GROUP")]
        group: GroupRef,
        #[arg(value_name = "USER")]
        who: String,
    },
    /// My pending invitations to groups.
    Invites,
    /// Accept my invitation to GROUP (join it).
    AcceptInvite {
        #[arg(value_name = "GROUP")]
        group: GroupRef,
    },
    /// Decline my invitation to GROUP.
    DeclineInvite {
        #[arg(value_name = "GROUP")]
        group: GroupRef,
    },
    /// Ask to join GROUP.
    Join {
        #[arg(value_name = "GROUP")]
        group: GroupRef,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Owner or admin: approve USER's request to join GROUP.
    Approve {
        #[arg(value_name = "GROUP")]
        group: GroupRef,
        #[arg(value_name = "USER")]
        who: String,
    },
    /// Owner or admin: deny USER's request to join GROUP.
    Deny {
        #[arg(value_name = "GROUP")]
        group: GroupRef,
        #[arg(value_name = "USER")]
        who: String,
    },
    /// Leave GROUP.
    Leave {
        #[arg(value_name = "GROUP")]
        group: GroupRef,
    },
    /// Owner or admin: remove USER from GROUP.
    Kick {
        #[arg(value_name = "GROUP")]
        group: GroupRef,
        #[arg(value_name = "USER")]
        who: String,
    },
    /// Owner: make USER an admin of GROUP.
    Promote {
        #[arg(value_name = "GROUP")]
        group: GroupRef,
        #[arg(value_name = "USER")]
        who: String,
    },
    /// Owner: delete GROUP.
    DeleteGroup {
        #[arg(value_name = "GROUP")]
        group: GroupRef,
    },
    /// The members of GROUP (members only), and pending join requests for
    /// its owner and admins.
    Members {
        #[arg(value_name = "GROUP")]
        group: GroupRef,
    },
    /// Send TEXT to every member of GROUP.
    GroupSend {
        #[arg(value_name = "GROUP")]
        group: GroupRef,
        text: String,
    },
    /// The last messages of GROUP, oldest first.
    GroupHistory {
        #[arg(value_name = "GROUP")]
        group: GroupRef,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Mark the conversation with USER (or of --group GROUP) read up to
    /// --seq N (default: its newest message); prints the read mark stored.
    Read {
        #[arg(value_name = "USER", required_unless_present = "group")]
        with: Option<String>,
        #[arg(long, value_name = "GROUP", conflicts_with = "with")]
        group: Option<GroupRef>,
        /// Up to this sequence (0: the newest).
        #[arg(long, value_name = "N", default_value_t = 0)]
        seq: u64,
    },
    /// Recall my message MESSAGE_ID (within the gateway's recall window).
    Recall {
        #[arg(value_name = "MESSAGE_ID")]
        message_id: u64,
    },
    /// Tell USER (or the members of --group GROUP) that I am typing.
    Typing {
        #[arg(value_name = "USER", required_unless_present = "group")]
        with: Option<String>,
        #[arg(long, value_name = "GROUP", conflicts_with = "with")]
        group: Option<GroupRef>,
    },
    /// My conversations: last sequence, my read mark, unread messages and
    /// (1:1) the other user's read mark.
    Sync,
}
