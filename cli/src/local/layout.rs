//! The `cluster.conf` file of a local cluster folder:
//!
//! ```text
//! cluster_id=local-1f2e3d4c
//! node=1 127.0.0.1:40001 127.0.0.1:40002 redis=127.0.0.1:40003
//! joined=4 127.0.0.1:40010 127.0.0.1:40011 joining-40010 redis=127.0.0.1:40012
//! ```
//!
//! `node` lines are the founding members; `joined` lines are nodes added
//! later with `local add-node` (the cluster gave them their id), with the
//! folder holding their data. The addresses are gRPC, status and (the
//! optional `redis=` token, absent in folders made before nodes had one)
//! the Redis protocol port.

use std::collections::HashSet;
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
    /// The Redis protocol address (`--redis-listen`); None in an old folder
    /// until `give_redis_ports`.
    pub redis: Option<String>,
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
                    let (fields, redis) = split_redis(value);
                    let [id, grpc, status] = fields[..] else {
                        bail!(bad())
                    };
                    nodes.push(NodeLayout {
                        id: id.parse().with_context(bad)?,
                        grpc: grpc.to_owned(),
                        status: status.to_owned(),
                        redis,
                        joined_dir: None,
                    });
                }
                Some(("joined", value)) => {
                    let (fields, redis) = split_redis(value);
                    let [id, grpc, status, dir] = fields[..] else {
                        bail!(bad())
                    };
                    nodes.push(NodeLayout {
                        id: id.parse().with_context(bad)?,
                        grpc: grpc.to_owned(),
                        status: status.to_owned(),
                        redis,
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
        let ports = free_ports(count as usize * 3, &HashSet::new())?;
        let nodes = (0..count as usize)
            .map(|i| NodeLayout {
                id: i as u64 + 1,
                grpc: format!("127.0.0.1:{}", ports[3 * i]),
                status: format!("127.0.0.1:{}", ports[3 * i + 1]),
                redis: Some(format!("127.0.0.1:{}", ports[3 * i + 2])),
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
                None => text.push_str(&format!("node={} {} {}", node.id, node.grpc, node.status)),
                Some(dir) => text.push_str(&format!(
                    "joined={} {} {} {dir}",
                    node.id, node.grpc, node.status
                )),
            }
            if let Some(redis) = &node.redis {
                text.push_str(&format!(" redis={redis}"));
            }
            text.push('\n');
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

    /// The Redis ports of the nodes that have one, in layout order.
    pub fn redis_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter_map(|node| node.redis.as_deref())
            .filter_map(|address| address.rsplit_once(':'))
            .filter_map(|(_, port)| port.parse().ok())
            .collect()
    }

    /// Gives a free Redis port to every node without one (a folder made
    /// before nodes had one), avoiding every port the layout names, since
    /// its nodes may not be running yet. True when it changed the layout,
    /// which the caller saves.
    pub fn give_redis_ports(&mut self) -> Result<bool> {
        let missing = self.nodes.iter().filter(|n| n.redis.is_none()).count();
        if missing == 0 {
            return Ok(false);
        }
        let mut ports = free_ports(missing, &self.used_ports())?.into_iter();
        for node in self.nodes.iter_mut().filter(|n| n.redis.is_none()) {
            let port = ports.next().expect("one port per node without one");
            node.redis = Some(format!("127.0.0.1:{port}"));
        }
        Ok(true)
    }

    fn used_ports(&self) -> HashSet<u16> {
        self.nodes
            .iter()
            .flat_map(|n| [Some(&n.grpc), Some(&n.status), n.redis.as_ref()])
            .flatten()
            .filter_map(|address| address.rsplit_once(':'))
            .filter_map(|(_, port)| port.parse().ok())
            .collect()
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

    /// Three free ports on 127.0.0.1 (gRPC, status, Redis) for a new node,
    /// none of them a port the layout already names.
    pub fn free_ports(&self) -> Result<(u16, u16, u16)> {
        let ports = free_ports(3, &self.used_ports())?;
        Ok((ports[0], ports[1], ports[2]))
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

/// The fields of a `node`/`joined` line, and its trailing `redis=ADDRESS`
/// token if it has one.
fn split_redis(value: &str) -> (Vec<&str>, Option<String>) {
    let mut fields: Vec<&str> = value.split_whitespace().collect();
    let redis = match fields.last().and_then(|last| last.strip_prefix("redis=")) {
        Some(address) => {
            let address = address.to_owned();
            fields.pop();
            Some(address)
        }
        None => None,
    };
    (fields, redis)
}

/// `count` distinct free ports on 127.0.0.1, none in `avoid`. Every
/// listener is held until all are chosen, so no port repeats.
fn free_ports(count: usize, avoid: &HashSet<u16>) -> Result<Vec<u16>> {
    let mut held = Vec::new();
    let mut ports = Vec::with_capacity(count);
    // A port in `avoid` stays held too (so it is not offered again); give
    // up rather than loop if the system keeps offering those.
    while ports.len() < count {
        anyhow::ensure!(
            held.len() < count + avoid.len() + 64,
            "cannot find {count} free ports on 127.0.0.1"
        );
        let listener =
            TcpListener::bind("127.0.0.1:0").context("cannot find free ports on 127.0.0.1")?;
        let port = listener.local_addr()?.port();
        if !avoid.contains(&port) {
            ports.push(port);
        }
        held.push(listener);
    }
    Ok(ports)
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
        assert_eq!(loaded.redis_ports(), created.redis_ports());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn created_layout_has_three_distinct_ports_per_node() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path(), 3).unwrap();
        assert_eq!(layout.redis_ports().len(), 3);
        assert_eq!(layout.used_ports().len(), 9, "a port repeats");
        let (grpc, status, redis) = layout.free_ports().unwrap();
        let used = layout.used_ports();
        assert!(grpc != status && status != redis && grpc != redis);
        assert!(!used.contains(&grpc) && !used.contains(&status) && !used.contains(&redis));
    }

    #[test]
    fn a_folder_without_redis_ports_loads_and_gets_them() {
        let dir = tempfile::tempdir().unwrap();
        let old = "cluster_id=local-1f2e3d4c\n\
                   node=1 127.0.0.1:40001 127.0.0.1:40002\n\
                   node=2 127.0.0.1:40003 127.0.0.1:40004\n\
                   joined=4 127.0.0.1:40007 127.0.0.1:40008 joining-40007\n";
        std::fs::write(dir.path().join(FILE), old).unwrap();
        let mut layout = Layout::load(dir.path()).unwrap().unwrap();
        assert_eq!(layout.cluster_id, "local-1f2e3d4c");
        assert_eq!(layout.nodes.len(), 3);
        assert!(layout.nodes.iter().all(|node| node.redis.is_none()));
        assert_eq!(layout.nodes[2].joined_dir.as_deref(), Some("joining-40007"));
        assert_eq!(layout.node_dir(4), dir.path().join("joining-40007"));
        assert!(layout.redis_ports().is_empty());

        assert!(layout.give_redis_ports().unwrap());
        assert!(!layout.give_redis_ports().unwrap(), "nothing left to give");
        let ports = layout.redis_ports();
        assert_eq!(ports.len(), 3);
        assert_eq!(layout.used_ports().len(), 9, "a Redis port repeats another");
        layout.save().unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(
            text.contains(&format!(
                "joined=4 127.0.0.1:40007 127.0.0.1:40008 joining-40007 redis=127.0.0.1:{}\n",
                ports[2]
            )),
            "{text}"
        );
        let reloaded = Layout::load(dir.path()).unwrap().unwrap();
        assert_eq!(reloaded.redis_ports(), ports);
        assert_eq!(reloaded.endpoints(), layout.endpoints());
        assert_eq!(reloaded.peers(), "1=127.0.0.1:40001,2=127.0.0.1:40003");
        assert_eq!(
            reloaded.nodes[2].joined_dir.as_deref(),
            Some("joining-40007")
        );
    }

    #[test]
    fn the_new_format_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let text = "cluster_id=local-00000001\n\
                    node=1 127.0.0.1:40001 127.0.0.1:40002 redis=127.0.0.1:40003\n\
                    joined=4 127.0.0.1:40010 127.0.0.1:40011 joining-40010 redis=127.0.0.1:40012\n";
        std::fs::write(dir.path().join(FILE), text).unwrap();
        let layout = Layout::load(dir.path()).unwrap().unwrap();
        assert_eq!(layout.redis_ports(), [40003, 40012]);
        assert_eq!(layout.nodes[1].joined_dir.as_deref(), Some("joining-40010"));
        layout.save().unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(FILE)).unwrap(),
            text
        );
        std::fs::write(
            dir.path().join(FILE),
            "cluster_id=x\nnode=1 127.0.0.1:1 127.0.0.1:2 redis=127.0.0.1:3 extra\n",
        )
        .unwrap();
        assert!(
            Layout::load(dir.path()).is_err(),
            "a token after redis= is refused"
        );
    }
}
