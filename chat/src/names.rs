//! The names of users and groups, for printing: asked from the gateway
//! once each and kept (a user's name by id, a group's from my group list
//! or from the group events that carry it), and group arguments (an id or
//! the name of one of my groups) resolved to ids.

use std::collections::HashMap;

use confab_client::Client;

use crate::cli::GroupRef;
use crate::error::{Error, Result};

#[derive(Debug, Default)]
pub struct Names {
    users: HashMap<u64, String>,
    groups: HashMap<u64, String>,
    /// Whether `groups` holds my whole group list (asked once).
    listed: bool,
}

impl Names {
    /// Remembers that user `uid` is called `name`.
    pub fn note_user(&mut self, uid: u64, name: &str) {
        if uid != 0 && !name.is_empty() {
            self.users.insert(uid, name.to_owned());
        }
    }

    /// Remembers that group `gid` is called `name`.
    pub fn note_group(&mut self, gid: u64, name: &str) {
        if gid != 0 && !name.is_empty() {
            self.groups.insert(gid, name.to_owned());
        }
    }

    /// The name of user `uid` ("me" is not special here).
    pub async fn user(&mut self, c: &Client, uid: u64) -> String {
        if let Some(n) = self.users.get(&uid) {
            return n.clone();
        }
        let name = match c.user_by_id(uid).await {
            Ok(u) if !u.name.is_empty() => u.name,
            // Kept too, so an unknown id is asked about once.
            _ => format!("user #{uid}"),
        };
        self.users.insert(uid, name.clone());
        name
    }

    /// The name of group `gid`: from what was seen, else from my groups
    /// (asked once per miss).
    pub async fn group(&mut self, c: &Client, gid: u64) -> String {
        if let Some(n) = self.groups.get(&gid) {
            return n.clone();
        }
        self.list_groups(c).await;
        self.groups
            .entry(gid)
            .or_insert_with(|| format!("group #{gid}"))
            .clone()
    }

    async fn list_groups(&mut self, c: &Client) {
        if let Ok(groups) = c.groups().await {
            for g in groups {
                self.note_group(g.group_id, &g.name);
            }
            self.listed = true;
        }
    }

    /// A conversation as a person names it: the other user of a 1:1
    /// conversation, `#name` of a group's.
    pub async fn conversation(&mut self, c: &Client, conversation: &str) -> String {
        if let Some(other) = other_party(conversation, c.uid()) {
            return self.user(c, other).await;
        }
        match conversation.strip_prefix("g:").and_then(|g| g.parse().ok()) {
            Some(gid) => format!("#{}", self.group(c, gid).await),
            None => conversation.to_owned(),
        }
    }

    /// The id of group `g`: an id as it is, a name looked up among my
    /// groups.
    pub async fn group_id(&mut self, c: &Client, g: &GroupRef) -> Result<u64> {
        let name = match g {
            GroupRef::Id(id) => return Ok(*id),
            GroupRef::Name(name) => name,
        };
        let find = |groups: &HashMap<u64, String>| {
            let mut ids = groups.iter().filter(|(_, n)| *n == name).map(|(id, _)| *id);
            match (ids.next(), ids.next()) {
                (Some(id), None) => Ok(Some(id)),
                (Some(_), Some(_)) => Err(Error::NotFound(format!(
                    "more than one of my groups is called {name}: name it by its id"
                ))),
                _ => Ok(None),
            }
        };
        if !self.listed {
            self.list_groups(c).await;
        }
        if let Some(id) = find(&self.groups)? {
            return Ok(id);
        }
        // Perhaps joined or created since the list was read.
        self.list_groups(c).await;
        find(&self.groups)?.ok_or_else(|| {
            Error::NotFound(format!(
                "no group {name} among mine (a group I am not in is named by its id)"
            ))
        })
    }
}

/// The other user of a direct conversation `d:LO:HI`.
pub fn other_party(conversation: &str, me: u64) -> Option<u64> {
    let rest = conversation.strip_prefix("d:")?;
    let (lo, hi) = rest.split_once(':')?;
    let (lo, hi): (u64, u64) = (lo.parse().ok()?, hi.parse().ok()?);
    Some(if lo == me { hi } else { lo })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_other_party_of_a_direct_conversation() {
        assert_eq!(other_party("d:3:9", 3), Some(9));
        assert_eq!(other_party("d:3:9", 9), Some(3));
        assert_eq!(other_party("g:4", 3), None);
    }
}
