//! Kubernetes Events about one cluster, one per action the reconciler
//! takes and one per new problem. Each is published by a fresh Recorder:
//! kube-runtime folds repeats of one (reason, action) into a series that
//! keeps the first note, which would show "asked for 20Gi on data-db-0"
//! for every claim expanded.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::metrics::Metrics;

/// The longest note the API server takes (events.k8s.io/v1: 1 kB).
pub const MAX_NOTE_BYTES: usize = 1024;

/// `text` cut to fit an Event's note, keeping its start (what failed and
/// where) and marking the cut.
pub fn note(text: &str) -> String {
    if text.len() <= MAX_NOTE_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_NOTE_BYTES - " ...".len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} ...", &text[..end])
}

pub struct Events<'a> {
    client: kube::Client,
    reporter: Reporter,
    reference: ObjectReference,
    metrics: &'a Metrics,
}

impl<'a> Events<'a> {
    pub fn new(
        client: kube::Client,
        reporter: Reporter,
        reference: ObjectReference,
        metrics: &'a Metrics,
    ) -> Self {
        Events {
            client,
            reporter,
            reference,
            metrics,
        }
    }

    /// Publishes one Event; a failed publish is logged, never fatal (the
    /// action itself happened).
    pub async fn publish(&self, type_: EventType, reason: &str, action: &str, note: String) {
        if type_ == EventType::Normal {
            self.metrics.action(action);
        }
        tracing::info!(reason, action, %note, "event");
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(self::note(&note)),
            action: action.into(),
            secondary: None,
        };
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        if let Err(error) = recorder.publish(&event, &self.reference).await {
            tracing::warn!(%error, reason, "cannot publish an event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{note, MAX_NOTE_BYTES};

    #[test]
    fn notes_fit_the_api_servers_limit() {
        let long = "é".repeat(MAX_NOTE_BYTES);
        let cut = note(&long);
        assert!(cut.len() <= MAX_NOTE_BYTES && cut.ends_with(" ..."));
        assert_eq!(note("short"), "short");
    }
}
