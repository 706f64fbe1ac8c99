//! Authentication and authorization on the node:
//!
//! - [`catalog`]: users, roles and permissions on key spans as the meta
//!   range stores them; changes applied deterministically; permission checks;
//! - [`requirement`]: what each RPC's request needs (every request type
//!   declares it, or its handler does not compile);
//! - [`guard`]: who a call is from (node or client certificate, token) and
//!   whether it may run;
//! - [`audit`]: JSON lines of security events and admin actions.

pub mod audit;
pub mod catalog;
pub mod guard;
pub mod requirement;

pub use audit::AuditLog;
pub use guard::{Caller, Guard, Principal};
pub use requirement::{Protected, Requirement};
