use std::time::Duration;

use anyhow::{Context, Result};
use zdb_client::{Client, ClientConfig};

use super::CasResult;

/// zdb through its own client: range routing, leader cache, retries.
#[derive(Clone)]
pub struct ZdbBackend {
    client: Client,
}

impl ZdbBackend {
    pub fn connect(endpoints: &[String], timeout: Duration) -> Result<Self> {
        let mut config = ClientConfig::new(endpoints.to_vec());
        config.timeout = timeout;
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
}
