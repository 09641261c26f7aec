//! Register, login (password), resume (token), logout; the router login
//! with the multi-device policy, and the kicks it decides. Register and
//! password login are rate limited per address and login per account too
//! ([`crate::state::guard`]); resume is not (a token cannot be guessed).

use confab_proto::client::frame::Body;
use confab_proto::client::{self as pb, KickReason};
use confab_proto::persist as db;
use confab_router_client::{DeviceKind, Session};

use super::conn::{Conn, Login};
use super::message::check_device;
use crate::error::{Error, Result};
use crate::service::calls::{persist, timed};
use crate::service::{deliver, presence};
use confab_common::ids::now_ms;

pub async fn register(conn: &mut Conn, r: pb::RegisterRequest) -> Result<Body> {
    let name = r.name.trim().to_owned();
    if name.is_empty() || r.password.is_empty() {
        return Err(Error::Invalid("name and password must not be empty".into()));
    }
    let shared = conn.shared.clone();
    shared.guard.register(conn.peer)?;
    let request = db::CreateUserRequest {
        name: name.clone(),
        password: r.password,
    };
    let user = persist(
        &shared,
        |mut d| async move { d.create_user(request).await },
        |s| match s.code() {
            tonic::Code::AlreadyExists => Error::NameTaken(name.clone()),
            _ => Error::from_persist_hashing(s, || Error::Internal("create user: not found".into())),
        },
    )
    .await?;
    shared.users.remember(user.id, &user.name);
    Ok(Body::RegisterOk(pb::RegisterOk {
        user_id: user.id,
        name: user.name,
    }))
}

pub async fn login(conn: &mut Conn, r: pb::LoginRequest) -> Result<Body> {
    if conn.login.is_some() {
        return Err(Error::AlreadyLoggedIn);
    }
    check_device(&r.device_id)?;
    let shared = conn.shared.clone();
    shared.guard.login(conn.peer, &r.name)?;
    let request = db::AuthenticateRequest {
        name: r.name.clone(),
        password: r.password,
        device: r.device_id.clone(),
    };
    let session = persist(
        &shared,
        |mut d| async move { d.authenticate(request).await },
        |s| Error::from_persist_hashing(s, || Error::BadCredentials),
    )
    .await?;
    shared.guard.logged_in(&r.name);
    establish(conn, session, r.device_id, r.device_kind).await
}

pub async fn resume(conn: &mut Conn, r: pb::ResumeRequest) -> Result<Body> {
    if conn.login.is_some() {
        return Err(Error::AlreadyLoggedIn);
    }
    check_device(&r.device_id)?;
    let shared = conn.shared.clone();
    let request = db::ResumeSessionRequest { token: r.token };
    let session = persist(
        &shared,
        |mut d| async move { d.resume_session(request).await },
        |s| match s.code() {
            tonic::Code::Unauthenticated | tonic::Code::InvalidArgument => Error::BadToken,
            _ => Error::from_persist(s, || Error::BadToken),
        },
    )
    .await?;
    establish(conn, session, r.device_id, r.device_kind).await
}

/// Registers the session here and in the router, then kicks what the
/// router's policy says.
async fn establish(conn: &mut Conn, s: db::Session, device_id: String, kind: i32) -> Result<Body> {
    let user = s
        .user
        .ok_or_else(|| Error::Internal("persist session without user".into()))?;
    let shared = conn.shared.clone();
    shared.users.remember(user.id, &user.name);
    let kind = DeviceKind::try_from(kind).unwrap_or(DeviceKind::Unspecified);
    let session_id = shared.ids.next()?;
    // Registered here first, so a delivery racing the router login finds it.
    shared
        .registry
        .insert(session_id, conn.handle(user.id, device_id.clone()));
    let session = Session {
        session_id,
        gateway_id: shared.gateway_id(),
        gateway_incarnation: shared.incarnation(),
        device_kind: kind as i32,
        device_id: device_id.clone(),
        login_at_ms: now_ms() as i64,
    };
    let policy = shared.config.session.multi_device_policy.to_wire();
    let outcome = timed(&shared, "router", async {
        Ok(shared.router.login(user.id, session, policy).await?)
    })
    .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            shared.registry.remove(session_id);
            return Err(e);
        }
    };
    // A kicked device's tokens are revoked (the same device's were replaced
    // by this login's already, in persist).
    let other_devices: Vec<String> = outcome
        .kicked
        .iter()
        .filter(|k| k.device_id != device_id)
        .map(|k| k.device_id.clone())
        .collect();
    for k in outcome.kicked {
        let reason = if k.device_id == device_id {
            KickReason::SameDevice
        } else {
            KickReason::Policy
        };
        deliver::kick(&shared, &k, reason, &device_id).await;
    }
    if !other_devices.is_empty() {
        let request = db::RevokeDevicesRequest {
            user: user.id,
            devices: other_devices,
        };
        let mut data = shared.data();
        let revoke = data.revoke_devices(request);
        if let Ok(Err(status)) = tokio::time::timeout(shared.rpc_timeout(), revoke).await {
            tracing::warn!(%status, uid = user.id, "revoking the tokens of kicked devices failed");
        }
    }
    tokio::spawn(presence::announce(shared.clone(), user.id, true));
    conn.login = Some(Login {
        uid: user.id,
        name: user.name.clone(),
        session_id,
        token: s.token.clone(),
        device_id,
    });
    Ok(Body::LoginOk(pb::LoginOk {
        user_id: user.id,
        name: user.name,
        token: s.token,
        session_id,
    }))
}

pub async fn logout(conn: &mut Conn) -> Result<Body> {
    let login = conn.logged_in()?.clone();
    let shared = conn.shared.clone();
    timed(&shared, "router", async {
        Ok(shared.router.logout(login.uid, login.session_id).await?)
    })
    .await?;
    shared.registry.remove(login.session_id);
    if shared.registry.of_user(login.uid).is_empty() {
        shared.presence.untrack(login.uid);
    }
    conn.login = None;
    tokio::spawn(presence::announce(shared.clone(), login.uid, false));
    let mut data = shared.data();
    let revoke = data.revoke_session(db::RevokeSessionRequest { token: login.token });
    if let Ok(Err(error)) = tokio::time::timeout(shared.rpc_timeout(), revoke).await {
        tracing::warn!(%error, uid = login.uid, "revoking the session token failed");
    }
    Ok(Body::LogoutOk(pb::LogoutOk {}))
}
