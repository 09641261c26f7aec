//! Users as handlers name them: by id or name, checked to exist (the
//! cache of known users first, [`crate::state::users`], else persist), and
//! the names of many ids at once.

use std::collections::HashMap;

use confab_proto::client::{self as pb};
use confab_proto::persist::{self as db, get_user_request};

use crate::error::{Error, Result};
use crate::service::calls::persist;
use crate::state::Shared;

/// The user of `key` from persist (remembered); `shown` names it in a
/// USER_NOT_FOUND.
pub async fn get_user(shared: &Shared, key: get_user_request::Key, shown: String) -> Result<db::User> {
    let request = db::GetUserRequest { key: Some(key) };
    let user = persist(
        shared,
        |mut d| async move { d.get_user(request).await },
        |s| Error::from_persist(s, || Error::UserNotFound(shown)),
    )
    .await?;
    shared.users.remember(user.id, &user.name);
    Ok(user)
}

/// A user by reference, checked to exist.
pub async fn resolve(shared: &Shared, r: Option<pb::UserRef>) -> Result<db::User> {
    let r = r.unwrap_or_default();
    let Some((key, shown)) = key(r.user_id, r.name) else {
        return Err(Error::Invalid("a user (user_id or name) is required".into()));
    };
    get_user(shared, key, shown).await
}

/// The persist key of a user named by id (not 0) or else by name (not
/// empty), and how to show it; None when neither is given.
pub fn key(user_id: u64, name: String) -> Option<(get_user_request::Key, String)> {
    if user_id != 0 {
        Some((get_user_request::Key::Id(user_id), user_id.to_string()))
    } else if !name.is_empty() {
        Some((get_user_request::Key::Name(name.clone()), name))
    } else {
        None
    }
}

/// Names of `ids` (up to 1000 per persist call).
pub async fn names(shared: &Shared, ids: &[u64]) -> Result<HashMap<u64, String>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(1000) {
        let request = db::GetUsersRequest { ids: chunk.to_vec() };
        let reply = persist(
            shared,
            |mut d| async move { d.get_users(request).await },
            |s| Error::from_persist(s, || Error::Internal("get users: not found".into())),
        )
        .await?;
        out.extend(reply.users.into_iter().map(|u| (u.id, u.name)));
    }
    Ok(out)
}

/// A user as the client protocol shows it.
pub fn info(id: u64, name: &str) -> Option<pb::UserInfo> {
    Some(pb::UserInfo {
        user_id: id,
        name: name.to_owned(),
    })
}
