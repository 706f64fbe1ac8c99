//! Who a call is from and whether it may run: the one decision every RPC
//! passes through, recorded in the audit log when it matters.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use zdb_proto::v1::SecurityCatalog;
use zdb_security::tls::Identity;
use zdb_security::token::{self, TokenError, TokenKey};

use super::audit::{AuditLog, Decision};
use super::catalog::{self, Need};
use super::requirement::Requirement;
use crate::clock::wall_ms;
use crate::error::{Error, Result};

/// What the transport tells about a caller.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// What its verified client certificate names.
    pub certificate: Option<Identity>,
    /// An `authorization: Bearer` token.
    pub token: Option<String>,
    pub peer: Option<SocketAddr>,
}

/// Who a call runs as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Principal {
    #[default]
    Anonymous,
    Node,
    User {
        name: String,
        by_token: bool,
    },
}

impl Principal {
    pub fn name(&self) -> &str {
        match self {
            Principal::Anonymous => "",
            Principal::Node => catalog::NODE,
            Principal::User { name, .. } => name,
        }
    }

    pub fn method(&self) -> &'static str {
        match self {
            Principal::Anonymous => "",
            Principal::User { by_token: true, .. } => "token",
            _ => "certificate",
        }
    }
}

/// The node's authorization state: its copy of the security catalog and
/// whether it must enforce authentication. Cheap to clone.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<GuardState>,
}

struct GuardState {
    /// This node serves TLS: node-only RPCs need a node certificate, and
    /// authentication may be on.
    tls: bool,
    /// Started with a root password: authentication is on from the first
    /// call until the catalog says it is on (and from then on, as the
    /// catalog says: an admin may turn it off).
    enforced: bool,
    seen_enabled: AtomicBool,
    catalog: RwLock<Option<Arc<SecurityCatalog>>>,
    /// When the catalog was last installed.
    installed: RwLock<Option<Instant>>,
    audit: AuditLog,
}

impl Guard {
    pub fn new(tls: bool, enforced: bool, audit: AuditLog) -> Self {
        Guard {
            inner: Arc::new(GuardState {
                tls,
                enforced,
                seen_enabled: AtomicBool::new(false),
                catalog: RwLock::new(None),
                installed: RwLock::new(None),
                audit,
            }),
        }
    }

    /// A guard that lets everything through: plaintext, no authentication.
    pub fn open() -> Self {
        Guard::new(false, false, AuditLog::disabled())
    }

    pub fn tls(&self) -> bool {
        self.inner.tls
    }

    pub fn audit(&self) -> &AuditLog {
        &self.inner.audit
    }

    /// The catalog as last read from the meta range (None: not yet).
    pub fn catalog(&self) -> Option<Arc<SecurityCatalog>> {
        self.inner
            .catalog
            .read()
            .expect("catalog lock is never poisoned")
            .clone()
    }

    /// Installs a copy read from the meta range unless this one is newer.
    pub fn install(&self, catalog: SecurityCatalog) {
        let mut current = self
            .inner
            .catalog
            .write()
            .expect("catalog lock is never poisoned");
        if current
            .as_ref()
            .is_some_and(|held| held.version > catalog.version)
        {
            return;
        }
        if current.as_ref().map(|held| held.enabled) != Some(catalog.enabled) {
            tracing::info!(enabled = catalog.enabled, "authentication state");
        }
        if catalog.enabled {
            self.inner.seen_enabled.store(true, Ordering::Relaxed);
        }
        *current = Some(Arc::new(catalog));
        *self
            .inner
            .installed
            .write()
            .expect("catalog lock is never poisoned") = Some(Instant::now());
    }

    /// Whether the copy was read more than `age` ago (or never).
    pub fn catalog_is_older_than(&self, age: Duration) -> bool {
        self.inner
            .installed
            .read()
            .expect("catalog lock is never poisoned")
            .is_none_or(|installed| installed.elapsed() > age)
    }

    /// Whether calls must be authenticated; None while it cannot be known
    /// (TLS on, the catalog not read yet).
    fn enforcing(&self, catalog: Option<&SecurityCatalog>) -> Option<bool> {
        if !self.inner.tls {
            return Some(false);
        }
        let enforced = self.inner.enforced && !self.inner.seen_enabled.load(Ordering::Relaxed);
        match catalog {
            Some(catalog) => Some(catalog.enabled || enforced),
            None if enforced => Some(true),
            None => None,
        }
    }

    fn identify(&self, caller: &Caller, catalog: Option<&SecurityCatalog>) -> Result<Principal> {
        match &caller.certificate {
            Some(Identity::Node) => return Ok(Principal::Node),
            Some(Identity::User(name)) => {
                return Ok(Principal::User {
                    name: name.clone(),
                    by_token: false,
                })
            }
            None => {}
        }
        let Some(token) = &caller.token else {
            return Ok(Principal::Anonymous);
        };
        let catalog = catalog.ok_or(Error::NotApplied("this node has not read the users yet"))?;
        let key = TokenKey::from_bytes(&catalog.token_key).map_err(|_| Error::Unauthenticated {
            reason: "authentication is off: no token is valid".into(),
            token_expired: false,
        })?;
        let claims =
            token::verify(&key, token, wall_ms()).map_err(|err| Error::Unauthenticated {
                token_expired: matches!(err, TokenError::Expired),
                reason: format!("the token does not hold ({err}); log in again"),
            })?;
        match catalog::user(catalog, &claims.user) {
            Some(user) if user.generation == claims.generation => Ok(Principal::User {
                name: claims.user,
                by_token: true,
            }),
            _ => Err(Error::Unauthenticated {
                reason: "the token was revoked (the user changed or was deleted); log in again"
                    .into(),
                token_expired: true,
            }),
        }
    }

    /// Decides whether `caller` may make the call `rpc` that needs
    /// `requirement`: the principal it runs as, or UNAUTHENTICATED /
    /// PERMISSION_DENIED naming what is missing.
    pub fn authorize(
        &self,
        caller: &Caller,
        rpc: &str,
        requirement: &Requirement,
    ) -> Result<Principal> {
        let catalog = self.catalog();
        let identified = self.identify(caller, catalog.as_deref());
        let name = identified
            .as_ref()
            .map(|p| p.name().to_owned())
            .unwrap_or_default();
        let decided = identified
            .and_then(|principal| self.decide(principal, catalog.as_deref(), requirement));
        let audited = match (&decided, requirement) {
            (Err(_), _) => true,
            // Admin actions, allowed ones too; data calls only when refused.
            (Ok(principal), Requirement::Spans(spans)) => {
                *principal != Principal::Node && spans.iter().any(|(need, _)| *need == Need::Admin)
            }
            _ => false,
        };
        if audited {
            let decision = match &decided {
                Ok(_) => Decision::Allowed,
                Err(err) => Decision::Denied(err.to_string()),
            };
            self.inner.audit.record(&name, rpc, caller.peer, decision);
        }
        decided
    }

    fn decide(
        &self,
        principal: Principal,
        catalog: Option<&SecurityCatalog>,
        requirement: &Requirement,
    ) -> Result<Principal> {
        if *requirement == Requirement::Node {
            return match principal {
                Principal::Node => Ok(principal),
                _ if !self.inner.tls => Ok(principal),
                _ => Err(Error::PermissionDenied {
                    user: principal.name().to_owned(),
                    permission: "a node certificate from the cluster CA (node-to-node RPC)".into(),
                }),
            };
        }
        let enforcing = match self.enforcing(catalog) {
            Some(enforcing) => enforcing,
            None if principal == Principal::Node => true,
            None => return Err(Error::NotApplied("this node has not read the users yet")),
        };
        if !enforcing || principal == Principal::Node || *requirement == Requirement::Anyone {
            return Ok(principal);
        }
        let Principal::User { name, .. } = &principal else {
            return Err(Error::Unauthenticated {
                reason:
                    "authentication is on: give a client certificate or a token (Auth.Authenticate)"
                        .into(),
                token_expired: false,
            });
        };
        let Some(catalog) = catalog else {
            return Err(Error::NotApplied("this node has not read the users yet"));
        };
        if catalog::user(catalog, name).is_none() {
            return Err(Error::Unauthenticated {
                reason: format!("user {name:?} does not exist"),
                token_expired: false,
            });
        }
        if let Requirement::Spans(spans) = requirement {
            for (need, span) in spans {
                if !catalog::allows(catalog, name, *need, span) {
                    return Err(Error::PermissionDenied {
                        user: name.clone(),
                        permission: format!("{} on {}", need.name(), span.describe()),
                    });
                }
            }
        }
        Ok(principal)
    }
}
