//! How `local add-node` and `local remove-node` ask the running `local up`
//! to start or stop a node: a Unix socket in the cluster folder, one request
//! per connection. `local up` is the parent of every node process, so only
//! it ever signals them (and they die with it).
//!
//! A request is one line of tab-separated words: `add-node`, the node binary
//! (or `-`) and the extra node flags; or `stop-node` and a node id. The
//! answer is any number of `progress` lines, then `ok` or `error`, each with
//! a message.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

const SOCKET: &str = "control.sock";

pub fn socket_path(data: &Path) -> PathBuf {
    data.join(SOCKET)
}

/// What a client asks of `local up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    AddNode {
        node_bin: Option<PathBuf>,
        node_args: Vec<String>,
    },
    StopNode(u64),
}

impl Request {
    fn encode(&self) -> String {
        match self {
            Request::AddNode {
                node_bin,
                node_args,
            } => {
                let bin = node_bin
                    .as_ref()
                    .map_or("-".to_owned(), |bin| bin.display().to_string());
                let mut words = vec!["add-node".to_owned(), bin];
                words.extend(node_args.iter().cloned());
                words.join("\t")
            }
            Request::StopNode(id) => format!("stop-node\t{id}"),
        }
    }

    fn decode(line: &str) -> Result<Request> {
        let mut words = line.trim_end_matches('\n').split('\t');
        match words.next() {
            Some("add-node") => {
                let bin = words.next().context("add-node names no binary")?;
                Ok(Request::AddNode {
                    node_bin: (bin != "-").then(|| PathBuf::from(bin)),
                    node_args: words.map(str::to_owned).collect(),
                })
            }
            Some("stop-node") => {
                let id = words.next().context("stop-node names no node")?;
                Ok(Request::StopNode(id.parse().context("node id")?))
            }
            _ => bail!("unknown request {line:?}"),
        }
    }
}

/// The listening end, in `local up`.
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

/// One client's request, and the way to answer it.
pub struct Incoming {
    pub request: Request,
    stream: UnixStream,
}

impl ControlSocket {
    pub fn bind(data: &Path) -> Result<ControlSocket> {
        let path = socket_path(data);
        // A socket left by a `local up` that was killed: nobody listens on it.
        if path.exists() && std::os::unix::net::UnixStream::connect(&path).is_err() {
            std::fs::remove_file(&path)?;
        }
        let listener = UnixListener::bind(&path).with_context(|| {
            format!(
                "cannot listen on {} (is another `local up` running on this folder?)",
                path.display()
            )
        })?;
        Ok(ControlSocket { listener, path })
    }

    /// The next request; malformed ones are answered with an error here.
    pub async fn next(&self) -> Incoming {
        loop {
            let Ok((stream, _)) = self.listener.accept().await else {
                continue;
            };
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            if reader.read_line(&mut line).await.is_err() {
                continue;
            }
            let mut stream = reader.into_inner();
            match Request::decode(&line) {
                Ok(request) => return Incoming { request, stream },
                Err(err) => {
                    let _ = stream
                        .write_all(format!("error\t{err:#}\n").as_bytes())
                        .await;
                }
            }
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Incoming {
    pub async fn progress(&mut self, message: &str) {
        let _ = self
            .stream
            .write_all(format!("progress\t{message}\n").as_bytes())
            .await;
    }

    pub async fn finish(mut self, result: Result<String>) {
        let line = match result {
            Ok(message) => format!("ok\t{message}\n"),
            Err(err) => format!("error\t{err:#}\n"),
        };
        let _ = self.stream.write_all(line.as_bytes()).await;
    }
}

/// Sends `request` to the `local up` running on `data`, printing its
/// progress; returns its final message.
pub async fn ask(data: &Path, request: &Request) -> Result<String> {
    let path = socket_path(data);
    let stream = UnixStream::connect(&path).await.with_context(|| {
        format!(
            "no `local up` is running on {} (start it with `zdbctl local up --data {}`)",
            data.display(),
            data.display()
        )
    })?;
    let (read, mut write) = stream.into_split();
    write
        .write_all(format!("{}\n", request.encode()).as_bytes())
        .await?;
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        match line.split_once('\t') {
            Some(("progress", message)) => println!("{message}"),
            Some(("ok", message)) => return Ok(message.to_owned()),
            Some(("error", message)) => bail!("{message}"),
            _ => bail!("local up answered {line:?}"),
        }
    }
    bail!("local up closed the connection without an answer (did it stop?)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_survive_encoding() {
        for request in [
            Request::AddNode {
                node_bin: Some(PathBuf::from("/bin/zdb-node")),
                node_args: vec!["--raft-tick-ms=50".into(), "--log-json".into()],
            },
            Request::AddNode {
                node_bin: None,
                node_args: Vec::new(),
            },
            Request::StopNode(4),
        ] {
            assert_eq!(Request::decode(&request.encode()).unwrap(), request);
        }
        assert!(Request::decode("reboot\t1").is_err());
        assert!(Request::decode("stop-node\tfour").is_err());
    }
}
