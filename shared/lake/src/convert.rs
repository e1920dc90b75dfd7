//! NDJSON to Parquet: an export of events (one JSON event per line) as a lake file.

use crate::*;
use beacon_domain::event::stream::decode;
use parquet::arrow::ArrowWriter;

/// How many bad lines a conversion reports in detail (the rest are only counted).
pub const BAD_LINES_REPORTED: usize = 10;

/// How [`convert_ndjson`] reads and writes.
#[derive(Debug, Clone, Copy)]
pub struct ConvertOptions {
    /// Rows per Arrow batch handed to the writer: bounds the column builders' memory.
    pub rows_per_batch: usize,
    /// Once the writer's buffered row group holds this much memory it is written out,
    /// so memory stays bounded whatever the input size (and row groups stay near the
    /// 128 MB Athena splits by).
    pub memory_budget: usize,
    /// Fail at the first line that is not an event instead of skipping it.
    pub strict: bool,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            rows_per_batch: ROWS_PER_BATCH,
            memory_budget: ROW_GROUP_BYTES,
            strict: false,
        }
    }
}

/// A line that is not an event, by its number in the input (from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: u64,
    pub reason: String,
}

/// What a conversion did, so far (progress) or in all (the result).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Converted {
    /// Events written.
    pub rows: u64,
    /// Lines that are not events, skipped.
    pub bad_lines: u64,
    /// The first [`BAD_LINES_REPORTED`] of them.
    pub first_bad: Vec<BadLine>,
    /// Parquet bytes written (the whole file once the conversion is done).
    pub bytes: u64,
    /// Row groups written.
    pub row_groups: usize,
    /// The most memory the writer's buffered row group held after any batch.
    pub peak_writer_memory: usize,
}

/// Converts NDJSON events (one [`Event`] as JSON a line, as on the stream) to one
/// Parquet file of [`SCHEMA`], streaming: a batch of rows at a time, with the buffered
/// row group written out at `options.memory_budget`, so memory does not grow with the
/// input. Blank lines are ignored; lines that are not events are counted and skipped
/// (or fail the conversion when `options.strict`). `progress` is called after each batch.
pub fn convert_ndjson<R: std::io::BufRead, W: std::io::Write + Send>(
    mut input: R,
    output: W,
    options: ConvertOptions,
    mut progress: impl FnMut(&Converted),
) -> Result<Converted, LakeError> {
    let rows_per_batch = options.rows_per_batch.max(1);
    let mut writer = ArrowWriter::try_new(output, SCHEMA.clone(), Some(writer_properties()))?;
    let mut columns = EventColumns::with_capacity(rows_per_batch);
    let mut done = Converted::default();
    let mut line = Vec::with_capacity(4096);
    let mut number = 0u64;
    loop {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .map_err(|e| LakeError::Format(format!("reading line {}: {e}", number + 1)))?;
        if read > 0 {
            number += 1;
            let text = line.trim_ascii();
            if !text.is_empty() {
                match decode(text) {
                    Ok(e) => columns.push(&e),
                    Err(reason) if options.strict => {
                        return Err(LakeError::Format(format!("line {number}: {reason}")));
                    }
                    Err(reason) => {
                        done.bad_lines += 1;
                        if done.first_bad.len() < BAD_LINES_REPORTED {
                            done.first_bad.push(BadLine {
                                line: number,
                                reason: reason.to_string(),
                            });
                        }
                    }
                }
            }
        }
        let end = read == 0;
        if columns.len() >= rows_per_batch || (end && columns.len() > 0) {
            let batch = columns.finish()?;
            writer.write(&batch)?;
            done.rows += batch.num_rows() as u64;
            let buffered = writer.memory_size();
            done.peak_writer_memory = done.peak_writer_memory.max(buffered);
            if buffered >= options.memory_budget {
                writer.flush()?;
            }
            done.row_groups = writer.flushed_row_groups().len();
            done.bytes = writer.bytes_written() as u64;
            progress(&done);
        }
        if end {
            break;
        }
    }
    let metadata = writer.finish()?;
    done.row_groups = metadata.num_row_groups();
    done.bytes = writer.bytes_written() as u64;
    Ok(done)
}
