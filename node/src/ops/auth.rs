//! Logins, users and roles: the Auth service's operations, and the task
//! that keeps this node's copy of the security catalog current.
//!
//! Whatever is random in a change (a password's salt, the token key) is
//! chosen here, before the change is proposed, so every replica of the
//! meta range applies the same bytes.

use std::time::Duration;

use rand::RngCore;
use tokio::sync::watch;
use zdb_proto::v1::security_command::Change;
use zdb_proto::v1::*;
use zdb_security::token::{self, Claims, TokenKey};

use super::Ops;
use crate::auth::catalog::{self, ROOT};
use crate::auth::{Caller, Principal, Requirement};
use crate::error::{Error, Result};

/// How often a node reads the catalog again: a change made through
/// another node (a revoked role) holds here at most this much later.
pub const CATALOG_REFRESH: Duration = Duration::from_secs(1);
/// A refusal made on a copy older than this is checked again.
const STALE_AFTER: Duration = Duration::from_millis(100);

/// What the node was started with.
#[derive(Debug, Clone, Default)]
pub struct SecuritySettings {
    /// Authentication on from the start, with this password for root.
    pub root_password: Option<String>,
    /// How long a password login's token is valid.
    pub token_ttl: Duration,
}

fn invalid(reason: String) -> Error {
    Error::InvalidArgument(reason)
}

async fn hash_password(password: String) -> Result<String> {
    // argon2 takes tens of milliseconds of CPU by design: off the runtime.
    tokio::task::spawn_blocking(move || zdb_security::password::hash(&password))
        .await
        .map_err(|err| Error::Config(format!("password hashing failed: {err}")))?
        .map_err(|err| invalid(err.to_string()))
}

impl Ops {
    /// Reads the catalog through the meta range's leader and installs it.
    pub async fn refresh_security_catalog(&self) -> Result<()> {
        let catalog = self.meta.security_catalog().await?;
        self.guard.install(catalog);
        Ok(())
    }

    /// The guard's decision; a refusal is checked once more against the
    /// catalog as the meta range holds it now, so a grant or a new user
    /// made through another node holds here at once (a revocation takes
    /// up to [`CATALOG_REFRESH`]).
    pub async fn authorize(
        &self,
        caller: &Caller,
        rpc: &str,
        requirement: &Requirement,
    ) -> Result<Principal> {
        match self.guard.authorize(caller, rpc, requirement) {
            Err(Error::PermissionDenied { .. } | Error::Unauthenticated { .. })
                if self.guard.catalog_is_older_than(STALE_AFTER) =>
            {
                // Unreachable meta range: decide on the copy held.
                let _ = self.refresh_security_catalog().await;
                self.guard.authorize(caller, rpc, requirement)
            }
            decided => decided,
        }
    }

    async fn change_security(&self, change: Change) -> Result<()> {
        self.meta
            .change_security(SecurityCommand {
                change: Some(change),
            })
            .await?;
        // The caller's next call, on this node, sees the change.
        self.refresh_security_catalog().await
    }

    /// Keeps the node's copy of the catalog current until `stop`; with a
    /// root password configured, first turns authentication on.
    pub async fn keep_security_catalog(self, mut stop: watch::Receiver<bool>) {
        let mut enabled = false;
        loop {
            if !enabled {
                if let Some(password) = self.security.root_password.clone() {
                    match self.ensure_auth(password).await {
                        Ok(()) => enabled = true,
                        Err(err) => tracing::debug!(error = %err, "authentication not set up yet"),
                    }
                } else {
                    enabled = true;
                }
            }
            if let Err(err) = self.refresh_security_catalog().await {
                tracing::debug!(error = %err, "cannot read the security catalog yet");
            }
            tokio::select! {
                _ = tokio::time::sleep(CATALOG_REFRESH) => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
        }
    }

    /// Authentication on, user root present: the first node to get here
    /// creates it, the others find it done.
    async fn ensure_auth(&self, root_password: String) -> Result<()> {
        let catalog = self.meta.security_catalog().await?;
        if catalog.enabled && catalog::user(&catalog, ROOT).is_some() {
            return Ok(());
        }
        self.enable(root_password).await
    }

    async fn enable(&self, root_password: String) -> Result<()> {
        if !self.guard.tls() {
            return Err(Error::FailedPrecondition(
                "authentication needs TLS (passwords and tokens must not cross the network in the clear): start the nodes with --tls-ca-file, --tls-cert-file and --tls-key-file".into(),
            ));
        }
        let root_password_hash = match root_password.is_empty() {
            true => String::new(),
            false => hash_password(root_password).await?,
        };
        let mut token_key = vec![0; 32];
        rand::rng().fill_bytes(&mut token_key);
        self.change_security(Change::Enable(EnableAuth {
            token_key,
            root_password_hash,
        }))
        .await
    }

    pub async fn authenticate(&self, req: AuthenticateRequest) -> Result<AuthenticateResponse> {
        let refused = || Error::Unauthenticated {
            reason: "wrong user name or password".into(),
            token_expired: false,
        };
        // As the meta range holds it now: a password changed a moment ago
        // through another node must not log in with the old one. Logins
        // are rare (one per token lifetime) and cost an argon2 hash anyway.
        self.refresh_security_catalog().await?;
        let catalog = self
            .guard
            .catalog()
            .ok_or(Error::NotApplied("this node has not read the users yet"))?;
        if !catalog.enabled {
            return Err(Error::FailedPrecondition(
                "authentication is off: calls need no token".into(),
            ));
        }
        let user = catalog::user(&catalog, &req.user).ok_or_else(refused)?;
        let hash = user.password_hash.clone();
        if hash.is_empty() {
            return Err(refused());
        }
        let password = req.password;
        let matches =
            tokio::task::spawn_blocking(move || zdb_security::password::verify(&password, &hash))
                .await
                .unwrap_or(false);
        if !matches {
            return Err(refused());
        }
        let key = TokenKey::from_bytes(&catalog.token_key).map_err(|err| Error::Corruption {
            what: "token key",
            detail: err.to_string(),
        })?;
        let ttl = self.security.token_ttl;
        let token = token::issue(
            &key,
            &Claims {
                user: user.name.clone(),
                expires_at_ms: crate::clock::wall_ms() + ttl.as_millis() as u64,
                generation: user.generation,
            },
        );
        Ok(AuthenticateResponse {
            token,
            ttl_seconds: ttl.as_secs(),
        })
    }

    pub fn auth_status(&self, principal: &Principal) -> AuthStatusResponse {
        AuthStatusResponse {
            enabled: self.guard.catalog().is_some_and(|c| c.enabled),
            user: principal.name().to_owned(),
            method: principal.method().to_owned(),
        }
    }

    pub async fn auth_enable(&self, req: AuthEnableRequest) -> Result<AuthEnableResponse> {
        self.enable(req.root_password).await?;
        Ok(AuthEnableResponse {})
    }

    pub async fn auth_disable(&self) -> Result<AuthDisableResponse> {
        self.change_security(Change::Disable(AuthDisableRequest {}))
            .await?;
        Ok(AuthDisableResponse {})
    }

    pub async fn user_add(&self, req: UserAddRequest) -> Result<UserChangeResponse> {
        catalog::check_name("user", &req.name).map_err(invalid)?;
        let password_hash = match req.password.is_empty() {
            true => String::new(),
            false => hash_password(req.password).await?,
        };
        self.change_security(Change::AddUser(StoredUser {
            name: req.name,
            password_hash,
            roles: Vec::new(),
            generation: 1,
        }))
        .await?;
        Ok(UserChangeResponse {})
    }

    pub async fn user_delete(&self, req: UserDeleteRequest) -> Result<UserChangeResponse> {
        self.change_security(Change::DeleteUser(req)).await?;
        Ok(UserChangeResponse {})
    }

    pub async fn user_change_password(
        &self,
        req: UserChangePasswordRequest,
    ) -> Result<UserChangeResponse> {
        if req.password.is_empty() {
            return Err(invalid("a password may not be empty".into()));
        }
        let password_hash = hash_password(req.password).await?;
        self.change_security(Change::SetPassword(SetPasswordHash {
            name: req.name,
            password_hash,
        }))
        .await?;
        Ok(UserChangeResponse {})
    }

    pub async fn user_grant_role(&self, req: UserRoleRequest) -> Result<UserChangeResponse> {
        self.change_security(Change::GrantRole(req)).await?;
        Ok(UserChangeResponse {})
    }

    pub async fn user_revoke_role(&self, req: UserRoleRequest) -> Result<UserChangeResponse> {
        self.change_security(Change::RevokeRole(req)).await?;
        Ok(UserChangeResponse {})
    }

    pub async fn user_list(&self) -> Result<UserListResponse> {
        let catalog = self.meta.security_catalog().await?;
        Ok(UserListResponse {
            users: catalog
                .users
                .into_iter()
                .map(|user| UserInfo {
                    name: user.name,
                    roles: user.roles,
                })
                .collect(),
        })
    }

    pub async fn role_add(&self, req: RoleAddRequest) -> Result<RoleChangeResponse> {
        catalog::check_name("role", &req.name).map_err(invalid)?;
        self.change_security(Change::AddRole(req)).await?;
        Ok(RoleChangeResponse {})
    }

    pub async fn role_delete(&self, req: RoleDeleteRequest) -> Result<RoleChangeResponse> {
        self.change_security(Change::DeleteRole(req)).await?;
        Ok(RoleChangeResponse {})
    }

    pub async fn role_grant_permission(
        &self,
        req: RoleGrantPermissionRequest,
    ) -> Result<RoleChangeResponse> {
        let permission = req
            .permission
            .as_ref()
            .ok_or_else(|| invalid("a grant needs a permission".into()))?;
        catalog::check_permission(permission).map_err(invalid)?;
        self.change_security(Change::GrantPermission(req)).await?;
        Ok(RoleChangeResponse {})
    }

    pub async fn role_revoke_permission(
        &self,
        req: RoleRevokePermissionRequest,
    ) -> Result<RoleChangeResponse> {
        self.change_security(Change::RevokePermission(req)).await?;
        Ok(RoleChangeResponse {})
    }

    pub async fn role_list(&self) -> Result<RoleListResponse> {
        let catalog = self.meta.security_catalog().await?;
        Ok(RoleListResponse {
            roles: catalog.roles,
        })
    }

    /// Node-to-node: the catalog as this node, the meta range's leader,
    /// holds it (or where the leader is).
    pub async fn security_catalog_here(&self) -> Result<SecurityCatalog> {
        self.meta.local_only().security_catalog().await
    }

    /// Node-to-node: a change proposed here, the meta range's leader.
    pub async fn security_change_here(
        &self,
        change: SecurityCommand,
    ) -> Result<UserChangeResponse> {
        self.meta.local_only().change_security(change).await?;
        Ok(UserChangeResponse {})
    }
}
