//! How the client reaches a node: a gRPC channel, over TLS when configured
//! (the cluster CA to trust, optionally a client certificate naming the
//! user), and with a password login, the token of `Auth.Authenticate` on
//! every call. The token is renewed before it runs out, and dropped when a
//! node says it no longer holds (a changed password, a revoked role), so
//! the next attempt logs in again.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tower_service::Service;
use zdb_proto::v1::auth_client::AuthClient;
use zdb_proto::v1::AuthenticateRequest;
use zdb_security::tls::{ClientTls, Connector};

pub use zdb_security::tls::ClientTlsSource as TlsConfig;

use crate::error::{Error, Result};

/// A user name and password to log in with.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Renew a token this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(30);

/// A password login shared by every connection of a client.
pub(crate) struct Login {
    credentials: Credentials,
    token: Mutex<Option<(String, Instant)>>,
}

impl Login {
    pub(crate) fn new(credentials: Credentials) -> Self {
        Login {
            credentials,
            token: Mutex::new(None),
        }
    }

    fn cached(&self) -> Option<String> {
        let token = self.token.lock().expect("token lock is never poisoned");
        token
            .as_ref()
            .filter(|(_, renew_at)| Instant::now() < *renew_at)
            .map(|(token, _)| token.clone())
    }

    fn forget(&self) {
        *self.token.lock().expect("token lock is never poisoned") = None;
    }

    async fn token(&self, channel: Channel) -> std::result::Result<String, tonic::Status> {
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        let reply = AuthClient::new(channel)
            .authenticate(AuthenticateRequest {
                user: self.credentials.user.clone(),
                password: self.credentials.password.clone(),
            })
            .await?
            .into_inner();
        let valid = Duration::from_secs(reply.ttl_seconds);
        let renew_at = Instant::now() + valid.saturating_sub(RENEW_BEFORE.min(valid / 2));
        *self.token.lock().expect("token lock is never poisoned") =
            Some((reply.token.clone(), renew_at));
        Ok(reply.token)
    }
}

/// A channel to one node, with the login's token on every call.
#[derive(Clone)]
pub struct Transport {
    channel: Channel,
    login: Option<Arc<Login>>,
}

/// A gRPC status `UNAUTHENTICATED` in a trailers-only answer.
fn unauthenticated(response: &http::Response<Body>) -> bool {
    response
        .headers()
        .get("grpc-status")
        .is_some_and(|code| code.as_bytes() == b"16")
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Service<http::Request<Body>> for Transport {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), BoxError>> {
        self.channel.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The channel that was made ready serves this call; the clone left
        // behind is made ready for the next.
        let fresh = self.channel.clone();
        let mut ready = std::mem::replace(&mut self.channel, fresh);
        let login = self.login.clone();
        let for_login = self.channel.clone();
        Box::pin(async move {
            let Some(login) = login else {
                return ready.call(request).await.map_err(Into::into);
            };
            // A failed login is the call's answer (its status, boxed, is
            // what tonic reports).
            let boxed = |status: tonic::Status| -> BoxError { Box::new(status) };
            let token = login.token(for_login).await.map_err(boxed)?;
            let value = http::HeaderValue::try_from(format!("Bearer {token}"))
                .map_err(|err| boxed(tonic::Status::internal(err.to_string())))?;
            request.headers_mut().insert("authorization", value);
            let response = ready.call(request).await?;
            if unauthenticated(&response) {
                login.forget();
            }
            Ok(response)
        })
    }
}

/// Makes [`Transport`]s to nodes.
pub(crate) struct Dialer {
    tls: Option<Arc<ClientTls>>,
    login: Option<Arc<Login>>,
    connect_timeout: Duration,
}

impl Dialer {
    pub(crate) fn new(
        tls: Option<&TlsConfig>,
        credentials: Option<Credentials>,
        connect_timeout: Duration,
    ) -> Result<Self> {
        let tls = match tls {
            Some(source) => Some(Arc::new(
                ClientTls::load(source).map_err(|err| Error::Tls(err.to_string()))?,
            )),
            None => None,
        };
        Ok(Dialer {
            tls,
            login: credentials.map(|credentials| Arc::new(Login::new(credentials))),
            connect_timeout,
        })
    }

    pub(crate) fn dial(&self, endpoint: &str) -> Result<Transport> {
        let bad = |reason: String| Error::BadEndpoint {
            endpoint: endpoint.to_owned(),
            reason,
        };
        let settings = Endpoint::from_shared(format!("http://{endpoint}"))
            .map_err(|err| bad(err.to_string()))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let channel = match &self.tls {
            Some(tls) => settings
                .connect_with_connector_lazy(Connector::new(tls.clone(), self.connect_timeout)),
            None => settings.connect_lazy(),
        };
        Ok(Transport {
            channel,
            login: self.login.clone(),
        })
    }
}
