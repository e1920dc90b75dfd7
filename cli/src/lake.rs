//! `beacon lake`: the operator's side of the data lake (see `beacon_lake`).

use anyhow::{bail, Context, Result};
use beacon_aws::config::aws_config;
use beacon_domain::event::stream::decode;
use beacon_domain::Event;
use beacon_lake::store::S3Lake;
use beacon_lake::{
    compact_closed, compact_partition, convert_ndjson, ConvertOptions, Converted, Partition,
    BAD_LINES_REPORTED,
};
use chrono::{DateTime, NaiveDate, Utc};
use clap::Subcommand;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Subcommand)]
pub enum LakeCommand {
    /// Compact every closed hour with staging pieces now (what the hourly schedule does).
    Compact {
        /// The lake bucket (stack output LakeBucketName).
        #[arg(long, env = "BEACON_LAKE_BUCKET")]
        bucket: String,
        /// Compact as if it were this time (RFC 3339); default now.
        #[arg(long)]
        as_of: Option<DateTime<Utc>>,
        /// Minutes after its end an hour counts as closed.
        #[arg(long, default_value_t = 15)]
        grace_minutes: i64,
    },
    /// Rewrite every hour of a date range from its curated object and staging pieces,
    /// with the current writer and classifier; with --input, backfill events too.
    Rebuild {
        #[arg(long, env = "BEACON_LAKE_BUCKET")]
        bucket: String,
        /// First UTC day (YYYY-MM-DD).
        #[arg(long)]
        from: NaiveDate,
        /// Last UTC day, included (default: --from).
        #[arg(long)]
        to: Option<NaiveDate>,
        /// NDJSON files of events as they travel on the stream (repeatable; `-` for
        /// standard input). Events outside the range are skipped and counted.
        #[arg(long)]
        input: Vec<PathBuf>,
    },
    /// Convert NDJSON events (as they travel on the stream) to one Parquet file of the
    /// lake's schema, streaming: memory stays bounded whatever the input size.
    Convert {
        /// NDJSON file of events (`-` for standard input).
        #[arg(long)]
        input: PathBuf,
        /// The Parquet file to write (replaced only once it is complete).
        #[arg(long)]
        output: PathBuf,
        /// Fail at the first line that is not an event instead of skipping it.
        #[arg(long)]
        strict: bool,
        /// Rows per Arrow batch handed to the Parquet writer.
        #[arg(long, default_value_t = ConvertOptions::default().rows_per_batch)]
        rows_per_batch: usize,
    },
}

pub async fn run(command: LakeCommand) -> Result<()> {
    match command {
        LakeCommand::Compact {
            bucket,
            as_of,
            grace_minutes,
        } => {
            let lake = S3Lake::from_config(&aws_config().await, bucket);
            let now = as_of.unwrap_or_else(Utc::now);
            let done =
                compact_closed(&lake, now, chrono::Duration::minutes(grace_minutes.max(0))).await?;
            for c in &done {
                eprintln!(
                    "{}: {} pieces merged, {} rows ({} duplicates dropped), {} bytes",
                    c.partition.path(),
                    c.pieces,
                    c.rows,
                    c.duplicates,
                    c.bytes
                );
            }
            eprintln!("compacted {} hours as of {}", done.len(), now.to_rfc3339());
        }
        LakeCommand::Rebuild {
            bucket,
            from,
            to,
            input,
        } => rebuild(bucket, from, to.unwrap_or(from), &input).await?,
        LakeCommand::Convert {
            input,
            output,
            strict,
            rows_per_batch,
        } => convert(
            &input,
            &output,
            ConvertOptions {
                rows_per_batch,
                strict,
                ..ConvertOptions::default()
            },
        )?,
    }
    Ok(())
}

/// Events of the NDJSON inputs, by hour; lines that are not events are reported.
fn read_inputs(
    inputs: &[PathBuf],
    hours: &[Partition],
) -> Result<(BTreeMap<Partition, Vec<Event>>, usize)> {
    let mut by_hour: BTreeMap<Partition, Vec<Event>> = BTreeMap::new();
    let (mut bad, mut outside) = (0usize, 0usize);
    for path in inputs {
        let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::io::BufReader::new(
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
            ))
        };
        for (n, line) in reader.lines().enumerate() {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            match decode(line.as_bytes()) {
                Ok(e) => {
                    let p = Partition::of(e.event_time);
                    if hours.binary_search(&p).is_ok() {
                        by_hour.entry(p).or_default().push(e);
                    } else {
                        outside += 1;
                    }
                }
                Err(reason) => {
                    bad += 1;
                    if bad <= 10 {
                        eprintln!("{}:{}: skipped: {reason}", path.display(), n + 1);
                    }
                }
            }
        }
    }
    if bad > 10 {
        eprintln!("... {} more lines skipped", bad - 10);
    }
    if outside > 0 {
        eprintln!("{outside} input events lie outside the range and were skipped");
    }
    Ok((by_hour, bad))
}

async fn rebuild(bucket: String, from: NaiveDate, to: NaiveDate, inputs: &[PathBuf]) -> Result<()> {
    if to < from {
        bail!("--to {to} is before --from {from}");
    }
    let hours = Partition::days(from, to);
    let (mut backfill, _) = read_inputs(inputs, &hours)?;
    let lake = S3Lake::from_config(&aws_config().await, bucket);
    let total = hours.len();
    let (mut written, mut rows, mut duplicates, mut bytes) = (0usize, 0usize, 0usize, 0usize);
    eprintln!(
        "rebuilding {total} hours from {from} to {to} in s3://{}",
        lake.bucket()
    );
    for (i, p) in hours.iter().enumerate() {
        let extra = backfill.remove(p).unwrap_or_default();
        let c = compact_partition(&lake, *p, &extra, true)
            .await
            .with_context(|| format!("rebuilding {}", p.path()))?;
        if c.written {
            written += 1;
            rows += c.rows;
            duplicates += c.duplicates;
            bytes += c.bytes;
            eprintln!(
                "[{:>4}/{total}] {}: {} rows ({} before, {} pieces and {} backfilled merged, {} duplicates dropped), {} bytes",
                i + 1,
                p.path(),
                c.rows,
                c.existing,
                c.pieces,
                extra.len(),
                c.duplicates,
                c.bytes
            );
        } else if (i + 1) % 24 == 0 {
            eprintln!(
                "[{:>4}/{total}] {} done",
                i + 1,
                p.start().format("%Y-%m-%d")
            );
        }
    }
    eprintln!(
        "rebuilt {written} of {total} hours (the others hold no events): {rows} rows, {duplicates} duplicates dropped, {bytes} bytes"
    );
    Ok(())
}

/// `beacon lake convert`: progress on stderr about once a second, then a summary line.
fn convert(input: &Path, output: &Path, options: ConvertOptions) -> Result<()> {
    let reader: Box<dyn BufRead> = if input.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file =
            std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
        Box::new(std::io::BufReader::with_capacity(1 << 20, file))
    };
    // Written beside the output and renamed at the end, so a failed run never leaves a
    // truncated file under the output's name.
    let mut partial = output.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let writer = std::io::BufWriter::with_capacity(1 << 20, file);
    let started = Instant::now();
    let mut reported = started;
    let rate = |rows: u64| rows as f64 / started.elapsed().as_secs_f64().max(1e-9);
    let result = convert_ndjson(reader, writer, options, |so_far: &Converted| {
        if reported.elapsed().as_secs_f64() >= 1.0 {
            reported = Instant::now();
            eprintln!(
                "{} rows, {:.0} rows/s, {} bad lines, {} row groups written",
                so_far.rows,
                rate(so_far.rows),
                so_far.bad_lines,
                so_far.row_groups
            );
        }
    });
    let done = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e).with_context(|| format!("converting {}", input.display()));
        }
    };
    std::fs::rename(&partial, output)
        .with_context(|| format!("renaming {} to {}", partial.display(), output.display()))?;
    for bad in &done.first_bad {
        eprintln!("{}:{}: skipped: {}", input.display(), bad.line, bad.reason);
    }
    if done.bad_lines > BAD_LINES_REPORTED as u64 {
        eprintln!(
            "... {} more lines skipped",
            done.bad_lines - BAD_LINES_REPORTED as u64
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "converted {} rows ({} bad lines skipped) to {}: {} bytes, {} row groups, {:.2} s, {:.0} rows/s",
        done.rows,
        done.bad_lines,
        output.display(),
        done.bytes,
        done.row_groups,
        seconds,
        rate(done.rows)
    );
    Ok(())
}
