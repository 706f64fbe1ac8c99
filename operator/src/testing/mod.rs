//! Test doubles: an in-memory Kubernetes API server as strict as a real one
//! ([`api`], with [`admission`], [`rbac`] from the rendered chart, the CRD's
//! schema through [`openapi`], [`pod_security`], [`quantity`], [`secrets`]),
//! the StatefulSet controller it lacks ([`statefulset_controller`]),
//! cert-manager when a test installs it ([`cert_manager`]), and the zdb
//! side ([`zdb`]: a cluster's admin API, a placement recorder).

pub mod admission;
pub mod api;
pub mod cert_manager;
pub mod chart;
pub mod openapi;
pub mod pod_security;
pub mod quantity;
pub mod rbac;
pub mod secrets;
pub mod statefulset_controller;
#[cfg(test)]
mod strictness;
pub mod zdb;

pub use api::{FakeApi, Identity, Recorded};
pub use zdb::{FakePlacement, FakeZdb};
