//! Issue 19: TLS on every connection, node certificates between nodes,
//! authentication, permissions on key spans, the audit log; real node
//! processes on real sockets.

use std::time::Duration;

use prost::Message as _;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use zdb_client::{Client, Credentials, TlsConfig};
use zdb_proto::v1::auth_client::AuthClient;
use zdb_proto::v1::*;
use zdb_security::pki::CertificateAuthority;
use zdb_security::tls::{ClientTls, ClientTlsSource, Connector};
use zdb_tests::{eventually, Cluster, ROOT_PASSWORD};

const DAY: Duration = Duration::from_secs(86_400);

/// Passes request and response bytes through untouched: lets the test
/// call every method of every service by name.
#[derive(Default, Clone)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        use bytes::BufMut as _;
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        use bytes::Buf as _;
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

fn tls_channel(address: &str, source: ClientTlsSource) -> Channel {
    let tls = std::sync::Arc::new(ClientTls::load(&source).expect("TLS config"));
    Endpoint::from_shared(format!("http://{address}"))
        .expect("address")
        .connect_with_connector_lazy(Connector::new(tls, Duration::from_secs(2)))
}

/// A TLS channel trusting the cluster CA in `certs`, presenting the
/// certificate of `identity` ("root": client.root.*, "node": node.*), or none.
fn channel_as(address: &str, certs: &std::path::Path, identity: Option<&str>) -> Channel {
    let cert_and_key = identity.map(|who| match who {
        "node" => (certs.join("node.crt"), certs.join("node.key")),
        user => (
            certs.join(format!("client.{user}.crt")),
            certs.join(format!("client.{user}.key")),
        ),
    });
    tls_channel(
        address,
        ClientTlsSource::Files {
            ca: certs.join("ca.crt"),
            cert_and_key,
        },
    )
}

fn plain_channel(address: &str) -> Channel {
    Endpoint::from_shared(format!("http://{address}"))
        .expect("address")
        .connect_lazy()
}

/// Calls `/service/method` with `body`; streaming methods get a stream of
/// one message.
async fn call(
    channel: Channel,
    path: &str,
    streaming: bool,
    body: Vec<u8>,
    token: Option<&str>,
) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|err| Status::unavailable(err.to_string()))?;
    let path: http::uri::PathAndQuery = path.parse().expect("path");
    fn with_token<T>(mut request: tonic::Request<T>, token: Option<&str>) -> tonic::Request<T> {
        if let Some(token) = token {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        request.set_timeout(Duration::from_secs(5));
        request
    }
    if streaming {
        let stream = tokio_stream::iter(vec![body]);
        grpc.client_streaming(
            with_token(tonic::Request::new(stream), token),
            path,
            RawCodec,
        )
        .await
        .map(drop)
    } else {
        grpc.unary(with_token(tonic::Request::new(body), token), path, RawCodec)
            .await
            .map(drop)
    }
}

/// What each RPC needs, as the test expects it. A new RPC missing here
/// fails the test: add it, with the permission it must check.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Needs {
    Anyone,
    Authenticated,
    /// A permission on the key the request names ("x").
    Key,
    Admin,
    Node,
}

fn expected(service: &str, method: &str) -> Option<Needs> {
    use Needs::*;
    Some(match (service, method) {
        (
            "Kv",
            "Get" | "Put" | "Delete" | "Scan" | "BatchGet" | "BatchWrite" | "CompareAndSwap"
            | "Exists" | "Count" | "DeleteRange" | "Update",
        ) => Key,
        ("Kv", "Locate" | "Now") => Authenticated,
        ("Txn", "Begin" | "Rollback" | "Heartbeat") => Authenticated,
        ("Txn", "Get" | "BatchGet" | "Scan" | "Put" | "Delete" | "Commit" | "Atomic") => Key,
        ("TxnRange", _) => Node,
        ("RaftTransport", _) => Node,
        (
            "Admin",
            "Join"
            | "UpdateMeta"
            | "AllocateRangeId"
            | "SecurityCatalogRead"
            | "SecurityChange"
            | "CacheSettingsRead"
            | "EvictRange",
        ) => Node,
        ("Admin", "ListNodes") => Authenticated,
        ("Admin", _) => Admin,
        ("Auth", "Authenticate" | "AuthStatus") => Anyone,
        ("Auth", _) => Admin,
        _ => return None,
    })
}

/// A request naming key "x" for the methods that take keys (an empty
/// message for the rest: it names the whole keyspace or nothing).
fn body_for(service: &str, method: &str) -> Vec<u8> {
    let key = b"x".to_vec();
    let put = || Mutation {
        op: Some(mutation::Op::Put(PutOp {
            key: key.clone(),
            value: b"v".to_vec(),
            ttl_seconds: 0,
        })),
    };
    match (service, method) {
        ("Kv", "BatchGet") => BatchGetRequest {
            keys: vec![key.clone()],
            ..Default::default()
        }
        .encode_to_vec(),
        ("Kv", "Exists") => ExistsRequest {
            keys: vec![key.clone()],
            ..Default::default()
        }
        .encode_to_vec(),
        ("Kv", "Count") => CountRequest {
            start_key: key.clone(),
            end_key: b"y".to_vec(),
            ..Default::default()
        }
        .encode_to_vec(),
        ("Kv", "DeleteRange") => DeleteRangeRequest {
            start_key: key.clone(),
            end_key: b"y".to_vec(),
            ..Default::default()
        }
        .encode_to_vec(),
        ("Kv", "Update") => UpdateRequest {
            key: key.clone(),
            op: Some(UpdateOp {
                kind: Some(update_op::Kind::Increment(1)),
            }),
            ..Default::default()
        }
        .encode_to_vec(),
        ("Kv", "BatchWrite") => BatchWriteRequest {
            mutations: vec![put()],
            ..Default::default()
        }
        .encode_to_vec(),
        ("Txn", "BatchGet") => TxnBatchGetRequest {
            keys: vec![key.clone()],
            ..Default::default()
        }
        .encode_to_vec(),
        ("Txn", "Commit") => CommitRequest {
            mutations: vec![put()],
            ..Default::default()
        }
        .encode_to_vec(),
        ("Txn", "Atomic") => AtomicRequest {
            success: vec![put()],
            ..Default::default()
        }
        .encode_to_vec(),
        ("Auth", "Authenticate") => AuthenticateRequest {
            user: "root".into(),
            password: ROOT_PASSWORD.into(),
        }
        .encode_to_vec(),
        ("RaftTransport", "Hello") => PeerHeader {
            cluster_id: "e2e".into(),
            to_node_id: 1,
            ..Default::default()
        }
        .encode_to_vec(),
        ("Kv", "Get") => GetRequest {
            key: key.clone(),
            ..Default::default()
        }
        .encode_to_vec(),
        ("Kv", "Put") => PutRequest {
            key: key.clone(),
            value: b"v".to_vec(),
            ..Default::default()
        }
        .encode_to_vec(),
        _ => Vec::new(),
    }
}

/// Every method of every zdb service, with whether it streams requests.
fn every_rpc() -> Vec<(String, String, bool)> {
    let set = prost_types::FileDescriptorSet::decode(zdb_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptors");
    let mut rpcs = Vec::new();
    for file in set.file {
        if file.package() != "zdb.v1" {
            continue;
        }
        for service in file.service {
            let name = service.name().to_owned();
            for method in service.method {
                rpcs.push((
                    name.clone(),
                    method.name().to_owned(),
                    method.client_streaming(),
                ));
            }
        }
    }
    rpcs
}

/// The connection failed (a TLS refusal): no node answered the call.
fn refused_by_transport(status: &Status) -> bool {
    std::error::Error::source(status).is_some()
}

fn denied(result: &Result<(), Status>) -> bool {
    matches!(result, Err(status) if matches!(status.code(), Code::Unauthenticated | Code::PermissionDenied))
}

async fn root_token(address: &str, certs: &std::path::Path) -> String {
    let channel = channel_as(address, certs, None);
    eventually("a root login", Duration::from_secs(30), || {
        let channel = channel.clone();
        async move {
            AuthClient::new(channel)
                .authenticate(AuthenticateRequest {
                    user: "root".into(),
                    password: ROOT_PASSWORD.into(),
                })
                .await
                .ok()
                .map(|reply| reply.into_inner().token)
        }
    })
    .await
}

/// A user logging in with `login`'s password, holding a new role with
/// `access` on the keys in `span`.
async fn add_user_with_role(
    auth: &mut AuthClient<Channel>,
    login: (&str, &str),
    role: &str,
    access: Access,
    span: (&[u8], &[u8]),
) {
    let (user, password) = login;
    auth.user_add(UserAddRequest {
        name: user.into(),
        password: password.into(),
    })
    .await
    .expect("user add");
    auth.role_add(RoleAddRequest { name: role.into() })
        .await
        .expect("role add");
    auth.role_grant_permission(RoleGrantPermissionRequest {
        role: role.into(),
        permission: Some(Permission {
            access: access as i32,
            start: span.0.to_vec(),
            end: span.1.to_vec(),
        }),
    })
    .await
    .expect("grant");
    auth.user_grant_role(UserRoleRequest {
        user: user.into(),
        role: role.into(),
    })
    .await
    .expect("grant role");
}

fn as_user(cluster: &Cluster, user: &str, password: &str) -> Client {
    let mut config = cluster.client_config(cluster.nodes.iter().map(|node| node.address.clone()));
    config.tls = Some(cluster.secure().tls_as(None));
    config.credentials = Some(Credentials {
        user: user.into(),
        password: password.into(),
    });
    config.timeout = Duration::from_secs(5);
    Client::new(config).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_is_refused_without_credentials_or_permission_and_allowed_with_it() {
    let cluster = Cluster::start_secure(3, &[]);
    let root = cluster.client();
    eventually(
        "the secure cluster to take writes",
        Duration::from_secs(30),
        || {
            let root = root.clone();
            async move { root.put(b"p/1", b"one").await.ok() }
        },
    )
    .await;
    let address = cluster.node(1).address.clone();
    let certs = cluster.secure().certs.clone();
    let token = root_token(&address, &certs).await;

    // A reader of "p/" only, logging in with a password.
    let mut auth = AuthClient::new(channel_as(&address, &certs, Some("root")));
    add_user_with_role(
        &mut auth,
        ("reader", "reader-secret"),
        "p-reader",
        Access::Read,
        (b"p/", b"p0"),
    )
    .await;
    let reader_token = AuthClient::new(channel_as(&address, &certs, None))
        .authenticate(AuthenticateRequest {
            user: "reader".into(),
            password: "reader-secret".into(),
        })
        .await
        .expect("reader login")
        .into_inner()
        .token;

    let anonymous = channel_as(&address, &certs, None);
    let node = channel_as(&address, &certs, Some("node"));
    let rpcs = every_rpc();
    assert!(rpcs.len() > 40, "found only {} RPCs", rpcs.len());
    let mut failures = Vec::new();
    for (service, method, streaming) in &rpcs {
        let Some(needs) = expected(service, method) else {
            failures.push(format!(
                "{service}/{method}: not in the test's table; add it with the permission it needs"
            ));
            continue;
        };
        let path = format!("/zdb.v1.{service}/{method}");
        let body = body_for(service, method);
        let without = call(anonymous.clone(), &path, *streaming, body.clone(), None).await;
        let as_reader = call(
            anonymous.clone(),
            &path,
            *streaming,
            body.clone(),
            Some(&reader_token),
        )
        .await;
        // Turning authentication off is tried at the end.
        let disables = path == "/zdb.v1.Auth/AuthDisable";
        let as_root = match disables {
            true => Ok(()),
            false => {
                call(
                    anonymous.clone(),
                    &path,
                    *streaming,
                    body.clone(),
                    Some(&token),
                )
                .await
            }
        };
        let as_node = match disables {
            true => Ok(()),
            false => call(node.clone(), &path, *streaming, body.clone(), None).await,
        };
        let (want_without, want_reader, want_root) = match needs {
            Needs::Anyone => (false, false, false),
            Needs::Authenticated => (true, false, false),
            Needs::Key | Needs::Admin => (true, true, false),
            Needs::Node => (true, true, true),
        };
        for (who, result, want_denied) in [
            ("no credentials", &without, want_without),
            ("reader", &as_reader, want_reader),
            ("root", &as_root, want_root),
            ("a node", &as_node, false),
        ] {
            if denied(result) != want_denied {
                failures.push(format!(
                    "{path} as {who}: expected {}, got {result:?}",
                    if want_denied {
                        "a refusal"
                    } else {
                        "no refusal"
                    }
                ));
            }
        }
        if let Err(status) = &as_reader {
            if status.code() == Code::PermissionDenied {
                let kind = zdb_proto::decode_error_details(status.details()).and_then(|e| e.kind);
                if !matches!(kind, Some(error::Kind::PermissionDenied(_))) {
                    failures.push(format!(
                        "{path}: PERMISSION_DENIED without the typed detail"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The reader reads its prefix, nothing else, and writes nothing.
    let reader = as_user(&cluster, "reader", "reader-secret");
    assert_eq!(
        reader.get(b"p/1").await.expect("read p/1"),
        Some(b"one".to_vec())
    );
    let refused = reader
        .put(b"p/1", b"two")
        .await
        .expect_err("a reader cannot write");
    assert!(
        matches!(&refused, zdb_client::Error::PermissionDenied { permission, .. } if permission.contains("write")),
        "{refused:?}"
    );
    assert!(matches!(
        reader.get(b"q").await,
        Err(zdb_client::Error::PermissionDenied { .. })
    ));
    assert_eq!(
        root.get(b"p/1").await.unwrap(),
        Some(b"one".to_vec()),
        "the refused write changed nothing"
    );
    let wrong = as_user(&cluster, "reader", "wrong");
    assert!(matches!(
        wrong.get(b"p/1").await,
        Err(zdb_client::Error::Unauthenticated(_))
    ));

    // Every refusal is in the audit log, with who and what.
    let audit =
        std::fs::read_to_string(cluster.node(1).data_dir.join("audit.log")).expect("audit log");
    assert!(
        audit
            .lines()
            .any(|line| line.contains("\"user\":\"reader\"") && line.contains("\"allowed\":false")),
        "{audit}"
    );
    assert!(audit
        .lines()
        .any(|line| line.contains("UserAddRequest") && line.contains("\"allowed\":true")));

    // Authentication off: the cluster serves anyone (over TLS) again.
    auth.auth_disable(AuthDisableRequest {})
        .await
        .expect("auth disable");
    let anonymous_get = GetRequest {
        key: b"p/1".to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    eventually(
        "calls without credentials once auth is off",
        Duration::from_secs(10),
        || {
            let (channel, body) = (anonymous.clone(), anonymous_get.clone());
            async move {
                call(channel, "/zdb.v1.Kv/Get", false, body, None)
                    .await
                    .ok()
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_wrong_ca_and_expired_certificates_are_refused() {
    let cluster = Cluster::start_secure(3, &[]);
    let root = cluster.client();
    eventually(
        "the secure cluster to take writes",
        Duration::from_secs(30),
        || {
            let root = root.clone();
            async move { root.put(b"k", b"v").await.ok() }
        },
    )
    .await;
    let address = cluster.node(1).address.clone();
    let certs = cluster.secure().certs.clone();
    let get = GetRequest {
        key: b"k".to_vec(),
        ..Default::default()
    }
    .encode_to_vec();

    let plaintext = call(
        plain_channel(&address),
        "/zdb.v1.Kv/Get",
        false,
        get.clone(),
        None,
    )
    .await;
    assert!(plaintext.is_err(), "a plaintext client must not be served");

    let other = CertificateAuthority::generate("another CA", DAY).unwrap();
    let wrong_ca = call(
        tls_channel(
            &address,
            ClientTlsSource::Pem {
                ca: other.cert_pem(),
                cert_and_key: None,
            },
        ),
        "/zdb.v1.Kv/Get",
        false,
        get.clone(),
        None,
    )
    .await;
    assert!(
        matches!(&wrong_ca, Err(status) if refused_by_transport(status)),
        "the node's certificate is not from that CA: {wrong_ca:?}"
    );

    let ca = zdb_security::pki::load_ca(&certs).unwrap();
    let expired = ca.issue_expired_node(&[]).unwrap();
    let with_expired = call(
        tls_channel(
            &address,
            ClientTlsSource::Pem {
                ca: ca.cert_pem(),
                cert_and_key: Some((expired.cert_pem, expired.key_pem)),
            },
        ),
        "/zdb.v1.RaftTransport/Hello",
        false,
        PeerHeader::default().encode_to_vec(),
        None,
    )
    .await;
    assert!(
        matches!(&with_expired, Err(status) if refused_by_transport(status)),
        "an expired certificate fails the handshake: {with_expired:?}"
    );

    // A node certificate from another CA: refused at the handshake, so it
    // can neither send Raft messages nor join.
    let impostor = other.issue_node(&[], DAY).unwrap();
    let impostor_channel = tls_channel(
        &address,
        ClientTlsSource::Pem {
            ca: ca.cert_pem(),
            cert_and_key: Some((impostor.cert_pem, impostor.key_pem)),
        },
    );
    for (path, streaming) in [
        ("/zdb.v1.RaftTransport/Stream", true),
        ("/zdb.v1.RaftTransport/Snapshot", true),
        ("/zdb.v1.Admin/Join", false),
    ] {
        let result = call(impostor_channel.clone(), path, streaming, Vec::new(), None).await;
        assert!(
            matches!(&result, Err(status) if refused_by_transport(status)),
            "{path} with another CA's node certificate: {result:?}"
        );
    }
    // A client certificate from the right CA is not a node's.
    let client_cert = channel_as(&address, &certs, Some("root"));
    let as_user = call(
        client_cert,
        "/zdb.v1.RaftTransport/Stream",
        true,
        Vec::new(),
        None,
    )
    .await;
    assert_eq!(as_user.unwrap_err().code(), Code::PermissionDenied);
    // The refused handshakes are in the audit log.
    let audit = std::fs::read_to_string(cluster.node(1).data_dir.join("audit.log")).unwrap();
    assert!(
        audit
            .lines()
            .any(|line| line.contains("TlsHandshake") && line.to_lowercase().contains("expired")),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_survive_restarts_and_a_changed_password_revokes_tokens() {
    let mut cluster = Cluster::start_secure(3, &[]);
    let root = cluster.client();
    eventually(
        "the secure cluster to take writes",
        Duration::from_secs(30),
        || {
            let root = root.clone();
            async move { root.put(b"a/1", b"v").await.ok() }
        },
    )
    .await;
    let address = cluster.node(2).address.clone();
    let certs = cluster.secure().certs.clone();
    let mut admin = AuthClient::new(channel_as(&address, &certs, Some("root")));
    add_user_with_role(
        &mut admin,
        ("alice", "first"),
        "a-rw",
        Access::ReadWrite,
        (b"a/", b"a0"),
    )
    .await;
    let alice = as_user(&cluster, "alice", "first");
    alice
        .put(b"a/2", b"alice")
        .await
        .expect("alice writes her prefix");

    for id in 1..=3 {
        cluster.kill(id);
    }
    for id in 1..=3 {
        cluster.restart(id);
    }
    let alice = as_user(&cluster, "alice", "first");
    let value = eventually(
        "alice to log in after the restart",
        Duration::from_secs(30),
        || {
            let alice = alice.clone();
            async move { alice.get(b"a/2").await.ok() }
        },
    )
    .await;
    assert_eq!(value, Some(b"alice".to_vec()));

    // A new password: the old one no longer logs in.
    let admin_now = AuthClient::new(channel_as(&cluster.node(1).address, &certs, Some("root")));
    eventually("the password change", Duration::from_secs(20), || {
        let mut admin_now = admin_now.clone();
        async move {
            admin_now
                .user_change_password(UserChangePasswordRequest {
                    name: "alice".into(),
                    password: "second".into(),
                })
                .await
                .ok()
        }
    })
    .await;
    let stale = as_user(&cluster, "alice", "first");
    let refused = stale.get(b"a/2").await;
    assert!(
        matches!(refused, Err(zdb_client::Error::Unauthenticated(_))),
        "{refused:?}"
    );
    let fresh = as_user(&cluster, "alice", "second");
    assert_eq!(fresh.get(b"a/2").await.unwrap(), Some(b"alice".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_without_a_restart() {
    let cluster = Cluster::start_secure(3, &[]);
    let root = cluster.client();
    eventually(
        "the secure cluster to take writes",
        Duration::from_secs(30),
        || {
            let root = root.clone();
            async move { root.put(b"k", b"before").await.ok() }
        },
    )
    .await;
    let certs = cluster.secure().certs.clone();
    let old_ca = std::fs::read_to_string(certs.join("ca.crt")).unwrap();
    let new_ca = CertificateAuthority::generate("the next CA", DAY).unwrap();
    let new_root = new_ca.issue_client("root", DAY).unwrap();
    let client_of_new_ca = || {
        let mut config =
            cluster.client_config(cluster.nodes.iter().map(|node| node.address.clone()));
        config.tls = Some(TlsConfig::Pem {
            ca: new_ca.cert_pem(),
            cert_and_key: Some((new_root.cert_pem.clone(), new_root.key_pem.clone())),
        });
        config.timeout = Duration::from_secs(2);
        Client::new(config).unwrap()
    };
    assert!(
        client_of_new_ca().get(b"k").await.is_err(),
        "the nodes still serve the old CA's certificates"
    );

    // Trust both CAs, then serve certificates of the new one: no restart.
    let new_node = new_ca.issue_node(&[], DAY).unwrap();
    std::fs::write(
        certs.join("ca.crt.tmp"),
        format!("{old_ca}{}", new_ca.cert_pem()),
    )
    .unwrap();
    std::fs::rename(certs.join("ca.crt.tmp"), certs.join("ca.crt")).unwrap();
    std::fs::write(certs.join("node.key.tmp"), &new_node.key_pem).unwrap();
    std::fs::write(certs.join("node.crt.tmp"), &new_node.cert_pem).unwrap();
    std::fs::rename(certs.join("node.key.tmp"), certs.join("node.key")).unwrap();
    std::fs::rename(certs.join("node.crt.tmp"), certs.join("node.crt")).unwrap();

    let value = eventually(
        "the nodes to serve the new certificates",
        Duration::from_secs(30),
        || {
            let client = client_of_new_ca();
            async move { client.get(b"k").await.ok() }
        },
    )
    .await;
    assert_eq!(value, Some(b"before".to_vec()));
    // The nodes still replicate to each other (new connections use the new
    // certificates, trusted by both CAs' bundle).
    eventually(
        "a write after the rotation",
        Duration::from_secs(30),
        || {
            let client = client_of_new_ca();
            async move { client.put(b"k", b"after").await.ok() }
        },
    )
    .await;
    assert_eq!(
        cluster.client().get(b"k").await.unwrap(),
        Some(b"after".to_vec())
    );
}
