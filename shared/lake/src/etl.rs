//! The ETL: a stream batch planned into staging pieces and written, one per shard and
//! hour, with poison records to the dead letters.

use crate::*;
use base64::Engine;
use beacon_domain::event::stream::{decode, DeadLetter, DeadLetterSink, StreamRecord};
use beacon_domain::event::Event;
use std::collections::BTreeMap;

/// One staging piece to write: the batch's events of one hour.
#[derive(Debug, Clone)]
pub struct Piece {
    pub partition: Partition,
    pub key: String,
    pub events: Vec<Event>,
}

/// What a stream batch becomes: pieces per hour, and poison records with why.
#[derive(Debug, Clone, Default)]
pub struct StagingPlan {
    pub pieces: Vec<Piece>,
    pub dead_letters: Vec<DeadLetter>,
}

/// Decodes one shard's records (in sequence order) and groups them by event hour.
/// Records that are not events are dead letters, reason included (the same decoding
/// and rules as the rollups: [`decode`]).
pub fn plan_staging(records: &[StreamRecord]) -> StagingPlan {
    let mut plan = StagingPlan::default();
    // (shard, hour) -> (first sequence, last sequence, events)
    let mut groups: BTreeMap<(String, Partition), (String, String, Vec<Event>)> = BTreeMap::new();
    for r in records {
        match decode(&r.data) {
            Ok(e) => {
                let g = groups
                    .entry((r.shard.clone(), Partition::of(e.event_time)))
                    .or_insert_with(|| (r.sequence.clone(), r.sequence.clone(), Vec::new()));
                g.1 = r.sequence.clone();
                g.2.push(e);
            }
            Err(reason) => plan.dead_letters.push(DeadLetter {
                shard: r.shard.clone(),
                sequence: r.sequence.clone(),
                reason: format!("lake: {reason}"),
                data_base64: base64::engine::general_purpose::STANDARD.encode(&r.data),
            }),
        }
    }
    plan.pieces = groups
        .into_iter()
        .map(|((shard, partition), (first, last, events))| Piece {
            key: staging_key(partition, &shard, &first, &last),
            partition,
            events,
        })
        .collect();
    plan
}

/// What the ETL did with a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Staged {
    pub events: usize,
    pub pieces: usize,
    pub dead_letters: usize,
    pub bytes: usize,
}

/// Writes a batch to staging: dead letters first (so none is lost if a write fails
/// later; a retry sends them again, which is harmless), then one piece per hour.
/// Any error means the whole batch must be delivered again; its keys are the same.
pub async fn stage_batch<L: LakeStore, D: DeadLetterSink>(
    lake: &L,
    dead: &D,
    records: &[StreamRecord],
) -> Result<Staged, LakeError> {
    let plan = plan_staging(records);
    if !plan.dead_letters.is_empty() {
        dead.send(&plan.dead_letters)
            .await
            .map_err(|e| LakeError::Store(format!("dead-letter queue: {e}")))?;
    }
    let mut staged = Staged {
        dead_letters: plan.dead_letters.len(),
        ..Staged::default()
    };
    for piece in plan.pieces {
        let body = write_parquet(&piece.events)?;
        staged.bytes += body.len();
        staged.events += piece.events.len();
        staged.pieces += 1;
        lake.put(&piece.key, body, PutIf::Always).await?;
    }
    Ok(staged)
}
