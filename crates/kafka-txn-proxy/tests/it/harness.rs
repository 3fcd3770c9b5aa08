//! A tansu broker of each test's own, with or without a `TxnProxy` in front, and the rdkafka
//! producers and readers the tests drive it with.
//!
//! Tests are plain `#[test]`s that block on rdkafka; the proxy runs on a tokio runtime the
//! harness owns, so a blocked test thread never starves it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_txn_proxy::TxnProxy;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// How long any single broker round trip of a test may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The producers' `transaction.timeout.ms`: small, so that a test can wait it out to see
/// whether the coordinator aborts a transaction whose producer died.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(3);

/// A tansu process and, when proxied, the proxy clients reach it through.
pub struct Cluster {
    /// What clients get as `bootstrap.servers`: the proxy's address when proxied.
    pub bootstrap: String,
    tansu: Tansu,
    // Dropped before the runtime that serves it (fields drop in order).
    _proxy: Option<TxnProxy>,
    runtime: tokio::runtime::Runtime,
}

struct Tansu {
    child: Child,
    bin: PathBuf,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Cluster {
    /// tansu alone, advertising itself.
    pub fn direct() -> Cluster {
        let runtime = runtime();
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let tansu = Tansu::start(addr, addr);
        Cluster {
            bootstrap: addr.to_string(),
            tansu,
            _proxy: None,
            runtime,
        }
    }

    /// tansu behind a `TxnProxy`: tansu listens on a port of its own and advertises the
    /// proxy's, so every client connection (after Metadata and FindCoordinator too) goes
    /// through the proxy.
    pub fn proxied() -> Cluster {
        let runtime = runtime();
        let bound = runtime
            .block_on(TxnProxy::bind())
            .expect("the proxy binds a loopback port");
        let proxy_addr = bound.local_addr().expect("the proxy's address");
        let tansu_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let tansu = Tansu::start(tansu_addr, proxy_addr);
        let proxy = {
            let _entered = runtime.enter();
            bound.serve(tansu_addr).expect("the proxy serves")
        };
        assert_eq!(proxy.local_addr(), proxy_addr);
        Cluster {
            bootstrap: proxy_addr.to_string(),
            tansu,
            _proxy: Some(proxy),
            runtime,
        }
    }

    /// Creates a one-partition topic (through tansu's own command line, straight to tansu).
    pub fn create_topic(&self, topic: &str) {
        let output = Command::new(&self.tansu.bin)
            .args(["topic", "create", topic, "--partitions", "1"])
            .args(["--broker", &format!("tcp://{}", self.tansu.addr)])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("tansu topic create runs");
        assert!(
            output.status.success(),
            "tansu topic create {topic} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A transactional producer with `transactional.id = id`, its transactions initialised
    /// (which fences an earlier producer of that id and aborts its open transaction).
    pub fn transactional_producer(&self, id: &str) -> FutureProducer {
        self.transactional_producer_with(id, &[])
    }

    /// [`Cluster::transactional_producer`] with more librdkafka properties.
    pub fn transactional_producer_with(
        &self,
        id: &str,
        properties: &[(&str, &str)],
    ) -> FutureProducer {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("transactional.id", id)
            .set(
                "transaction.timeout.ms",
                TRANSACTION_TIMEOUT.as_millis().to_string(),
            )
            .set("log_level", "3");
        for (name, value) in properties {
            config.set(*name, *value);
        }
        let producer: FutureProducer = config.create().expect("an rdkafka transactional producer");
        producer
            .init_transactions(TIMEOUT)
            .unwrap_or_else(|e| panic!("init_transactions({id}): {e}\n{}", self.log()));
        producer
    }

    /// A producer without transactions (or idempotence).
    pub fn plain_producer(&self) -> FutureProducer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("enable.idempotence", "false")
            .set("log_level", "3")
            .create()
            .expect("an rdkafka producer")
    }

    /// Sends `values` to partition 0 of `topic` and waits for each to be written; returns
    /// their offsets.
    pub fn send(&self, producer: &FutureProducer, topic: &str, values: &[&str]) -> Vec<i64> {
        values
            .iter()
            .map(|value| {
                let record = FutureRecord::<(), str>::to(topic)
                    .partition(0)
                    .payload(value);
                let delivery = self
                    .runtime
                    .block_on(producer.send(record, TIMEOUT))
                    .unwrap_or_else(|(e, _)| panic!("sending {value} to {topic}: {e}"));
                delivery.offset
            })
            .collect()
    }

    /// Sends `values` to partition 0 of `topic` all at once (as many in flight as the
    /// producer allows) and waits until every one is written; returns their offsets.
    pub fn send_all(&self, producer: &FutureProducer, topic: &str, values: &[String]) -> Vec<i64> {
        let deliveries: Vec<_> = values
            .iter()
            .map(|value| {
                let record = FutureRecord::<(), str>::to(topic)
                    .partition(0)
                    .payload(value);
                producer
                    .send_result(record)
                    .unwrap_or_else(|(e, _)| panic!("queueing {value} for {topic}: {e}"))
            })
            .collect();
        self.runtime.block_on(async {
            let mut offsets = Vec::with_capacity(deliveries.len());
            for delivery in deliveries {
                let delivery = delivery
                    .await
                    .expect("a delivery report")
                    .unwrap_or_else(|(e, _)| panic!("sending to {topic}: {e}"));
                offsets.push(delivery.offset);
            }
            offsets
        })
    }

    /// Every value a consumer with `isolation.level = isolation` can read from partition 0
    /// of `topic` now: read until nothing new comes for `quiet`.
    pub fn read(&self, topic: &str, isolation: Isolation, quiet: Duration) -> Vec<Read> {
        let consumer = self.consumer(isolation);
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(topic, 0, Offset::Beginning)
            .expect("partition added");
        consumer.assign(&assignment).expect("assign");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut read = Vec::new();
        let mut last_news = Instant::now();
        while last_news.elapsed() < quiet {
            assert!(Instant::now() < deadline, "reading {topic} took over 60 s");
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                let message = message.unwrap_or_else(|e| panic!("reading {topic}: {e}"));
                read.push(Read {
                    offset: message.offset(),
                    value: String::from_utf8_lossy(message.payload().unwrap_or_default())
                        .into_owned(),
                });
                last_news = Instant::now();
            }
        }
        read
    }

    /// The latest offset of partition 0 of `topic` as a consumer with `isolation` asks for
    /// it (ListOffsets, timestamp -1, with that isolation level).
    pub fn latest_offset(&self, topic: &str, isolation: Isolation) -> i64 {
        let (_, high) = self
            .consumer(isolation)
            .fetch_watermarks(topic, 0, TIMEOUT)
            .unwrap_or_else(|e| panic!("watermarks of {topic}: {e}"));
        high
    }

    fn consumer(&self, isolation: Isolation) -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", "kafka-txn-proxy-tests")
            .set("enable.auto.commit", "false")
            .set("isolation.level", isolation.as_str())
            .set("log_level", "3")
            .create()
            .expect("an rdkafka consumer")
    }

    /// tansu's output so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.tansu.log).unwrap_or_default()
    }
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub offset: i64,
    pub value: String,
}

/// The values of `read`, in order.
pub fn values(read: &[Read]) -> Vec<&str> {
    read.iter().map(|r| r.value.as_str()).collect()
}

/// A consumer's `isolation.level`.
#[derive(Debug, Clone, Copy)]
pub enum Isolation {
    ReadCommitted,
    ReadUncommitted,
}

impl Isolation {
    fn as_str(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read_committed",
            Isolation::ReadUncommitted => "read_uncommitted",
        }
    }
}

impl Tansu {
    /// Starts tansu listening on `listen` and advertising `advertised`, and waits until it
    /// answers a topic listing.
    fn start(listen: SocketAddr, advertised: SocketAddr) -> Tansu {
        let bin = tansu_bin();
        let log = std::env::temp_dir().join(format!(
            "kafka-txn-proxy-tansu-{}-{}.log",
            std::process::id(),
            listen.port()
        ));
        let file = std::fs::File::create(&log).expect("tansu log file");
        let child = Command::new(&bin)
            .args(["broker", "--listener-url", &format!("tcp://{listen}")])
            .args(["--advertised-listener-url", &format!("tcp://{advertised}")])
            .args(["--storage-engine", "memory://tansu/"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut tansu = Tansu {
            child,
            bin,
            addr: listen,
            log,
        };
        tansu.wait_ready();
        tansu
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "tansu exited ({status}): {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            let listed = Command::new(&self.bin)
                .args(["topic", "list", "--broker", &format!("tcp://{}", self.addr)])
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if listed {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "tansu did not answer on {} within {TIMEOUT:?}: {}",
            self.addr,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

/// The tansu binary, from `TANSU_BIN`.
fn tansu_bin() -> PathBuf {
    let Some(path) = std::env::var_os("TANSU_BIN") else {
        panic!(
            "TANSU_BIN is not set: these tests need a real tansu 0.6 broker; run ./scripts/test.sh, which installs it (or export TANSU_BIN=/path/to/tansu)"
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

/// A free loopback port (tansu cannot bind port 0).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

fn runtime() -> tokio::runtime::Runtime {
    // The proxy logs why it closes a connection; the test writer shows it with a failure.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "kafka_txn_proxy=debug".into()),
        )
        .with_test_writer()
        .try_init();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
