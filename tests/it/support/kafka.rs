//! Kafka-protocol brokers for the Kafka tests, one per test (so pausing one test's broker
//! disturbs no other test), and a reader that takes a topic back with an rdkafka consumer
//! (`assign`, no consumer group). Two kinds:
//!
//! - [`Broker::mock`]: librdkafka's mock cluster (`rdkafka::mocking`), compiled into the
//!   bundled librdkafka we already build: in-process, listening on loopback ports that the
//!   exporter binary connects to, started in milliseconds, nothing downloaded. It speaks
//!   Produce, Fetch, Metadata and ListOffsets, keeps keys and headers, auto-creates topics and
//!   injects faults (a frozen broker, a broker down). It is not transactional (read_committed
//!   sees aborted records, no fencing) and has no authentication.
//! - [`Broker::start`]: a `tansu` process on a free loopback port, for what the mock cannot
//!   do: SASL, transactions, a cluster replaced on the same address. `./scripts/test.sh`
//!   installs tansu and exports `TANSU_BIN`. Without it those tests fail with a message saying
//!   so: a Kafka test never passes without a broker.
//!
//! `KAFKA_BOOTSTRAP`, when set, points the tests that need no fault injection
//! ([`Broker::shared_or_mock`]) at an external broker instead.
//!
//! Tests of transactions use [`Broker::start_transactional`]: tansu behind `kafka-txn-proxy`,
//! which makes read_committed fetches correct (tansu 0.6 hands aborted records to
//! read_committed consumers), and read back with [`Broker::read_topic_committed`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_txn_proxy::TxnProxy;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

/// The tansu binary, from `TANSU_BIN`.
pub fn tansu_bin() -> PathBuf {
    let Some(path) = std::env::var_os("TANSU_BIN") else {
        panic!(
            "TANSU_BIN is not set: the Kafka tests need a real broker; run ./scripts/test.sh, which installs tansu (or export TANSU_BIN=/path/to/tansu)"
        );
    };
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "TANSU_BIN={} does not exist: run ./scripts/test.sh, which installs tansu",
        path.display()
    );
    path
}

/// A Kafka-protocol broker on loopback.
pub struct Broker {
    /// `127.0.0.1:PORT`, what the exporter's `brokers` gets.
    pub bootstrap: String,
    /// The tansu process; `None` for a mock cluster or an external `KAFKA_BOOTSTRAP` broker.
    process: Option<Tansu>,
    /// librdkafka's in-process mock cluster, for [`Broker::mock`].
    mock: Option<MockCluster<'static, DefaultProducerContext>>,
    /// The read_committed correction in front of tansu, for [`Broker::start_transactional`].
    proxy: Option<TxnProxy>,
}

struct Tansu {
    child: Child,
    bin: PathBuf,
    log: tempfile::NamedTempFile,
}

impl Broker {
    /// A tansu broker of this test's own.
    pub async fn start() -> Broker {
        Broker::start_with(&[]).await
    }

    /// A tansu broker started with extra arguments (e.g. `--authentication`).
    pub async fn start_with(extra_args: &[&str]) -> Broker {
        let bin = tansu_bin();
        let mut last_log = String::new();
        // A free port can be taken between probing and binding; try a few.
        for _ in 0..3 {
            let port = free_port();
            let mut broker = Broker {
                bootstrap: format!("127.0.0.1:{port}"),
                process: Some(spawn_tansu(&bin, port, extra_args)),
                mock: None,
                proxy: None,
            };
            if broker
                .wait_ready(Duration::from_secs(10), extra_args.is_empty())
                .await
            {
                return broker;
            }
            last_log = broker.log();
            broker.stop();
        }
        panic!("tansu did not become ready on three ports; its log:\n{last_log}");
    }

    /// Replaces the broker by a new, empty one on the same port: to clients, the cluster was
    /// replaced under them (memory storage keeps nothing).
    pub async fn replace_with_empty(&mut self) {
        assert!(
            self.proxy.is_none(),
            "replace_with_empty is not for a transactional broker: its proxy's log index describes the old log"
        );
        let bin = self.tansu().bin.clone();
        let port: u16 = self
            .bootstrap
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .expect("bootstrap has a port");
        self.stop();
        self.process = Some(spawn_tansu(&bin, port, &[]));
        if !self.wait_ready(Duration::from_secs(10), true).await {
            panic!(
                "the replacement tansu did not become ready; its log:\n{}",
                self.log()
            );
        }
    }

    /// A tansu broker of this test's own behind a `kafka-txn-proxy`, for tests of
    /// transactions: `bootstrap` is the proxy's address, which tansu also advertises, so every
    /// client connection goes through the proxy and read_committed sees what it would on
    /// Kafka. Never `KAFKA_BOOTSTRAP`'s broker.
    pub async fn start_transactional() -> Broker {
        let bin = tansu_bin();
        let mut last_log = String::new();
        // A free port can be taken between probing and binding; try a few.
        for _ in 0..3 {
            // The proxy's address first: tansu must advertise it.
            let bound = TxnProxy::bind()
                .await
                .expect("the proxy binds a loopback port");
            let proxy_addr = bound.local_addr().expect("the proxy's address");
            let port = free_port();
            let tansu = spawn_tansu_advertising(&bin, port, &format!("tcp://{proxy_addr}"), &[]);
            let proxy = bound
                .serve(SocketAddr::from(([127, 0, 0, 1], port)))
                .expect("the proxy serves");
            let mut broker = Broker {
                bootstrap: proxy_addr.to_string(),
                process: Some(tansu),
                mock: None,
                proxy: Some(proxy),
            };
            if broker.wait_ready(Duration::from_secs(10), true).await {
                return broker;
            }
            last_log = broker.log();
            broker.stop();
        }
        panic!("tansu behind the proxy did not become ready on three ports; its log:\n{last_log}");
    }

    /// A mock cluster of this test's own: [`MOCK_BROKERS`] brokers in this process on
    /// loopback ports (`bootstrap` lists them all).
    pub fn mock() -> Broker {
        let mock = MockCluster::new(MOCK_BROKERS).expect("librdkafka's mock cluster starts");
        Broker {
            bootstrap: mock.bootstrap_servers(),
            process: None,
            mock: Some(mock),
            proxy: None,
        }
    }

    /// `KAFKA_BOOTSTRAP`'s broker if set, else a mock cluster of this test's own. Only for
    /// tests that never pause or restart the broker.
    pub fn shared_or_mock() -> Broker {
        match std::env::var("KAFKA_BOOTSTRAP") {
            Ok(bootstrap) if !bootstrap.trim().is_empty() => Broker {
                bootstrap: bootstrap.trim().to_string(),
                process: None,
                mock: None,
                proxy: None,
            },
            _ => Broker::mock(),
        }
    }

    fn mock_cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        self.mock
            .as_ref()
            .expect("this test needs a mock cluster of its own (Broker::mock)")
    }

    fn tansu(&self) -> &Tansu {
        self.process
            .as_ref()
            .expect("this test needs a tansu of its own, not a mock cluster or KAFKA_BOOTSTRAP")
    }

    /// Waits until the broker accepts connections (and, without authentication, answers a
    /// topic listing).
    async fn wait_ready(&mut self, timeout: Duration, can_list: bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(tansu) = self.process.as_mut()
                && matches!(tansu.child.try_wait(), Ok(Some(_)))
            {
                return false;
            }
            let ready = if can_list {
                self.tansu_cli(&["topic", "list"]).await.is_ok()
            } else {
                tokio::net::TcpStream::connect(&self.bootstrap)
                    .await
                    .is_ok()
            };
            if ready {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Runs `tansu <args> --broker tcp://...`; the error is its output.
    async fn tansu_cli(&self, args: &[&str]) -> Result<String, String> {
        let output = tokio::process::Command::new(&self.tansu().bin)
            .args(args)
            .args(["--broker", &format!("tcp://{}", self.bootstrap)])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| e.to_string())?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if output.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }

    /// Whether this is an external `KAFKA_BOOTSTRAP` broker rather than one of our own.
    pub fn is_external(&self) -> bool {
        self.process.is_none() && self.mock.is_none()
    }

    /// Creates a topic with `partitions` partitions.
    pub async fn create_topic(&self, topic: &str, partitions: u32) {
        if self.is_external() {
            create_topic_with_admin(&self.bootstrap, topic, partitions).await;
            return;
        }
        if let Some(mock) = &self.mock {
            let partitions = i32::try_from(partitions).expect("partition count fits");
            mock.create_topic(topic, partitions, MOCK_BROKERS)
                .unwrap_or_else(|e| panic!("creating {topic} on the mock cluster: {e}"));
            return;
        }
        let partitions = partitions.to_string();
        if let Err(output) = self
            .tansu_cli(&["topic", "create", topic, "--partitions", &partitions])
            .await
        {
            panic!("tansu topic create {topic} failed: {output}");
        }
    }

    /// Freezes the broker: connections stay open, nothing is answered. tansu gets
    /// `kill -STOP`; the mock cluster holds every answer back (a round-trip time of an hour),
    /// though it still takes in what it is sent.
    pub fn pause(&self) {
        if let Some(mock) = &self.mock {
            mock.broker_round_trip_time(-1, Duration::from_secs(3600))
                .expect("mock brokers frozen");
            return;
        }
        self.signal("STOP");
    }

    /// Thaws a paused broker (`kill -CONT`; the mock cluster answers what it held back).
    pub fn resume(&self) {
        if let Some(mock) = &self.mock {
            mock.broker_round_trip_time(-1, Duration::ZERO)
                .expect("mock brokers thawed");
            return;
        }
        self.signal("CONT");
    }

    /// Takes every broker of the mock cluster down: open connections are closed and new ones
    /// refused until [`Broker::up`].
    pub fn down(&self) {
        self.mock_cluster()
            .broker_down(-1)
            .expect("mock brokers down");
    }

    /// Brings the mock cluster's brokers back on their ports.
    pub fn up(&self) {
        self.mock_cluster().broker_up(-1).expect("mock brokers up");
    }

    fn signal(&self, name: &str) {
        let pid = self.tansu().child.id();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill -{name} {pid} failed");
    }

    /// Stops the broker for good (its memory storage goes with it).
    pub fn stop(&mut self) {
        self.mock = None;
        if let Some(mut tansu) = self.process.take() {
            // SIGKILL also ends a stopped process.
            let _ = tansu.child.kill();
            let _ = tansu.child.wait();
        }
    }

    /// The broker's log so far (for failure messages).
    pub fn log(&self) -> String {
        self.process
            .as_ref()
            .and_then(|tansu| std::fs::read_to_string(tansu.log.path()).ok())
            .unwrap_or_default()
    }

    /// Every message on `topic` now, read from the beginning of each partition.
    ///
    /// tansu 0.6 reports a high watermark that can be below the last offset (it seems to
    /// count from the last batch's base offset), so the reader does not stop at the
    /// watermarks: it reads until they are passed and then nothing new comes for half a second.
    /// The mock cluster's watermarks are exact: its reader stops when they are passed.
    pub async fn read_topic(&self, topic: &str) -> Vec<Consumed> {
        let Some(reader) = self.open_reader(topic).await else {
            return Vec::new();
        };
        read_to_end(
            reader,
            topic,
            "read_uncommitted",
            TopicReader::passed_watermarks,
            self.quiet_period(),
        )
        .await
    }

    /// How long nothing new must come after the ends are passed before a read is done.
    fn quiet_period(&self) -> Duration {
        if self.mock.is_some() {
            Duration::ZERO
        } else {
            Duration::from_millis(500)
        }
    }

    /// Waits until `topic` holds at least `n` messages; returns how many it read.
    pub async fn wait_for_messages(&self, topic: &str, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut reader = loop {
            if let Some(reader) = self.open_reader(topic).await {
                break reader;
            }
            assert!(
                Instant::now() < deadline,
                "{topic} does not exist after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        loop {
            if reader.messages.len() >= n {
                return reader.messages.len();
            }
            assert!(
                Instant::now() < deadline,
                "{topic} holds {} messages after {timeout:?}, expected at least {n}",
                reader.messages.len()
            );
            reader = poll_reader(reader, Duration::from_millis(250)).await.0;
        }
    }

    async fn open_reader(&self, topic: &str) -> Option<TopicReader> {
        let bootstrap = self.bootstrap.clone();
        let topic = topic.to_string();
        tokio::task::spawn_blocking(move || TopicReader::open(&bootstrap, &topic))
            .await
            .expect("reader task")
    }

    /// Every message a `read_committed` consumer reads on `topic` now, from the beginning of
    /// each partition: the committed records, in no transaction's way.
    ///
    /// Meant for [`Broker::start_transactional`]; on a bare tansu it also returns aborted
    /// records. The ends are the last stable offsets (ListOffsets, read_committed), and the
    /// reader goes by the consumer's position, which librdkafka moves past transaction
    /// markers, where a message's offset stops short of a marker that ends a partition.
    pub async fn read_topic_committed(&self, topic: &str) -> Vec<Consumed> {
        self.read_topic_isolated(topic, "read_committed").await
    }

    /// Every message a `read_uncommitted` consumer reads on `topic` now: with the records of
    /// aborted transactions, as a consumer that does not ask for read_committed sees them.
    pub async fn read_topic_uncommitted(&self, topic: &str) -> Vec<Consumed> {
        self.read_topic_isolated(topic, "read_uncommitted").await
    }

    /// `topic` read to its ends (by position, past markers) at `isolation`.
    async fn read_topic_isolated(&self, topic: &str, isolation: &'static str) -> Vec<Consumed> {
        let bootstrap = self.bootstrap.clone();
        let owned_topic = topic.to_string();
        let reader = tokio::task::spawn_blocking(move || {
            TopicReader::open_with(
                isolated_reader(&bootstrap, isolation),
                &bootstrap,
                &owned_topic,
            )
        })
        .await
        .expect("reader task");
        let Some(reader) = reader else {
            return Vec::new();
        };
        read_to_end(
            reader,
            topic,
            isolation,
            TopicReader::positions_passed_ends,
            self.quiet_period(),
        )
        .await
    }

    /// The names of the topics the broker knows.
    pub async fn topics(&self) -> Vec<String> {
        let bootstrap = self.bootstrap.clone();
        tokio::task::spawn_blocking(move || {
            let consumer = reader(&bootstrap);
            let metadata = consumer
                .fetch_metadata(None, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("metadata from {bootstrap}: {e}"));
            metadata
                .topics()
                .iter()
                .map(|t| t.name().to_string())
                .collect()
        })
        .await
        .expect("metadata task")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads until `at_end` holds and nothing new came for `quiet` (tansu can report ends below
/// what it holds); fails after 30 s.
async fn read_to_end(
    mut reader: TopicReader,
    topic: &str,
    isolation: &str,
    at_end: fn(&TopicReader) -> bool,
    quiet: Duration,
) -> Vec<Consumed> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet_since = Instant::now();
    loop {
        let (returned, n_new) = poll_reader(reader, Duration::from_millis(200)).await;
        reader = returned;
        if n_new > 0 {
            quiet_since = Instant::now();
        }
        if at_end(&reader) && quiet_since.elapsed() >= quiet {
            return reader.messages;
        }
        assert!(
            Instant::now() < deadline,
            "reading {topic} back ({isolation}) took over 30 s"
        );
    }
}

fn spawn_tansu(bin: &std::path::Path, port: u16, extra_args: &[&str]) -> Tansu {
    let url = format!("tcp://127.0.0.1:{port}");
    spawn_tansu_advertising(bin, port, &url, extra_args)
}

/// tansu listening on `127.0.0.1:port` and advertising `advertised` (a `tcp://` URL) to
/// clients, in Metadata and FindCoordinator answers.
fn spawn_tansu_advertising(
    bin: &std::path::Path,
    port: u16,
    advertised: &str,
    extra_args: &[&str],
) -> Tansu {
    let url = format!("tcp://127.0.0.1:{port}");
    let log = tempfile::NamedTempFile::new().expect("tansu log file");
    let file = log.reopen().expect("tansu log file");
    let child = Command::new(bin)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            advertised,
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .args(extra_args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log handle"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    Tansu {
        child,
        bin: bin.to_path_buf(),
        log,
    }
}

/// Creates a topic through the Kafka admin API (replication: the cluster's default).
async fn create_topic_with_admin(bootstrap: &str, topic: &str, partitions: u32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("an rdkafka admin client");
    let partitions = i32::try_from(partitions).expect("partition count fits");
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&new_topic], &options)
        .await
        .unwrap_or_else(|e| panic!("creating {topic} on {bootstrap}: {e}"));
    for result in results {
        if let Err((name, code)) = result {
            panic!("creating {name} on {bootstrap}: {code}");
        }
    }
}

/// How many brokers a mock cluster has: more than one, so a producer talks to several
/// partition leaders as it would on a real cluster.
pub const MOCK_BROKERS: i32 = 3;

/// A free loopback port (tansu cannot bind port 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// One message read back.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The key as text; `None` for a null key.
    pub key: Option<String>,
    /// Header name to value (`None` for a null value).
    pub headers: BTreeMap<String, Option<String>>,
    /// The value parsed as JSON.
    pub value: Value,
}

/// A consumer that reads committed records only (librdkafka's default, made explicit).
fn isolated_reader(bootstrap: &str, isolation: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "lae-it-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("allow.auto.create.topics", "false")
        .set("isolation.level", isolation)
        .set("log_level", "3")
        .create()
        .expect("an rdkafka consumer")
}

fn reader(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "lae-it-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("allow.auto.create.topics", "false")
        .set("log_level", "3")
        .create()
        .expect("an rdkafka consumer")
}

/// A consumer assigned to every partition of one topic from the beginning, and what it read.
struct TopicReader {
    consumer: BaseConsumer,
    topic: String,
    /// Partition to the high watermark seen when the reader opened.
    ends: BTreeMap<i32, i64>,
    /// Partition to the next offset to read.
    next: BTreeMap<i32, i64>,
    messages: Vec<Consumed>,
}

impl TopicReader {
    /// `None` when the topic does not exist.
    fn open(bootstrap: &str, topic: &str) -> Option<TopicReader> {
        TopicReader::open_with(reader(bootstrap), bootstrap, topic)
    }

    /// [`TopicReader::open`] with a consumer of the caller's making; the ends are the latest
    /// offsets at that consumer's isolation level.
    fn open_with(consumer: BaseConsumer, bootstrap: &str, topic: &str) -> Option<TopicReader> {
        let timeout = Duration::from_secs(10);
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .unwrap_or_else(|e| panic!("metadata of {topic} from {bootstrap}: {e}"));
        let described = metadata.topics().iter().find(|t| t.name() == topic)?;
        if described.error().is_some() || described.partitions().is_empty() {
            return None;
        }
        let mut ends = BTreeMap::new();
        let mut assignment = TopicPartitionList::new();
        for partition in described.partitions() {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition.id(), timeout)
                .unwrap_or_else(|e| panic!("watermarks of {topic}/{}: {e}", partition.id()));
            ends.insert(partition.id(), high);
            assignment
                .add_partition_offset(topic, partition.id(), Offset::Beginning)
                .expect("partition added");
        }
        consumer.assign(&assignment).expect("assign");
        Some(TopicReader {
            consumer,
            topic: topic.to_string(),
            ends,
            next: BTreeMap::new(),
            messages: Vec::new(),
        })
    }

    /// Whether the consumer's position has reached every partition's end. The position moves
    /// past transaction markers and skipped aborted records, which no message's offset shows.
    fn positions_passed_ends(&self) -> bool {
        let Ok(positions) = self.consumer.position() else {
            return false;
        };
        self.ends.iter().all(|(partition, end)| {
            let position = match positions
                .find_partition(&self.topic, *partition)
                .map(|element| element.offset())
            {
                Some(Offset::Offset(position)) => position,
                _ => 0,
            };
            position.max(self.next.get(partition).copied().unwrap_or(0)) >= *end
        })
    }

    fn passed_watermarks(&self) -> bool {
        self.ends
            .iter()
            .all(|(p, end)| self.next.get(p).copied().unwrap_or(0) >= *end)
    }

    /// Reads for `duration`; returns how many messages were new.
    fn poll_for(&mut self, duration: Duration) -> usize {
        let until = Instant::now() + duration;
        let mut n_new = 0;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            let Some(result) = self.consumer.poll(left.min(Duration::from_millis(50))) else {
                continue;
            };
            let message = match result {
                Ok(message) => message,
                // A broker just thawed (`resume`) or restarted: librdkafka reports the lost
                // connection and reconnects by itself.
                Err(rdkafka::error::KafkaError::MessageConsumption(
                    rdkafka::error::RDKafkaErrorCode::AllBrokersDown
                    | rdkafka::error::RDKafkaErrorCode::BrokerTransportFailure,
                )) => continue,
                Err(e) => panic!("reading {}: {e}", self.topic),
            };
            self.next.insert(message.partition(), message.offset() + 1);
            let headers = message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                h.value.map(|v| String::from_utf8_lossy(v).into_owned()),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let value = message.payload().unwrap_or_default();
            self.messages.push(Consumed {
                topic: message.topic().to_string(),
                partition: message.partition(),
                offset: message.offset(),
                key: message
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned()),
                headers,
                value: serde_json::from_slice(value).unwrap_or_else(|e| {
                    panic!(
                        "a message on {} is not JSON ({e}): {:?}",
                        self.topic,
                        String::from_utf8_lossy(value)
                    )
                }),
            });
            n_new += 1;
        }
        n_new
    }
}

async fn poll_reader(mut reader: TopicReader, duration: Duration) -> (TopicReader, usize) {
    tokio::task::spawn_blocking(move || {
        let n_new = reader.poll_for(duration);
        (reader, n_new)
    })
    .await
    .expect("reader task")
}

/// A `[[sinks]]` table of type kafka named `bus`, with `extra` lines appended.
pub fn sink_toml(bootstrap: &str, topic: &str, extra: &str) -> String {
    format!(
        "[[sinks]]\ntype = \"kafka\"\nname = \"bus\"\nbrokers = \"{bootstrap}\"\ntopic = \"{topic}\"\n{extra}"
    )
}

/// How many ids occur more than once, counting each extra copy.
pub fn duplicate_count(messages: &[Consumed]) -> usize {
    let mut seen = std::collections::HashSet::new();
    messages
        .iter()
        .filter(|m| !seen.insert(m.value["id"].as_str().unwrap_or("").to_string()))
        .count()
}

/// The harness's own check of [`Broker::start_transactional`] and
/// [`Broker::read_topic_committed`]: aborted records stay hidden, and the reader finishes once
/// its positions pass the ABORT markers that end both partitions (a message's offset never
/// reaches them), well before its 30 s deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_topic_committed_hides_aborted_records_and_ends_at_markers() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let broker = Broker::start_transactional().await;
    let topic = "lae-it.txn-support";
    broker.create_topic(topic, 2).await;
    let bootstrap = broker.bootstrap.clone();
    tokio::task::spawn_blocking(move || {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("transactional.id", "lae-it-txn-support")
            .set("log_level", "3")
            .create()
            .expect("an rdkafka transactional producer");
        let timeout = Duration::from_secs(10);
        producer
            .init_transactions(timeout)
            .expect("init_transactions");
        for (commit, ids) in [(true, ["c0", "c1"]), (false, ["a0", "a1"])] {
            producer.begin_transaction().expect("begin");
            for (partition, id) in (0..).zip(ids) {
                let payload = format!("{{\"id\":\"{id}\"}}");
                producer
                    .send(
                        BaseRecord::<(), str>::to(topic)
                            .partition(partition)
                            .payload(&payload),
                    )
                    .map_err(|(error, _)| error)
                    .expect("record queued");
            }
            // Serves the delivery reports, which abort (unlike commit) does not wait for.
            producer.flush(timeout).expect("records written");
            if commit {
                producer.commit_transaction(timeout).expect("commit");
            } else {
                producer.abort_transaction(timeout).expect("abort");
            }
        }
    })
    .await
    .expect("producer task");

    let started = Instant::now();
    let messages = broker.read_topic_committed(topic).await;
    let mut ids: Vec<&str> = messages
        .iter()
        .map(|m| m.value["id"].as_str().unwrap_or_default())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["c0", "c1"], "only the committed records");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "read_topic_committed took {:?}: it did not see its positions pass the markers",
        started.elapsed()
    );
}
