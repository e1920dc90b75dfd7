//! `beacon networks`: the IP range lists the open pixel and the click redirect label
//! requests from (see `beacon_domain::verdict::networks`).

use anyhow::{bail, Context, Result};
use beacon_domain::verdict::networks::{ListSummary, Networks, APPLE_PROXY, LISTS, SCANNERS};
use beacon_report::render::fmt::whole;
use clap::Subcommand;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum NetworksCommand {
    /// Read Apple's egress CSV or a plain CIDR list, check and collapse it, and write
    /// `<out-dir>/<list>.txt` (then rebuild and deploy the functions).
    Import {
        /// `apple-proxy` (Apple's Private Relay egress, behind Mail Privacy Protection)
        /// or `scanners` (security gateways).
        list: String,
        /// The file to read (`-` for standard input): one range per line in the first
        /// comma-separated column, e.g. Apple's egress-ip-ranges.csv.
        file: PathBuf,
        /// Where the lists compiled into the functions live.
        #[arg(long, default_value = "shared/networks")]
        out_dir: PathBuf,
    },
    /// Ranges per list and family: those compiled into this binary, or those in --dir.
    List {
        /// Read `<dir>/<list>.txt` instead of the lists compiled in.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The label a client address gets: apple-proxy, scanners, unlisted or none.
    Lookup {
        /// The full client address (IPv4 or IPv6).
        ip: String,
        /// Look it up in `<dir>/<list>.txt` instead of the lists compiled in.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

pub fn run(command: NetworksCommand) -> Result<()> {
    match command {
        NetworksCommand::Import {
            list,
            file,
            out_dir,
        } => import(&list, &file, &out_dir),
        NetworksCommand::List { dir } => {
            let (networks, place) = load(dir.as_deref())?;
            println!("the lists {place}:");
            for s in networks.summaries() {
                println!("  {}", describe(&s));
            }
            Ok(())
        }
        NetworksCommand::Lookup { ip, dir } => {
            let addr: IpAddr = ip
                .trim()
                .parse()
                .with_context(|| format!("`{ip}` is not an IP address"))?;
            let (networks, place) = load(dir.as_deref())?;
            match networks.label(addr) {
                Some(label) => println!("{label}"),
                None => {
                    println!("none");
                    eprintln!(
                        "no label: not in the {SCANNERS} list, and the {APPLE_PROXY} list {place} \
                         is empty, so the address was not checked against Apple's ranges"
                    );
                }
            }
            Ok(())
        }
    }
}

/// The lists compiled in, or those in `dir`, with where they are (`in DIR`).
fn load(dir: Option<&Path>) -> Result<(Networks, String)> {
    let Some(dir) = dir else {
        return Ok((
            Networks::shipped().clone(),
            "compiled into this binary".into(),
        ));
    };
    let mut texts = Vec::new();
    for name in LISTS {
        let path = dir.join(format!("{name}.txt"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        texts.push((name, text));
    }
    let pairs: Vec<(&str, &str)> = texts.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let networks = Networks::from_lists(&pairs)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("reading the lists in {}", dir.display()))?;
    Ok((networks, format!("in {}", dir.display())))
}

/// What the range lines of an input hold: lines read, and those with a range on them.
struct LinesRead {
    lines: usize,
    ranges: usize,
}

fn count_lines(text: &str) -> LinesRead {
    let mut read = LinesRead {
        lines: 0,
        ranges: 0,
    };
    for line in text.lines() {
        read.lines += 1;
        let content = line.split('#').next().unwrap_or("");
        if !content.trim().is_empty() {
            read.ranges += 1;
        }
    }
    read
}

/// Parses one list's file text alone; the error names the list and the bad lines.
fn parse_list(list: &str, text: &str) -> Result<(Networks, ListSummary)> {
    let networks = Networks::from_lists(&[(list, text)]).map_err(anyhow::Error::msg)?;
    let summary = networks.summary(list).expect("a known list parsed");
    if summary.ranges() == 0 {
        bail!("no IP ranges in the input: refusing to write an empty {list} list");
    }
    Ok((networks, summary))
}

fn import(list: &str, file: &Path, out_dir: &Path) -> Result<()> {
    if !LISTS.contains(&list) {
        bail!(
            "unknown network list `{list}`; the lists are {}",
            LISTS.join(", ")
        );
    }
    if !out_dir.is_dir() {
        bail!(
            "{} is not a directory (run from the repository root, or give --out-dir)",
            out_dir.display()
        );
    }
    let mut text = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
    } else {
        text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    }
    let read = count_lines(&text);
    let (networks, summary) =
        parse_list(list, &text).with_context(|| format!("importing {}", file.display()))?;
    let out = out_dir.join(format!("{list}.txt"));
    let partial = out_dir.join(format!(".{list}.txt.partial"));
    std::fs::write(&partial, networks.to_text(list))
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &out).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "read {} lines ({} with a range) from {}",
        whole(read.lines as u128),
        whole(read.ranges as u128),
        file.display()
    );
    println!("kept {}", describe(&summary));
    println!(
        "wrote {}: rebuild and deploy the open-pixel and click-redirect functions to use it",
        out.display()
    );
    Ok(())
}

/// One line about a list: its ranges and addresses per family, or that it is empty and
/// what that turns off.
fn describe(s: &ListSummary) -> String {
    if s.ranges() == 0 {
        let off = if s.name == APPLE_PROXY {
            "no request is labelled apple-proxy or unlisted"
        } else {
            "no request is labelled scanners"
        };
        return format!(
            "{}: empty, the signal is off ({off}; fill it with `beacon networks import {} <file>`, then rebuild)",
            s.name, s.name
        );
    }
    format!(
        "{}: {} ranges: {} IPv4 covering {} addresses, {} IPv6 covering {}",
        s.name,
        whole(s.ranges() as u128),
        whole(s.v4_ranges as u128),
        whole(s.v4_addresses),
        whole(s.v6_ranges as u128),
        v6_size(s.v6_addresses)
    )
}

/// IPv6 coverage in /64 networks (the size of one subnet), or in addresses below one.
fn v6_size(addresses: u128) -> String {
    if addresses >= 1 << 64 {
        format!("{} /64s", whole(addresses >> 64))
    } else {
        format!("{} addresses", whole(addresses))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_is_counted_and_described() {
        let csv = "198.18.226.0/27,GB,GB-EN,London,\n198.18.226.32/27,GB,GB-EN,London,\n\
                   2001:db8:4a::/48,US,US-CA,Los Angeles,\n# a comment\n\n";
        let read = count_lines(csv);
        assert_eq!((read.lines, read.ranges), (5, 3));
        let (networks, s) = parse_list(APPLE_PROXY, csv).unwrap();
        assert_eq!((s.v4_ranges, s.v6_ranges), (1, 1));
        assert_eq!(
            describe(&s),
            "apple-proxy: 2 ranges: 1 IPv4 covering 64 addresses, 1 IPv6 covering 65,536 /64s"
        );
        assert!(networks
            .to_text(APPLE_PROXY)
            .contains("\n198.18.226.0/26\n"));
        let empty = Networks::default().summary(SCANNERS).unwrap();
        assert!(describe(&empty).contains("scanners: empty, the signal is off"));
    }

    #[test]
    fn bad_and_empty_inputs_are_refused() {
        let err = parse_list(SCANNERS, "192.0.2.0/24\n192.0.2.0/40\n").unwrap_err();
        assert!(
            format!("{err:#}").contains("scanners line 2: `192.0.2.0/40`"),
            "{err:#}"
        );
        let err = parse_list(SCANNERS, "# nothing\n").unwrap_err();
        assert!(format!("{err:#}").contains("refusing to write an empty scanners list"));
    }
}
