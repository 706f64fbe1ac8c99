//! The `cluster.conf` file of a local cluster folder:
//!
//! ```text
//! cluster_id=local-1f2e3d4c
//! node=1 127.0.0.1:40001 127.0.0.1:40002
//! joined=4 127.0.0.1:40007 127.0.0.1:40008 joining-40007
//! ```
//!
//! `node` lines are the founding members; `joined` lines are nodes added
//! later with `local add-node` (the cluster gave them their id), with the
//! folder holding their data.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

const FILE: &str = "cluster.conf";

pub struct Layout {
    pub dir: PathBuf,
    pub cluster_id: String,
    pub nodes: Vec<NodeLayout>,
}

pub struct NodeLayout {
    pub id: u64,
    pub grpc: String,
    pub status: String,
    /// For joined nodes: the data folder (inside the cluster folder).
    pub joined_dir: Option<String>,
}

impl Layout {
    pub fn load(dir: &Path) -> Result<Option<Layout>> {
        let path = dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut cluster_id = None;
        let mut nodes = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let bad = || format!("{}:{}: cannot parse {line:?}", path.display(), number + 1);
            match line.split_once('=') {
                Some(("cluster_id", value)) => cluster_id = Some(value.to_owned()),
                Some(("node", value)) => {
                    let fields: Vec<&str> = value.split_whitespace().collect();
                    let [id, grpc, status] = fields[..] else {
                        bail!(bad())
                    };
                    nodes.push(NodeLayout {
                        id: id.parse().with_context(bad)?,
                        grpc: grpc.to_owned(),
                        status: status.to_owned(),
                        joined_dir: None,
                    });
                }
                Some(("joined", value)) => {
                    let fields: Vec<&str> = value.split_whitespace().collect();
                    let [id, grpc, status, dir] = fields[..] else {
                        bail!(bad())
                    };
                    nodes.push(NodeLayout {
                        id: id.parse().with_context(bad)?,
                        grpc: grpc.to_owned(),
                        status: status.to_owned(),
                        joined_dir: Some(dir.to_owned()),
                    });
                }
                _ if line.trim().is_empty() => {}
                _ => bail!(bad()),
            }
        }
        let cluster_id =
            cluster_id.with_context(|| format!("{} names no cluster_id", path.display()))?;
        if nodes.is_empty() {
            bail!("{} lists no nodes", path.display());
        }
        Ok(Some(Layout {
            dir: dir.to_owned(),
            cluster_id,
            nodes,
        }))
    }

    /// A new cluster on free ports, saved to the folder.
    pub fn create(dir: &Path, count: u64) -> Result<Layout> {
        // Hold every listener until all ports are chosen so none repeats.
        let listeners = (0..count * 2)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<std::io::Result<Vec<_>>>()
            .context("cannot find free ports on 127.0.0.1")?;
        let ports: Vec<u16> = listeners
            .iter()
            .map(|listener| listener.local_addr().map(|addr| addr.port()))
            .collect::<std::io::Result<_>>()?;
        drop(listeners);
        let nodes = (0..count as usize)
            .map(|i| NodeLayout {
                id: i as u64 + 1,
                grpc: format!("127.0.0.1:{}", ports[2 * i]),
                status: format!("127.0.0.1:{}", ports[2 * i + 1]),
                joined_dir: None,
            })
            .collect();
        let layout = Layout {
            dir: dir.to_owned(),
            cluster_id: format!("local-{:08x}", rand_suffix()),
            nodes,
        };
        layout.save()?;
        Ok(layout)
    }

    pub fn save(&self) -> Result<()> {
        let mut text = format!("cluster_id={}\n", self.cluster_id);
        for node in &self.nodes {
            match &node.joined_dir {
                None => text.push_str(&format!("node={} {} {}\n", node.id, node.grpc, node.status)),
                Some(dir) => text.push_str(&format!(
                    "joined={} {} {} {dir}\n",
                    node.id, node.grpc, node.status
                )),
            }
        }
        let path = self.dir.join(FILE);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    pub fn endpoints(&self) -> String {
        self.nodes
            .iter()
            .map(|node| node.grpc.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The founding members, as `--peers` wants them.
    pub fn peers(&self) -> String {
        self.nodes
            .iter()
            .filter(|node| node.joined_dir.is_none())
            .map(|node| format!("{}={}", node.id, node.grpc))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn metrics_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("http://{}/metrics", node.status))
            .collect()
    }

    pub fn node_dir(&self, id: u64) -> PathBuf {
        match self
            .nodes
            .iter()
            .find(|n| n.id == id)
            .and_then(|n| n.joined_dir.as_ref())
        {
            Some(dir) => self.dir.join(dir),
            None => self.dir.join(format!("node-{id}")),
        }
    }

    /// Two free ports on 127.0.0.1 (gRPC, status).
    pub fn free_ports() -> Result<(u16, u16)> {
        let a = TcpListener::bind("127.0.0.1:0")?;
        let b = TcpListener::bind("127.0.0.1:0")?;
        Ok((a.local_addr()?.port(), b.local_addr()?.port()))
    }

    pub fn log_file(&self, id: u64) -> PathBuf {
        match self
            .nodes
            .iter()
            .find(|n| n.id == id)
            .and_then(|n| n.joined_dir.as_ref())
        {
            Some(dir) => self.dir.join(format!("{dir}.log")),
            None => self.dir.join(format!("node-{id}.log")),
        }
    }

    /// Where a node that joins the cluster should ask: the first founding member.
    pub fn seed(&self) -> &str {
        self.nodes
            .iter()
            .find(|node| node.joined_dir.is_none())
            .map_or("", |node| node.grpc.as_str())
    }
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    nanos ^ std::process::id().rotate_left(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_layout_reloads_identically() {
        let dir = std::env::temp_dir().join(format!("zdbctl-layout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let created = Layout::create(&dir, 3).unwrap();
        let loaded = Layout::load(&dir).unwrap().unwrap();
        assert_eq!(loaded.cluster_id, created.cluster_id);
        assert_eq!(loaded.endpoints(), created.endpoints());
        assert_eq!(loaded.peers().split(',').count(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
