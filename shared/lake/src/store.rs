//! The S3 adapter of [`LakeStore`]: the lake bucket, with conditional writes for the
//! curated objects (`If-Match` / `If-None-Match`).

use crate::{LakeError, LakeObject, LakeStore, PutIf};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

#[derive(Debug, Clone)]
pub struct S3Lake {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Lake {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        S3Lake {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn from_config(aws: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        S3Lake::new(beacon_aws::s3::client(aws), bucket)
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

fn failed<E: std::error::Error + 'static>(what: &str, key: &str, e: E) -> LakeError {
    LakeError::Store(format!("{what} {key}: {}", DisplayErrorContext(&e)))
}

impl LakeStore for S3Lake {
    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, LakeError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(failed("GetObject", key, e)),
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| failed("reading", key, e))?;
        Ok(Some((body.into_bytes().to_vec(), etag)))
    }

    async fn put(&self, key: &str, body: Vec<u8>, condition: PutIf) -> Result<(), LakeError> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/vnd.apache.parquet")
            .body(ByteStream::from(body));
        let request = match condition {
            PutIf::Always => request,
            PutIf::Absent => request.if_none_match("*"),
            PutIf::Unchanged(etag) => request.if_match(etag),
        };
        match request.send().await {
            Ok(_) => Ok(()),
            // 412: the condition failed; 409: a concurrent conditional write won.
            Err(e)
                if matches!(
                    e.code(),
                    Some("PreconditionFailed" | "ConditionalRequestConflict")
                ) || e
                    .raw_response()
                    .is_some_and(|r| matches!(r.status().as_u16(), 409 | 412)) =>
            {
                Err(LakeError::Conflict(key.to_string()))
            }
            Err(e) => Err(failed("PutObject", key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<LakeObject>, LakeError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| failed("ListObjectsV2", prefix, e))?;
            out.extend(page.contents().iter().map(|o| LakeObject {
                key: o.key().unwrap_or_default().to_string(),
                size: o.size().unwrap_or(0),
            }));
        }
        Ok(out)
    }

    async fn delete(&self, keys: &[String]) -> Result<(), LakeError> {
        // DeleteObjects takes at most 1,000 keys.
        for chunk in keys.chunks(1000) {
            let objects = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| LakeError::Store(e.to_string()))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| LakeError::Store(e.to_string()))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| failed("DeleteObjects", &chunk[0], e))?;
            if let Some(err) = out.errors().first() {
                return Err(LakeError::Store(format!(
                    "DeleteObjects {}: {}",
                    err.key().unwrap_or_default(),
                    err.message().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }
}
