//! zdb placement.
//!
//! - [`planner`]: pure decisions from a snapshot of the cluster (no I/O):
//!   which ranges to split. Membership and balancing decisions join it later.
//! - [`driver`]: the loop that reads the cluster through the admin API, asks
//!   the planner, and carries out its actions. `zdbctl local up` runs it; the
//!   operator will run the same driver.

pub mod driver;
pub mod planner;
