use std::time::Duration;

use anyhow::{Context, Result};
use zdb_client::{Client, ClientConfig, Credentials, Isolation, Mutation, TlsConfig};

use super::{CasResult, Security};

/// zdb through its own client: range routing, leader cache, retries.
#[derive(Clone)]
pub struct ZdbBackend {
    client: Client,
}

impl ZdbBackend {
    pub fn connect(endpoints: &[String], timeout: Duration, security: &Security) -> Result<Self> {
        let mut config = ClientConfig::new(endpoints.to_vec());
        config.timeout = timeout;
        config.tls = security.ca_cert.as_ref().map(|ca| TlsConfig::Files {
            ca: ca.clone(),
            cert_and_key: security.cert_and_key.clone(),
        });
        config.credentials = security
            .credentials
            .as_ref()
            .map(|(user, password)| Credentials {
                user: user.clone(),
                password: password.clone(),
            });
        let client = Client::new(config).context("bad zdb endpoints")?;
        Ok(ZdbBackend { client })
    }

    pub async fn get(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>> {
        Ok(self.client.get(key).await?)
    }

    pub async fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        Ok(self.client.put(key, value).await?)
    }

    pub async fn scan(&self, start: Vec<u8>, end: Vec<u8>, count: usize) -> Result<usize> {
        Ok(self.client.scan(start, end, count, false).await?.len())
    }

    pub async fn compare_and_swap(
        &self,
        key: Vec<u8>,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> Result<CasResult> {
        let outcome = self
            .client
            .compare_and_swap(key, expected.as_deref(), new)
            .await?;
        Ok(CasResult {
            succeeded: outcome.succeeded,
            current: outcome.previous,
        })
    }

    pub async fn read_modify_write(&self, keys: Vec<Vec<u8>>, value: &[u8]) -> Result<()> {
        let value = value.to_vec();
        self.client
            .transaction(Isolation::Serializable, |txn| {
                let keys = keys.clone();
                let value = value.clone();
                Box::pin(async move {
                    let current: std::collections::HashMap<Vec<u8>, Vec<u8>> = txn
                        .batch_get(keys.clone())
                        .await?
                        .into_iter()
                        .map(|kv| (kv.key, kv.value))
                        .collect();
                    for key in keys {
                        let old = current.get(&key).map_or(value.as_slice(), Vec::as_slice);
                        txn.put(key, crate::workload::modified(old)).await?;
                    }
                    Ok(())
                })
            })
            .await?;
        Ok(())
    }

    pub async fn batch_put(&self, keys: Vec<Vec<u8>>, value: Vec<u8>) -> Result<()> {
        let mutations = keys
            .into_iter()
            .map(|key| Mutation::Put {
                key,
                value: value.clone(),
                ttl_seconds: 0,
            })
            .collect();
        Ok(self.client.batch_write(mutations).await?)
    }
}
