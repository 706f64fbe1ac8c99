//! How zdbctl reaches a secure cluster: the flags (and environment
//! variables) naming the cluster CA, a client certificate, or a user and
//! password, turned into the client's configuration.
//!
//! The rules are checked here, before anything is sent, so that a mistake
//! is named rather than seen as a refused call: a client certificate or a
//! password needs TLS (`--ca-cert`), and a password never crosses the
//! network in the clear.
//!
//! `--user` and `--password` go before the command: `user add` and `user
//! passwd` take a `--password` of their own (the password they set), and
//! clap would mix the two up if the login one could follow the command.
//! For the same reason the TLS flags, which may follow it, have ids of
//! their own (`put KEY` has an argument called `key`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use zdb_client::{ClientConfig, Credentials, TlsConfig};

use crate::prompt;

#[derive(Args)]
pub struct SecurityArgs {
    /// The cluster CA's certificate (ca.crt): connect over TLS, trusting it.
    #[arg(
        id = "tls_ca_cert",
        long = "ca-cert",
        env = "ZDB_CA_CERT",
        global = true,
        value_name = "FILE"
    )]
    pub ca_cert: Option<PathBuf>,
    /// A client certificate (client.USER.crt) to log in with; needs --key.
    #[arg(
        id = "tls_cert",
        long = "cert",
        env = "ZDB_CERT",
        global = true,
        value_name = "FILE"
    )]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (client.USER.key).
    #[arg(
        id = "tls_key",
        long = "key",
        env = "ZDB_KEY",
        global = true,
        value_name = "FILE"
    )]
    pub key: Option<PathBuf>,
    /// Log in as USER with a password (give it before the command).
    #[arg(long, env = "ZDB_USER", value_name = "USER")]
    pub user: Option<String>,
    /// USER's password (give it before the command); asked for on the
    /// terminal when missing.
    #[arg(long, env = "ZDB_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

impl SecurityArgs {
    /// The client configuration for `endpoints`, with TLS and a login as
    /// the flags ask.
    pub fn client_config(&self, endpoints: &[String], timeout: Duration) -> Result<ClientConfig> {
        let mut config = ClientConfig::new(
            endpoints
                .iter()
                .map(|e| e.trim().to_owned())
                .filter(|e| !e.is_empty()),
        );
        config.timeout = timeout;
        config.tls = self.tls()?;
        config.credentials = self.credentials()?;
        Ok(config)
    }

    fn tls(&self) -> Result<Option<TlsConfig>> {
        let cert_and_key = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            (Some(_), None) => {
                bail!("--cert needs --key (ZDB_KEY): the client certificate's private key, client.USER.key")
            }
            (None, Some(_)) => {
                bail!("--key needs --cert (ZDB_CERT): the client certificate, client.USER.crt")
            }
        };
        match (&self.ca_cert, cert_and_key) {
            (Some(ca), cert_and_key) => Ok(Some(TlsConfig::Files {
                ca: ca.clone(),
                cert_and_key,
            })),
            (None, None) => Ok(None),
            (None, Some(_)) => bail!(
                "--cert and --key need --ca-cert (ZDB_CA_CERT): client certificates are only used over TLS; give the cluster CA's certificate, ca.crt"
            ),
        }
    }

    fn credentials(&self) -> Result<Option<Credentials>> {
        let Some(user) = &self.user else {
            if self.password.is_some() {
                bail!("--password (ZDB_PASSWORD) needs --user (ZDB_USER): whose password is it?");
            }
            return Ok(None);
        };
        if self.cert.is_some() {
            bail!(
                "both a client certificate (--cert, ZDB_CERT) and --user {user:?} say who you are, and the certificate would win: give one (unset ZDB_CERT and ZDB_KEY to log in as {user})"
            );
        }
        if self.ca_cert.is_none() {
            bail!(
                "--user needs --ca-cert (ZDB_CA_CERT): passwords are only sent over TLS; give the cluster CA's certificate, ca.crt"
            );
        }
        let password = match &self.password {
            Some(password) => password.clone(),
            None => match prompt::password(&format!("password for {user}: "))? {
                Some(password) => password,
                None => bail!(
                    "no password for user {user:?}: pass --password or set ZDB_PASSWORD (or run zdbctl on a terminal to be asked)"
                ),
            },
        };
        Ok(Some(Credentials {
            user: user.clone(),
            password,
        }))
    }

    /// `err`, with what to try next when it looks like a security
    /// mismatch: a node that does not speak plaintext gRPC (it serves TLS
    /// only), or a call refused for naming no one.
    pub fn explain(&self, err: anyhow::Error) -> anyhow::Error {
        use zdb_client::Error;
        let plaintext_refused = match err.downcast_ref::<Error>() {
            Some(Error::Timeout { .. }) => true,
            Some(Error::Rpc(status)) => matches!(
                status.code(),
                tonic::Code::Internal | tonic::Code::Unavailable | tonic::Code::Unknown
            ),
            _ => false,
        };
        let anonymous = matches!(err.downcast_ref::<Error>(), Some(Error::Unauthenticated(_)))
            && self.cert.is_none()
            && self.user.is_none();
        if plaintext_refused && self.ca_cert.is_none() {
            return err.context(
                "no node answered plaintext gRPC: if the cluster uses TLS (as `local up --secure` does), pass --ca-cert (ZDB_CA_CERT) with the cluster CA's certificate, ca.crt",
            );
        }
        if anonymous {
            return err.context(
                "the cluster wants to know who you are: log in with --cert and --key (ZDB_CERT, ZDB_KEY: client.USER.crt and .key), or --user and --password (ZDB_USER, ZDB_PASSWORD)",
            );
        }
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(ca: bool, cert: bool, key: bool, user: bool, password: bool) -> SecurityArgs {
        SecurityArgs {
            ca_cert: ca.then(|| "ca.crt".into()),
            cert: cert.then(|| "client.alice.crt".into()),
            key: key.then(|| "client.alice.key".into()),
            user: user.then(|| "alice".into()),
            password: password.then(|| "pw".into()),
        }
    }

    fn config(args: &SecurityArgs) -> Result<ClientConfig> {
        args.client_config(&["127.0.0.1:1".into()], Duration::from_secs(1))
    }

    #[test]
    fn certificates_and_passwords_need_the_ca() {
        let plain = config(&args(false, false, false, false, false)).unwrap();
        assert!(plain.tls.is_none() && plain.credentials.is_none());

        let cert = config(&args(true, true, true, false, false)).unwrap();
        assert_eq!(
            cert.tls,
            Some(TlsConfig::Files {
                ca: "ca.crt".into(),
                cert_and_key: Some(("client.alice.crt".into(), "client.alice.key".into())),
            })
        );
        let login = config(&args(true, false, false, true, true)).unwrap();
        let credentials = login.credentials.unwrap();
        assert_eq!(
            (credentials.user.as_str(), credentials.password.as_str()),
            ("alice", "pw")
        );

        for (bad, says) in [
            (args(false, true, true, false, false), "need --ca-cert"),
            (args(true, true, false, false, false), "--cert needs --key"),
            (args(true, false, true, false, false), "--key needs --cert"),
            (
                args(false, false, false, true, true),
                "passwords are only sent over TLS",
            ),
            (args(true, false, false, false, true), "needs --user"),
            (args(true, true, true, true, true), "give one"),
        ] {
            let err = config(&bad).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }
}
