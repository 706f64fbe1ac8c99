//! Leader election with a `coordination.k8s.io/v1` Lease, so that two
//! operator replicas never act at once: only the holder runs the
//! controller. Writes use the Lease's resourceVersion (optimistic
//! concurrency), so two candidates can never both win the same term. The
//! holder that cannot renew in time stops acting (the process exits and
//! restarts as a candidate) before another replica may take over. A
//! holder that exits gracefully releases the Lease, so a standby takes
//! over at its next attempt instead of after the Lease expires.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::Api;

use crate::error::{Error, Result};

/// What a candidate should do given the current Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseDecision {
    /// We hold it: renew.
    Renew,
    /// Nobody holds it, or the holder let it expire: take it.
    Take,
    /// Someone else holds a valid lease.
    Wait { holder: String },
}

pub fn decide(lease: Option<&LeaseSpec>, me: &str, now: Timestamp) -> LeaseDecision {
    let Some(spec) = lease else {
        return LeaseDecision::Take;
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == me {
        return LeaseDecision::Renew;
    }
    if holder.is_empty() {
        return LeaseDecision::Take;
    }
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|time| time.0);
    match renewed {
        Some(renewed) if renewed + duration > now => LeaseDecision::Wait { holder },
        _ => LeaseDecision::Take,
    }
}

pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    lease_duration: Duration,
    retry_every: Duration,
}

impl LeaderElector {
    pub fn new(api: Api<Lease>, name: String, identity: String, lease_duration: Duration) -> Self {
        LeaderElector {
            api,
            name,
            identity,
            lease_duration,
            retry_every: lease_duration / 3,
        }
    }

    fn spec(&self, previous: Option<&LeaseSpec>, now: Timestamp, taking: bool) -> LeaseSpec {
        let transitions = previous.and_then(|s| s.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.lease_duration.as_secs() as i32),
            acquire_time: if taking {
                Some(MicroTime(now))
            } else {
                previous.and_then(|s| s.acquire_time.clone())
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if taking && previous.is_some() {
                transitions + 1
            } else {
                transitions
            }),
            ..LeaseSpec::default()
        }
    }

    /// One attempt to take or renew the lease; true if we hold it after.
    pub async fn try_hold(&self) -> Result<bool> {
        let now = Timestamp::now();
        let existing = self.api.get_opt(&self.name).await?;
        let spec = existing.as_ref().and_then(|lease| lease.spec.as_ref());
        let decision = decide(spec, &self.identity, now);
        let taking = match decision {
            LeaseDecision::Wait { .. } => return Ok(false),
            LeaseDecision::Take => true,
            LeaseDecision::Renew => false,
        };
        let result = match existing {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(None, now, true)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                lease.spec = Some(self.spec(lease.spec.as_ref(), now, taking));
                // Carries the resourceVersion we read: a concurrent writer makes this fail.
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Returns once this replica holds the lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_hold().await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "leader lease acquired");
                    return;
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "leader election"),
            }
            tokio::time::sleep(self.retry_every).await;
        }
    }

    /// Gives the lease up if we hold it (an empty holder, as client-go's
    /// `ReleaseOnCancel` leaves it); true if it was ours and now is free.
    pub async fn release(&self) -> Result<bool> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(false);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(false);
        }
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..spec
        });
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                tracing::info!(lease = %self.name, "leader lease released");
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Renews the lease until a renewal fails for longer than the lease
    /// lasts (or another replica took it); returns why leadership ended.
    pub async fn keep(&self) -> Error {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.retry_every).await;
            match self.try_hold().await {
                Ok(true) => last_renewed = tokio::time::Instant::now(),
                Ok(false) => {
                    return Error::LostLease(format!("{} is held by another replica", self.name))
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot renew the leader lease");
                    // Stop before the lease can expire for the others.
                    if last_renewed.elapsed() + self.retry_every >= self.lease_duration {
                        return Error::LostLease(format!(
                            "{}: renewals failed: {error}",
                            self.name
                        ));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn lease(holder: &str, renewed_secs_ago: i64, now: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(now - SignedDuration::from_secs(renewed_secs_ago))),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_valid_lease_of_another_replica_is_respected() {
        let now = Timestamp::now();
        assert_eq!(
            decide(Some(&lease("b", 5, now)), "a", now),
            LeaseDecision::Wait { holder: "b".into() }
        );
    }

    #[test]
    fn an_expired_or_missing_lease_is_taken() {
        let now = Timestamp::now();
        assert_eq!(
            decide(Some(&lease("b", 16, now)), "a", now),
            LeaseDecision::Take
        );
        assert_eq!(decide(None, "a", now), LeaseDecision::Take);
        assert_eq!(
            decide(Some(&lease("", 1, now)), "a", now),
            LeaseDecision::Take
        );
    }

    #[tokio::test]
    async fn only_one_replica_holds_the_lease() {
        let (client, api) = crate::testing::FakeApi::start();
        api.namespace("ops", json!({}));
        let elector = |identity: &str| {
            LeaderElector::new(
                Api::namespaced(client.clone(), "ops"),
                "zdb-operator".into(),
                identity.into(),
                Duration::from_secs(15),
            )
        };
        let (a, b) = (elector("a"), elector("b"));
        assert!(
            a.try_hold().await.expect("api answers"),
            "a takes the free lease"
        );
        assert!(
            !b.try_hold().await.expect("api answers"),
            "b waits while a holds it"
        );
        assert!(a.try_hold().await.expect("api answers"), "a renews");
        assert!(!b.try_hold().await.expect("api answers"));
        let lease = api
            .get("coordination.k8s.io", "leases", "ops", "zdb-operator")
            .expect("the lease exists");
        assert_eq!(lease["spec"]["holderIdentity"], "a");
        for request in api.take_requests() {
            assert!(!request.denied, "the chart does not grant {request:?}");
        }
        // The lease expires (a stopped renewing): b takes it over.
        api.edit(
            "coordination.k8s.io",
            "leases",
            "ops",
            "zdb-operator",
            |lease| {
                lease["spec"]["renewTime"] = json!("2020-01-01T00:00:00.000000Z");
            },
        );
        assert!(b.try_hold().await.expect("api answers"));
        let lease = api
            .get("coordination.k8s.io", "leases", "ops", "zdb-operator")
            .expect("the lease exists");
        assert_eq!(lease["spec"]["holderIdentity"], "b");
        assert_eq!(lease["spec"]["leaseTransitions"], 1);
        assert!(
            !a.try_hold().await.expect("api answers"),
            "a sees it lost the lease"
        );
    }

    #[tokio::test]
    async fn a_released_lease_is_taken_at_once() {
        let (client, api) = crate::testing::FakeApi::start();
        api.namespace("ops", json!({}));
        let elector = |identity: &str| {
            LeaderElector::new(
                Api::namespaced(client.clone(), "ops"),
                "zdb-operator".into(),
                identity.into(),
                Duration::from_secs(15),
            )
        };
        let (a, b) = (elector("a"), elector("b"));
        assert!(a.try_hold().await.expect("api answers"));
        assert!(
            !b.release().await.expect("api answers"),
            "b holds nothing to release"
        );
        assert!(
            !b.try_hold().await.expect("api answers"),
            "a's lease is valid"
        );
        assert!(a.release().await.expect("api answers"));
        let lease = api
            .get("coordination.k8s.io", "leases", "ops", "zdb-operator")
            .expect("the lease exists");
        assert!(lease["spec"]["holderIdentity"].is_null(), "{lease}");
        assert!(
            b.try_hold().await.expect("api answers"),
            "b takes it without waiting for it to expire"
        );
    }

    #[test]
    fn the_holder_renews() {
        let now = Timestamp::now();
        assert_eq!(
            decide(Some(&lease("a", 14, now)), "a", now),
            LeaseDecision::Renew
        );
    }
}
