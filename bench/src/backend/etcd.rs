use std::time::Duration;

use anyhow::{Context, Result};
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, KvClient,
    TlsOptions, Txn, TxnOp, TxnOpResponse,
};

use super::{CasResult, Security};

/// etcd v3 through `etcd-client`: one channel balanced over the endpoints;
/// followers forward writes to the leader. Reads are etcd's default,
/// linearizable (a ReadIndex round), like zdb's. With TLS, the endpoints
/// are https; under etcd's `--client-cert-auth` a client certificate's
/// common name is the user.
#[derive(Clone)]
pub struct EtcdBackend {
    kv: KvClient,
}

impl EtcdBackend {
    pub async fn connect(
        endpoints: &[String],
        timeout: Duration,
        security: &Security,
    ) -> Result<Self> {
        let mut options = ConnectOptions::new()
            .with_timeout(timeout)
            .with_connect_timeout(timeout);
        let mut endpoints = endpoints.to_vec();
        if let Some(ca) = &security.ca_cert {
            let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(read(ca)?));
            if let Some((cert, key)) = &security.cert_and_key {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            options = options.with_tls(tls);
            for endpoint in &mut endpoints {
                if !endpoint.contains("://") {
                    *endpoint = format!("https://{endpoint}");
                }
            }
        }
        if let Some((user, password)) = &security.credentials {
            options = options.with_user(user, password);
        }
        let client = Client::connect(&endpoints, Some(options))
            .await
            .with_context(|| format!("cannot reach etcd at {}", endpoints.join(",")))?;
        Ok(EtcdBackend {
            kv: client.kv_client(),
        })
    }

    pub async fn get(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>> {
        let response = self.kv.clone().get(key, None).await?;
        Ok(response.kvs().first().map(|kv| kv.value().to_vec()))
    }

    pub async fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.kv.clone().put(key, value, None).await?;
        Ok(())
    }

    pub async fn scan(&self, start: Vec<u8>, end: Vec<u8>, count: usize) -> Result<usize> {
        let options = GetOptions::new().with_range(end).with_limit(count as i64);
        let response = self.kv.clone().get(start, Some(options)).await?;
        Ok(response.kvs().len())
    }

    pub async fn compare_and_swap(
        &self,
        key: Vec<u8>,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> Result<CasResult> {
        let condition = match expected {
            Some(value) => Compare::value(key.clone(), CompareOp::Equal, value),
            // A key that does not exist has version 0.
            None => Compare::version(key.clone(), CompareOp::Equal, 0),
        };
        let txn = Txn::new()
            .when([condition])
            .and_then([TxnOp::put(key.clone(), new, None)])
            .or_else([TxnOp::get(key, None)]);
        let response = self.kv.clone().txn(txn).await?;
        if response.succeeded() {
            return Ok(CasResult {
                succeeded: true,
                current: None,
            });
        }
        let current = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => Some(get.kvs().first().map(|kv| kv.value().to_vec())),
            _ => None,
        });
        Ok(CasResult {
            succeeded: false,
            current: current.flatten(),
        })
    }

    pub async fn read_modify_write(&self, keys: Vec<Vec<u8>>, value: &[u8]) -> Result<()> {
        loop {
            let mut compares = Vec::with_capacity(keys.len());
            let mut puts = Vec::with_capacity(keys.len());
            for key in &keys {
                let response = self.kv.clone().get(key.clone(), None).await?;
                let current = response.kvs().first();
                let revision = current.map_or(0, |kv| kv.mod_revision());
                let changed = crate::workload::modified(current.map_or(value, |kv| kv.value()));
                compares.push(Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    revision,
                ));
                puts.push(TxnOp::put(key.clone(), changed, None));
            }
            let txn = Txn::new().when(compares).and_then(puts);
            if self.kv.clone().txn(txn).await?.succeeded() {
                return Ok(());
            }
        }
    }

    pub async fn batch_put(&self, keys: Vec<Vec<u8>>, value: Vec<u8>) -> Result<()> {
        let puts: Vec<TxnOp> = keys
            .into_iter()
            .map(|key| TxnOp::put(key, value.clone(), None))
            .collect();
        self.kv.clone().txn(Txn::new().and_then(puts)).await?;
        Ok(())
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}
