//! The audit log: one JSON line per security event (a refused call, a
//! login, a refused TLS handshake) and per admin action, allowed or not:
//! who, what, when, from where, and the decision.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::clock::wall_ms;

pub enum Decision {
    Allowed,
    Denied(String),
}

/// Appends audit records to a file. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    node_id: Arc<Mutex<u64>>,
    file: Option<Arc<Mutex<File>>>,
}

impl AuditLog {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(AuditLog {
            node_id: Arc::default(),
            file: Some(Arc::new(Mutex::new(file))),
        })
    }

    pub fn disabled() -> Self {
        AuditLog {
            node_id: Arc::default(),
            file: None,
        }
    }

    /// Names the node in every later record (known once its identity is).
    pub fn set_node(&self, node_id: u64) {
        *self.node_id.lock().expect("audit lock is never poisoned") = node_id;
    }

    pub fn record(&self, user: &str, action: &str, peer: Option<SocketAddr>, decision: Decision) {
        let Some(file) = &self.file else { return };
        let (allowed, reason) = match decision {
            Decision::Allowed => (true, String::new()),
            Decision::Denied(reason) => (false, reason),
        };
        let node = *self.node_id.lock().expect("audit lock is never poisoned");
        let mut line = format!(
            "{{\"time_ms\":{},\"node\":{node},\"user\":{},\"action\":{},\"peer\":{},\"allowed\":{allowed}",
            wall_ms(),
            json_string(user),
            json_string(action),
            json_string(&peer.map(|p| p.to_string()).unwrap_or_default()),
        );
        if !reason.is_empty() {
            line.push_str(&format!(",\"reason\":{}", json_string(&reason)));
        }
        line.push_str("}\n");
        let mut file = file.lock().expect("audit lock is never poisoned");
        if let Err(err) = file.write_all(line.as_bytes()) {
            tracing::warn!(error = %err, "cannot write the audit log");
        }
    }
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_json_lines_with_escaped_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path).unwrap();
        log.set_node(3);
        log.record("al\"ice", "SplitRange", None, Decision::Allowed);
        log.record("", "Put", None, Decision::Denied("no\nway".into()));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("\"user\":\"al\\\"ice\""));
        assert!(lines[0].contains("\"node\":3"));
        assert!(lines[1].contains("\"allowed\":false"));
        assert!(lines[1].contains("\"reason\":\"no\\u000away\""));
    }
}
