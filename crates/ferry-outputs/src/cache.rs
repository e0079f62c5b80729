use std::collections::HashMap;

use ferry_stacks::{Engine, Ownership, StackError};
use tokio::sync::Mutex;

use crate::Outputs;

/// Stack outputs, read at most once per stack for the life of the cache (one run). Outputs a
/// deploy of this run produced are stored with [`OutputCache::set`] and never read again.
#[derive(Debug)]
pub struct OutputCache {
    engine: Engine,
    known: Mutex<HashMap<String, Option<Outputs>>>,
    calls: std::sync::atomic::AtomicUsize,
}

impl OutputCache {
    pub fn new(engine: Engine) -> Self {
        OutputCache {
            engine,
            known: Mutex::new(HashMap::new()),
            calls: Default::default(),
        }
    }

    /// The outputs of `stack`; `None` when it does not exist. With an `owner`, a stack whose
    /// Ferry tags name another owner is an error (its outputs are not this stage's).
    pub async fn get(
        &self,
        stack: &str,
        owner: Option<&Ownership>,
    ) -> Result<Option<Outputs>, StackError> {
        if let Some(o) = self.known.lock().await.get(stack) {
            return Ok(o.clone());
        }
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let outputs = self.engine.outputs(stack, owner).await?;
        self.known
            .lock()
            .await
            .insert(stack.to_string(), outputs.clone());
        Ok(outputs)
    }

    /// Records the outputs a deploy of this run produced.
    pub async fn set(&self, stack: &str, outputs: Outputs) {
        self.known
            .lock()
            .await
            .insert(stack.to_string(), Some(outputs));
    }

    /// What is known without calling AWS.
    pub async fn known(&self, stack: &str) -> Option<Option<Outputs>> {
        self.known.lock().await.get(stack).cloned()
    }

    /// DescribeStacks calls made so far.
    pub fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }
}
