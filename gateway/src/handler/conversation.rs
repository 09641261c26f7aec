//! The conversation a mark-read or typing request names: the other user
//! (by id or name) of a 1:1 conversation, or a group the user is a member
//! of. Exactly one of the two.

use std::sync::Arc;

use confab_proto::client::{self as pb};
use confab_queue::ConversationId;

use super::message::{check_group_id, may_message, resolve};
use crate::error::{Error, Result};
use crate::service::social;
use crate::state::Shared;
use crate::state::social::GroupEntry;

/// Who is on the other side.
pub enum Target {
    Direct { peer: u64 },
    Group(Arc<GroupEntry>),
}

pub struct Named {
    pub id: ConversationId,
    pub target: Target,
}

impl Named {
    /// Every participant: the two users, or the group's members.
    pub fn participants(&self, me: u64) -> Vec<u64> {
        match &self.target {
            Target::Direct { peer } if *peer == me => vec![me],
            Target::Direct { peer } => vec![*peer, me],
            Target::Group(g) => g.uids(),
        }
    }
}

/// The conversation of `me` with `user` or in `group_id`. A group one is
/// not a member of (or that does not exist) is FORBIDDEN; with
/// `messaging`, the other user must be one `me` may message (friends
/// unless the gateway allows strangers).
pub async fn named(
    shared: &Shared,
    me: u64,
    user: Option<&pb::UserRef>,
    group_id: u64,
    messaging: bool,
) -> Result<Named> {
    let user = user.filter(|u| u.user_id != 0 || !u.name.is_empty());
    match (user, group_id) {
        (Some(u), 0) => {
            let peer = resolve(shared, u.user_id, &u.name).await?;
            if messaging {
                may_message(shared, me, peer).await?;
            }
            Ok(Named {
                id: ConversationId::direct(me, peer),
                target: Target::Direct { peer },
            })
        }
        (None, 0) => Err(Error::Invalid(
            "name the conversation: the other user (user) or a group (group_id)".into(),
        )),
        (None, g) => {
            check_group_id(g)?;
            let group = social::group(shared, g, me).await?;
            Ok(Named {
                id: ConversationId::group(g),
                target: Target::Group(group),
            })
        }
        (Some(_), _) => Err(Error::Invalid(
            "name either the other user or a group, not both".into(),
        )),
    }
}
