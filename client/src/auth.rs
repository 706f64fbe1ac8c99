//! Users, roles and authentication (the `Auth` service): turning it on and
//! off, managing users and the permissions of roles. Any node answers
//! these calls (a node forwards changes to the meta range's leader), so a
//! call goes to any endpoint and, when that node cannot serve it, to
//! another after a backoff.
//!
//! Reads (status, lists) are retried after any failure that may be
//! transient. A change is not sent again once its outcome is unknown
//! (adding a user twice would fail the second time): the caller gets
//! [`Error::OutcomeUnknown`] and lists the users or roles to find out.

use std::future::Future;

use tonic::Status;
use zdb_proto::v1::auth_client::AuthClient;
use zdb_proto::v1::{
    Access, AuthDisableRequest, AuthEnableRequest, AuthStatusRequest, Permission, Role,
    RoleAddRequest, RoleDeleteRequest, RoleGrantPermissionRequest, RoleListRequest,
    RoleRevokePermissionRequest, UserAddRequest, UserChangePasswordRequest, UserDeleteRequest,
    UserInfo, UserListRequest, UserRoleRequest,
};

use crate::client::{timed, Client};
use crate::error::{Error, Result};
use crate::retry::{classify, Next};
use crate::transport::Transport;

/// Longest one attempt may take: a change hashes a password (argon2, tens
/// of milliseconds) and goes through the meta range's Raft log.
const MAX_AUTH_ATTEMPT: std::time::Duration = std::time::Duration::from_secs(5);

/// What `AuthStatus` reports: whether authentication is on, and who the
/// call was made as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthStatus {
    pub enabled: bool,
    /// The caller: empty when anonymous, `node` for a node's certificate.
    pub user: String,
    /// How the caller was identified: `certificate`, `token`, or empty.
    pub method: String,
}

/// Whether a call may be sent again when its outcome is unknown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Change,
}

impl Client {
    /// Runs an Auth call on any node, moving to another (or to the one a
    /// redirect names) when it cannot serve it.
    async fn on_any_node<T, F, Fut>(&self, kind: Kind, mut call: F) -> Result<T>
    where
        F: FnMut(AuthClient<Transport>, std::time::Duration) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let mut attempts = self.attempts();
        let mut target: Option<String> = None;
        loop {
            let remaining = attempts.remaining()?;
            let endpoint = target.take().unwrap_or_else(|| self.any_endpoint());
            attempts.count += 1;
            let client = AuthClient::new(self.channel(&endpoint)?);
            let status = match call(client, remaining.min(MAX_AUTH_ATTEMPT)).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) => status,
            };
            attempts.last = format!("{endpoint}: {}: {}", status.code(), status.message());
            match classify(&status) {
                Next::NotLeader { address, .. } if !address.is_empty() && address != endpoint => {
                    target = Some(address);
                    continue;
                }
                Next::Fail => return Err(Error::from_final_status(status)),
                Next::Ambiguous if kind == Kind::Change => {
                    return Err(Error::OutcomeUnknown(format!(
                        "{}; list the users or roles to see whether the change was made",
                        attempts.last
                    )))
                }
                _ => {}
            }
            attempts.back_off().await;
        }
    }

    /// Whether authentication is on, and who this client is to the cluster.
    pub async fn auth_status(&self) -> Result<AuthStatus> {
        let reply = self
            .on_any_node(Kind::Read, |mut auth, timeout| async move {
                auth.auth_status(timed(AuthStatusRequest {}, timeout)).await
            })
            .await?;
        Ok(AuthStatus {
            enabled: reply.enabled,
            user: reply.user,
            method: reply.method,
        })
    }

    /// Turns authentication on; creates user `root` (role `root`: admin on
    /// every key) with `root_password` if it does not exist yet (an empty
    /// password: root logs in with a client certificate only).
    pub async fn auth_enable(&self, root_password: &str) -> Result<()> {
        let root_password = root_password.to_owned();
        self.on_any_node(Kind::Change, |mut auth, timeout| {
            let request = AuthEnableRequest {
                root_password: root_password.clone(),
            };
            async move { auth.auth_enable(timed(request, timeout)).await }
        })
        .await?;
        Ok(())
    }

    /// Turns authentication off: every call is allowed again.
    pub async fn auth_disable(&self) -> Result<()> {
        self.on_any_node(Kind::Change, |mut auth, timeout| async move {
            auth.auth_disable(timed(AuthDisableRequest {}, timeout))
                .await
        })
        .await?;
        Ok(())
    }

    /// Adds user `name`; an empty `password` means the user logs in with a
    /// client certificate only.
    pub async fn user_add(&self, name: &str, password: &str) -> Result<()> {
        let request = UserAddRequest {
            name: name.to_owned(),
            password: password.to_owned(),
        };
        self.on_any_node(Kind::Change, |mut auth, timeout| {
            let request = request.clone();
            async move { auth.user_add(timed(request, timeout)).await }
        })
        .await?;
        Ok(())
    }

    pub async fn user_delete(&self, name: &str) -> Result<()> {
        let request = UserDeleteRequest {
            name: name.to_owned(),
        };
        self.on_any_node(Kind::Change, |mut auth, timeout| {
            let request = request.clone();
            async move { auth.user_delete(timed(request, timeout)).await }
        })
        .await?;
        Ok(())
    }

    /// Sets user `name`'s password; the user's tokens stop working.
    pub async fn user_change_password(&self, name: &str, password: &str) -> Result<()> {
        let request = UserChangePasswordRequest {
            name: name.to_owned(),
            password: password.to_owned(),
        };
        self.on_any_node(Kind::Change, |mut auth, timeout| {
            let request = request.clone();
            async move { auth.user_change_password(timed(request, timeout)).await }
        })
        .await?;
        Ok(())
    }

    pub async fn user_grant_role(&self, user: &str, role: &str) -> Result<()> {
        let request = user_role(user, role);
        self.on_any_node(Kind::Change, |mut auth, timeout| {
            let request = request.clone();
            async move { auth.user_grant_role(timed(request, timeout)).await }
        })
        .await?;
        Ok(())
    }

    pub async fn user_revoke_role(&self, user: &str, role: &str) -> Result<()> {
        let request = user_role(user, role);
        self.on_any_node(Kind::Change, |mut auth, timeout| {
            let request = request.clone();
            async move { auth.user_revoke_role(timed(request, timeout)).await }
        })
        .await?;
        Ok(())
    }

    /// Every user with its roles.
    pub async fn user_list(&self) -> Result<Vec<UserInfo>> {
        let reply = self
            .on_any_node(Kind::Read, |mut auth, timeout| async move {
                auth.user_list(timed(UserListRequest {}, timeout)).await
            })
            .await?;
        Ok(reply.users)
    }

    pub async fn role_add(&self, name: &str) -> Result<()> {
        let request = RoleAddRequest {
            name: name.to_owned(),
        };
        self.on_any_node(Kind::Change, |mut auth, timeout| {
            let request = request.clone();
            async move { auth.role_add(timed(request, timeout)).await }
        })
        .await?;
        Ok(())
    }

    pub async fn role_delete(&self, name: &str) -> Result<()> {
        let request = RoleDeleteRequest {
            name: name.to_owned(),
        };
        self.on_any_node(Kind::Change, |mut auth, timeout| {
            let request = request.clone();
            async move { auth.role_delete(timed(request, timeout)).await }
        })
        .await?;
        Ok(())
    }

    /// Grants `access` on the keys in `[start, end)` to `role` (an empty
    /// `end`: every key from `start` on).
    pub async fn role_grant(
        &self,
        role: &str,
        access: Access,
        start: &[u8],
        end: &[u8],
    ) -> Result<()> {
        let request = RoleGrantPermissionRequest {
            role: role.to_owned(),
            permission: Some(Permission {
                access: access as i32,
                start: start.to_vec(),
                end: end.to_vec(),
            }),
        };
        self.on_any_node(Kind::Change, |mut auth, timeout| {
            let request = request.clone();
            async move { auth.role_grant_permission(timed(request, timeout)).await }
        })
        .await?;
        Ok(())
    }

    /// Revokes the permission `role` holds on `[start, end)`, as granted.
    pub async fn role_revoke(&self, role: &str, start: &[u8], end: &[u8]) -> Result<()> {
        let request = RoleRevokePermissionRequest {
            role: role.to_owned(),
            start: start.to_vec(),
            end: end.to_vec(),
        };
        self.on_any_node(Kind::Change, |mut auth, timeout| {
            let request = request.clone();
            async move { auth.role_revoke_permission(timed(request, timeout)).await }
        })
        .await?;
        Ok(())
    }

    /// Every role with its permissions.
    pub async fn role_list(&self) -> Result<Vec<Role>> {
        let reply = self
            .on_any_node(Kind::Read, |mut auth, timeout| async move {
                auth.role_list(timed(RoleListRequest {}, timeout)).await
            })
            .await?;
        Ok(reply.roles)
    }
}

fn user_role(user: &str, role: &str) -> UserRoleRequest {
    UserRoleRequest {
        user: user.to_owned(),
        role: role.to_owned(),
    }
}
