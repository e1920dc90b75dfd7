//! The lake in memory, with S3's semantics for what the lake does (conditional puts).

use crate::*;
use std::collections::BTreeMap;

/// A [`LakeStore`] in memory, for tests: ETags change on every write.
#[derive(Debug, Default)]
pub struct MemoryLake {
    objects: std::sync::Mutex<BTreeMap<String, (Vec<u8>, u64)>>,
    writes: std::sync::atomic::AtomicU64,
}

impl MemoryLake {
    pub fn keys(&self) -> Vec<String> {
        self.objects.lock().unwrap().keys().cloned().collect()
    }
}

impl LakeStore for MemoryLake {
    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, LakeError> {
        Ok(self
            .objects
            .lock()
            .unwrap()
            .get(key)
            .map(|(body, tag)| (body.clone(), tag.to_string())))
    }

    async fn put(&self, key: &str, body: Vec<u8>, condition: PutIf) -> Result<(), LakeError> {
        let mut objects = self.objects.lock().unwrap();
        let current = objects.get(key).map(|(_, tag)| tag.to_string());
        let ok = match (&condition, &current) {
            (PutIf::Always, _) => true,
            (PutIf::Absent, None) => true,
            (PutIf::Unchanged(want), Some(have)) => want == have,
            _ => false,
        };
        if !ok {
            return Err(LakeError::Conflict(key.to_string()));
        }
        let tag = self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        objects.insert(key.to_string(), (body, tag));
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<LakeObject>, LakeError> {
        Ok(self
            .objects
            .lock()
            .unwrap()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (body, _))| LakeObject {
                key: k.clone(),
                size: body.len() as i64,
            })
            .collect())
    }

    async fn delete(&self, keys: &[String]) -> Result<(), LakeError> {
        let mut objects = self.objects.lock().unwrap();
        for k in keys {
            objects.remove(k);
        }
        Ok(())
    }
}
