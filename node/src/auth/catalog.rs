//! The security catalog as the meta range stores it: users, roles and
//! their permissions on key spans, and whether authentication is on.
//! Changes are applied here, deterministically (they read only the
//! catalog and the command: the proposer chose every random part), and
//! permission checks answer from a node's copy.

use zdb_proto::v1::{
    security_command::Change, Access, Permission, Role, SecurityCatalog, SecurityCommand,
    StoredUser,
};

/// The built-in administrator and its role.
pub const ROOT: &str = "root";
/// Reserved: the name node certificates carry.
pub const NODE: &str = zdb_security::tls::NODE_COMMON_NAME;
const MAX_NAME_BYTES: usize = 128;

/// What a call needs on a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
    Admin,
}

impl Need {
    pub fn name(self) -> &'static str {
        match self {
            Need::Read => "read",
            Need::Write => "write",
            Need::Admin => "admin",
        }
    }

    fn granted_by(self, access: i32) -> bool {
        let access = Access::try_from(access).unwrap_or(Access::Unspecified);
        match self {
            Need::Read => matches!(access, Access::Read | Access::ReadWrite | Access::Admin),
            Need::Write => matches!(access, Access::Write | Access::ReadWrite | Access::Admin),
            Need::Admin => access == Access::Admin,
        }
    }
}

/// Keys from `start` up to `end` (exclusive; None: no end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub start: Vec<u8>,
    pub end: Option<Vec<u8>>,
}

impl Span {
    pub fn key(key: &[u8]) -> Span {
        let mut end = key.to_vec();
        end.push(0);
        Span {
            start: key.to_vec(),
            end: Some(end),
        }
    }

    /// A scan's span: an empty end means to the end of the keyspace.
    pub fn scan(start: &[u8], end: &[u8]) -> Span {
        Span {
            start: start.to_vec(),
            end: (!end.is_empty()).then(|| end.to_vec()),
        }
    }

    pub fn everything() -> Span {
        Span::scan(b"", b"")
    }

    pub fn describe(&self) -> String {
        match &self.end {
            None if self.start.is_empty() => "the whole keyspace".to_owned(),
            None => format!("keys from {:?} on", String::from_utf8_lossy(&self.start)),
            Some(end) if end.len() == self.start.len() + 1 && end.starts_with(&self.start) => {
                format!("key {:?}", String::from_utf8_lossy(&self.start))
            }
            Some(end) => format!(
                "keys [{:?}, {:?})",
                String::from_utf8_lossy(&self.start),
                String::from_utf8_lossy(end)
            ),
        }
    }
}

pub fn user<'a>(catalog: &'a SecurityCatalog, name: &str) -> Option<&'a StoredUser> {
    catalog.users.iter().find(|user| user.name == name)
}

fn role<'a>(catalog: &'a SecurityCatalog, name: &str) -> Option<&'a Role> {
    catalog.roles.iter().find(|role| role.name == name)
}

/// Whether `user`'s roles together grant `need` on every key of `span`.
pub fn allows(catalog: &SecurityCatalog, user_name: &str, need: Need, span: &Span) -> bool {
    let Some(user) = user(catalog, user_name) else {
        return false;
    };
    let mut grants: Vec<(&[u8], Option<&[u8]>)> = user
        .roles
        .iter()
        .filter_map(|name| role(catalog, name))
        .flat_map(|role| &role.permissions)
        .filter(|permission| need.granted_by(permission.access))
        .map(|p| {
            (
                p.start.as_slice(),
                (!p.end.is_empty()).then_some(p.end.as_slice()),
            )
        })
        .collect();
    grants.sort();
    // Walk the grants in order of their starts, extending the covered
    // prefix of the span; a gap before the span's end denies.
    let mut covered: Vec<u8> = span.start.clone();
    for (start, end) in grants {
        if start > covered.as_slice() {
            break;
        }
        match end {
            None => return true,
            Some(end) if end > covered.as_slice() => covered = end.to_vec(),
            Some(_) => {}
        }
        if let Some(span_end) = &span.end {
            if covered.as_slice() >= span_end.as_slice() {
                return true;
            }
        }
    }
    false
}

/// A user or role name: refused before it is proposed.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(format!("a {what} name must be 1 to {MAX_NAME_BYTES} bytes"));
    }
    if name == NODE {
        return Err(format!("{NODE:?} is reserved for the cluster's nodes"));
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("a {what} name has no spaces or control characters"));
    }
    Ok(())
}

/// A permission as granted: refused before it is proposed.
pub fn check_permission(permission: &Permission) -> Result<(), String> {
    if Access::try_from(permission.access).unwrap_or(Access::Unspecified) == Access::Unspecified {
        return Err("a permission needs an access: read, write, readwrite or admin".into());
    }
    if !permission.end.is_empty() && permission.end <= permission.start {
        return Err("a permission's end must come after its start (empty: no end)".into());
    }
    Ok(())
}

fn root_role() -> Role {
    Role {
        name: ROOT.to_owned(),
        permissions: vec![Permission {
            access: Access::Admin as i32,
            start: Vec::new(),
            end: Vec::new(),
        }],
    }
}

fn user_mut<'a>(
    catalog: &'a mut SecurityCatalog,
    name: &str,
) -> Result<&'a mut StoredUser, String> {
    catalog
        .users
        .iter_mut()
        .find(|user| user.name == name)
        .ok_or_else(|| format!("user {name:?} does not exist"))
}

fn role_mut<'a>(catalog: &'a mut SecurityCatalog, name: &str) -> Result<&'a mut Role, String> {
    catalog
        .roles
        .iter_mut()
        .find(|role| role.name == name)
        .ok_or_else(|| format!("role {name:?} does not exist"))
}

/// Applies one change, or says why the catalog's present state refuses it
/// (the same answer on every replica).
pub fn apply(catalog: &mut SecurityCatalog, command: &SecurityCommand) -> Result<(), String> {
    let change = command.change.as_ref().ok_or("an empty security change")?;
    match change {
        Change::Enable(enable) => {
            if role(catalog, ROOT).is_none() {
                catalog.roles.push(root_role());
            }
            if user(catalog, ROOT).is_none() {
                if enable.root_password_hash.is_empty() {
                    return Err("user root does not exist yet: give it a password".into());
                }
                catalog.users.push(StoredUser {
                    name: ROOT.to_owned(),
                    password_hash: enable.root_password_hash.clone(),
                    roles: vec![ROOT.to_owned()],
                    generation: 1,
                });
            }
            if !catalog.enabled || catalog.token_key.is_empty() {
                catalog.token_key = enable.token_key.clone();
            }
            catalog.enabled = true;
        }
        Change::Disable(_) => catalog.enabled = false,
        Change::AddUser(new) => {
            if user(catalog, &new.name).is_some() {
                return Err(format!("user {:?} already exists", new.name));
            }
            for name in &new.roles {
                role(catalog, name).ok_or_else(|| format!("role {name:?} does not exist"))?;
            }
            catalog.users.push(StoredUser {
                generation: 1,
                ..new.clone()
            });
        }
        Change::DeleteUser(delete) => {
            if delete.name == ROOT && catalog.enabled {
                return Err("user root cannot be deleted while authentication is on".into());
            }
            user_mut(catalog, &delete.name)?;
            catalog.users.retain(|user| user.name != delete.name);
        }
        Change::SetPassword(set) => {
            let user = user_mut(catalog, &set.name)?;
            user.password_hash = set.password_hash.clone();
            user.generation += 1;
        }
        Change::GrantRole(grant) => {
            role(catalog, &grant.role)
                .ok_or_else(|| format!("role {:?} does not exist", grant.role))?;
            let user = user_mut(catalog, &grant.user)?;
            if !user.roles.contains(&grant.role) {
                user.roles.push(grant.role.clone());
                user.generation += 1;
            }
        }
        Change::RevokeRole(revoke) => {
            if revoke.user == ROOT && revoke.role == ROOT && catalog.enabled {
                return Err(
                    "role root cannot be revoked from user root while authentication is on".into(),
                );
            }
            let user = user_mut(catalog, &revoke.user)?;
            if !user.roles.contains(&revoke.role) {
                return Err(format!(
                    "user {:?} does not hold role {:?}",
                    revoke.user, revoke.role
                ));
            }
            user.roles.retain(|role| role != &revoke.role);
            user.generation += 1;
        }
        Change::AddRole(add) => {
            if role(catalog, &add.name).is_some() {
                return Err(format!("role {:?} already exists", add.name));
            }
            catalog.roles.push(Role {
                name: add.name.clone(),
                permissions: Vec::new(),
            });
        }
        Change::DeleteRole(delete) => {
            if delete.name == ROOT && catalog.enabled {
                return Err("role root cannot be deleted while authentication is on".into());
            }
            role_mut(catalog, &delete.name)?;
            catalog.roles.retain(|role| role.name != delete.name);
            for user in &mut catalog.users {
                if user.roles.contains(&delete.name) {
                    user.roles.retain(|role| role != &delete.name);
                    user.generation += 1;
                }
            }
        }
        Change::GrantPermission(grant) => {
            let permission = grant
                .permission
                .clone()
                .ok_or("a grant names no permission")?;
            let role = role_mut(catalog, &grant.role)?;
            role.permissions
                .retain(|p| (&p.start, &p.end) != (&permission.start, &permission.end));
            role.permissions.push(permission);
        }
        Change::RevokePermission(revoke) => {
            let role = role_mut(catalog, &revoke.role)?;
            let before = role.permissions.len();
            role.permissions
                .retain(|p| (&p.start, &p.end) != (&revoke.start, &revoke.end));
            if role.permissions.len() == before {
                return Err(format!(
                    "role {:?} has no permission on exactly that span",
                    revoke.role
                ));
            }
        }
    }
    catalog.version += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zdb_proto::v1::{EnableAuth, RoleAddRequest, RoleGrantPermissionRequest, UserRoleRequest};

    fn change(change: Change) -> SecurityCommand {
        SecurityCommand {
            change: Some(change),
        }
    }

    fn grant(catalog: &mut SecurityCatalog, role: &str, access: Access, start: &str, end: &str) {
        apply(
            catalog,
            &change(Change::GrantPermission(RoleGrantPermissionRequest {
                role: role.into(),
                permission: Some(Permission {
                    access: access as i32,
                    start: start.into(),
                    end: end.into(),
                }),
            })),
        )
        .unwrap();
    }

    fn catalog_with_reader() -> SecurityCatalog {
        let mut catalog = SecurityCatalog::default();
        apply(
            &mut catalog,
            &change(Change::Enable(EnableAuth {
                token_key: vec![7; 32],
                root_password_hash: "hash".into(),
            })),
        )
        .unwrap();
        apply(
            &mut catalog,
            &change(Change::AddUser(StoredUser {
                name: "alice".into(),
                ..Default::default()
            })),
        )
        .unwrap();
        apply(
            &mut catalog,
            &change(Change::AddRole(RoleAddRequest { name: "r".into() })),
        )
        .unwrap();
        apply(
            &mut catalog,
            &change(Change::GrantRole(UserRoleRequest {
                user: "alice".into(),
                role: "r".into(),
            })),
        )
        .unwrap();
        catalog
    }

    #[test]
    fn permissions_cover_spans_only_together_and_only_at_their_access() {
        let mut catalog = catalog_with_reader();
        grant(&mut catalog, "r", Access::Read, "a", "c");
        grant(&mut catalog, "r", Access::ReadWrite, "c", "e");
        assert!(allows(&catalog, "alice", Need::Read, &Span::key(b"b")));
        assert!(!allows(&catalog, "alice", Need::Write, &Span::key(b"b")));
        assert!(allows(&catalog, "alice", Need::Write, &Span::key(b"d")));
        // Two grants meeting at "c" cover [a, e) together, not beyond.
        assert!(allows(
            &catalog,
            "alice",
            Need::Read,
            &Span::scan(b"a", b"e")
        ));
        assert!(!allows(
            &catalog,
            "alice",
            Need::Read,
            &Span::scan(b"a", b"f")
        ));
        assert!(!allows(
            &catalog,
            "alice",
            Need::Read,
            &Span::scan(b"a", b"")
        ));
        assert!(!allows(&catalog, "alice", Need::Read, &Span::key(b"e")));
        assert!(!allows(&catalog, "alice", Need::Admin, &Span::key(b"b")));
        assert!(allows(&catalog, ROOT, Need::Admin, &Span::everything()));
        assert!(!allows(&catalog, "mallory", Need::Read, &Span::key(b"b")));
    }

    #[test]
    fn role_changes_raise_the_generation_and_root_is_protected() {
        let mut catalog = catalog_with_reader();
        let before = user(&catalog, "alice").unwrap().generation;
        apply(
            &mut catalog,
            &change(Change::RevokeRole(UserRoleRequest {
                user: "alice".into(),
                role: "r".into(),
            })),
        )
        .unwrap();
        assert!(user(&catalog, "alice").unwrap().generation > before);
        let refused = apply(
            &mut catalog,
            &change(Change::DeleteUser(zdb_proto::v1::UserDeleteRequest {
                name: ROOT.into(),
            })),
        );
        assert!(refused.unwrap_err().contains("root"));
        let version = catalog.version;
        assert!(apply(
            &mut catalog,
            &change(Change::GrantRole(UserRoleRequest {
                user: "nobody".into(),
                role: "r".into(),
            }))
        )
        .is_err());
        assert_eq!(catalog.version, version, "a refused change changes nothing");
    }

    #[test]
    fn names_and_permissions_are_checked_before_they_are_proposed() {
        assert!(check_name("user", "node").is_err());
        assert!(check_name("user", "").is_err());
        assert!(check_name("user", "a b").is_err());
        assert!(check_name("user", "alice").is_ok());
        assert!(check_permission(&Permission {
            access: Access::Read as i32,
            start: b"b".to_vec(),
            end: b"a".to_vec(),
        })
        .is_err());
        assert!(check_permission(&Permission::default()).is_err());
    }
}
