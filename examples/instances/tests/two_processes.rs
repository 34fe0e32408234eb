//! Two (or more) OS processes of the `cpc-instances` composition root on one PostgreSQL database, with every
//! key-value port on PostgreSQL (`CPC_KV_BACKEND=postgres`, no `REDIS_URL`): what one process does with a
//! lock, a rate limit, a session, a message or a job, the other sees.
//!
//! Each test makes a fresh database on the server at `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432`)
//! and fails when the server is missing. Every wait is bounded: a process that says nothing for
//! [`EVENT_TIMEOUT`] fails the test and is killed, and no test waits on its processes beyond [`TEST_TIMEOUT`].

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cpc_test_servers::TestDatabase;
use serde_json::Value;

/// The longest a process may take to print its next event (or to exit once it has printed its last).
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

/// The longest a whole test may wait on its processes, from the moment it asks for its database.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

thread_local! {
    /// When the running test's waits end (each test runs on its own thread, its runtime a current-thread one).
    static DEADLINE: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// A fresh database, and the start of the test's [`TEST_TIMEOUT`].
async fn database() -> TestDatabase {
    DEADLINE.set(Some(Instant::now() + TEST_TIMEOUT));
    TestDatabase::create().await
}

/// How long the next wait may last: [`EVENT_TIMEOUT`], or less when the test's deadline is nearer.
fn patience() -> Duration {
    DEADLINE
        .get()
        .map_or(EVENT_TIMEOUT, |deadline| deadline.saturating_duration_since(Instant::now()).min(EVENT_TIMEOUT))
}

/// Variables that would move a port off PostgreSQL, removed from every child's environment.
const FOREIGN_VARIABLES: [&str; 5] =
    ["REDIS_URL", "REDIS_CLUSTER_URLS", "SQLITE_PATH", "DATABASE_REPLICA_URLS", "CPC_DATA_DIR"];

/// One running `cpc-instances` process: its events (stdout lines, parsed), its stdin, its stderr.
struct Instance {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Instance {
    /// Starts `cpc-instances ARGS` on the database at `url`.
    fn start(db: &TestDatabase, args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cpc-instances"));
        for variable in FOREIGN_VARIABLES {
            command.env_remove(variable);
        }
        let mut child = command
            .args(args)
            .env("DATABASE_URL", db.url())
            .env("CPC_KV_BACKEND", "postgres")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cpc-instances starts");
        let (sender, events) = channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stdout_reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&stderr);
        let stderr_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            sink.lock().unwrap().push_str(&text);
        });
        Self {
            name: args.join(" "),
            stdin: child.stdin.take(),
            child,
            events,
            stderr,
            readers: vec![stdout_reader, stderr_reader],
        }
    }

    /// The next event, within [`patience`]; `None` when the process closed its stdout.
    fn next(&mut self) -> Option<Value> {
        let patience = patience();
        match self.events.recv_timeout(patience) {
            Ok(line) => Some(
                serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("`{}` printed a line that is not JSON ({e}): {line:?}", self.name)),
            ),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                panic!("`{}` printed nothing for {patience:?}; stderr: {}", self.name, self.stderr())
            }
        }
    }

    /// The next event, which must be `event`.
    fn expect(&mut self, event: &str) -> Value {
        let Some(next) = self.next() else {
            let status = self.wait();
            panic!("`{}` ended ({status}) before `{event}`; stderr: {}", self.name, self.stderr())
        };
        assert_eq!(next["event"], event, "`{}` printed {next} where `{event}` was expected", self.name);
        next
    }

    /// The first event, `wired`, checked to name PostgreSQL as the home of the key-value ports.
    fn wired(&mut self) -> Value {
        let wired = self.expect("wired");
        let ports = wired["ports"].as_str().unwrap();
        assert!(ports.contains("key-value ports on PostgreSQL"), "`{}` wired {ports}", self.name);
        wired
    }

    /// Writes a line to stdin: the signal `hold-lock`, `spend` and `work` wait for.
    fn go(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "go").unwrap();
        stdin.flush().unwrap();
    }

    /// Every event left, then the exit, which must be a success.
    fn finish(mut self) -> Vec<Value> {
        self.stdin = None;
        let mut rest = Vec::new();
        while let Some(event) = self.next() {
            rest.push(event);
        }
        let status = self.wait();
        assert!(status.success(), "`{}` failed ({status}); stderr: {}", self.name, self.stderr());
        rest
    }

    /// Waits for the process to exit, killing it after [`patience`].
    fn wait(&mut self) -> std::process::ExitStatus {
        let patience = patience();
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("`{}` did not exit within {patience:?}; stderr: {}", self.name, self.stderr());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Instance {
    /// A test that failed half-way leaves no process behind.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `args` to the end and returns every event after `wired`.
fn run(db: &TestDatabase, args: &[&str]) -> Vec<Value> {
    let mut instance = Instance::start(db, args);
    instance.wired();
    instance.finish()
}

/// The one event of a run, which must be `event`.
fn run_one(db: &TestDatabase, args: &[&str], event: &str) -> Value {
    let events = run(db, args);
    assert_eq!(events.len(), 1, "`{}` printed {events:?}", args.join(" "));
    assert_eq!(events[0]["event"], event, "`{}` printed {events:?}", args.join(" "));
    events[0].clone()
}

#[tokio::test]
async fn a_lock_held_by_one_process_excludes_the_other_until_released() {
    let db = database().await;
    let mut holder = Instance::start(&db, &["hold-lock", "report:2026"]);
    holder.wired();
    let held = holder.expect("acquired")["token"].as_u64().unwrap();

    // Neither an immediate try nor a 300 ms wait gets it while the other process holds it.
    run_one(&db, &["try-lock", "report:2026", "0"], "busy");
    run_one(&db, &["try-lock", "report:2026", "300"], "busy");
    // Another key is independent.
    run_one(&db, &["try-lock", "report:2027", "0"], "acquired");

    holder.go();
    assert_eq!(holder.expect("released")["token"].as_u64(), Some(held));
    assert!(holder.finish().is_empty());

    let first = run_one(&db, &["try-lock", "report:2026", "300"], "acquired")["token"].as_u64().unwrap();
    assert!(first > held, "the next holder's fencing token {first} must exceed {held}");
    let second = run_one(&db, &["try-lock", "report:2026", "0"], "acquired")["token"].as_u64().unwrap();
    assert!(second > first, "fencing tokens grow across processes: {second} after {first}");
}

#[tokio::test]
async fn a_lock_waited_for_is_taken_once_the_holder_releases() {
    let db = database().await;
    let mut holder = Instance::start(&db, &["hold-lock", "nightly"]);
    holder.wired();
    let held = holder.expect("acquired")["token"].as_u64().unwrap();

    // The waiter starts while the lock is held and waits up to 10 s; the holder lets go after it is wired.
    let mut waiter = Instance::start(&db, &["try-lock", "nightly", "10000"]);
    waiter.wired();
    std::thread::sleep(Duration::from_millis(200));
    holder.go();
    holder.expect("released");
    let taken = waiter.expect("acquired")["token"].as_u64().unwrap();
    assert!(taken > held, "{taken} must exceed {held}");
    assert!(holder.finish().is_empty());
    assert!(waiter.finish().is_empty());
}

#[tokio::test]
async fn two_processes_spend_from_one_rate_limit_exactly() {
    let db = database().await;
    // Each process alone would be allowed all 40 of its requests: only a shared bucket holds the total to 50.
    for policy in ["bucket", "window"] {
        let key = format!("api:{policy}");
        let mut spenders: Vec<Instance> =
            (0..2).map(|_| Instance::start(&db, &["spend", &key, "50", "40", policy])).collect();
        for spender in &mut spenders {
            spender.wired();
            spender.expect("ready");
        }
        for spender in &mut spenders {
            spender.go();
        }
        let (mut allowed, mut refused) = (0, 0);
        for mut spender in spenders {
            let spent = spender.expect("spent");
            allowed += spent["allowed"].as_u64().unwrap();
            refused += spent["refused"].as_u64().unwrap();
            assert!(spender.finish().is_empty());
        }
        assert_eq!((allowed, refused), (50, 30), "{policy}: two processes share one allowance of 50");

        // The allowance stays spent for a third process.
        let mut late = Instance::start(&db, &["spend", &key, "50", "1", policy]);
        late.wired();
        late.expect("ready");
        late.go();
        assert_eq!(late.expect("spent")["allowed"], 0, "{policy}");
        late.finish();
    }
}

#[tokio::test]
async fn a_session_made_in_one_process_is_read_in_the_other() {
    let db = database().await;
    let data = serde_json::json!({ "user": "ada", "roles": ["admin", "ops"], "visits": 3 });
    let made = run_one(&db, &["create-session", &data.to_string()], "session");
    let id = made["id"].as_str().unwrap();

    let read = run_one(&db, &["read-session", id], "session");
    assert_eq!(read["data"], data);
    assert_eq!(read["id"], id);

    // A well-formed id nobody created is missing, not an error.
    let unknown = "A".repeat(43);
    assert_ne!(unknown, id);
    run_one(&db, &["read-session", &unknown], "missing");
}

#[tokio::test]
async fn messages_published_in_one_process_arrive_in_the_others() {
    let db = database().await;
    let mut subscribers: Vec<Instance> = (0..2).map(|_| Instance::start(&db, &["subscribe", "orders", "3"])).collect();
    for subscriber in &mut subscribers {
        subscriber.wired();
        subscriber.expect("ready");
    }
    // Another channel's message reaches nobody here; then three on `orders`, in order.
    run(&db, &["publish", "invoices", "not for you"]);
    let published = run(&db, &["publish", "orders", "first", "second", "third — ünïcode"]);
    assert_eq!(published.len(), 3, "{published:?}");
    for event in &published {
        assert_eq!(event["event"], "published");
    }

    for subscriber in subscribers {
        let mut subscriber = subscriber;
        let received: Vec<Value> = (0..3).map(|_| subscriber.expect("message")["message"].clone()).collect();
        assert_eq!(received, ["first", "second", "third — ünïcode"]);
        assert!(subscriber.finish().is_empty());
    }
}

#[tokio::test]
async fn jobs_enqueued_by_one_process_are_each_worked_once_by_two_others() {
    let db = database().await;
    let enqueued = run(&db, &["enqueue", "thumbnails", "200"]);
    assert_eq!(enqueued.len(), 200);
    let ids: BTreeSet<String> = enqueued.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 200, "every job has its own id");

    let mut workers: Vec<Instance> = (0..2).map(|_| Instance::start(&db, &["work", "thumbnails", "2"])).collect();
    for worker in &mut workers {
        worker.wired();
        worker.expect("ready");
    }
    for worker in &mut workers {
        worker.go();
    }
    let mut worked: Vec<BTreeSet<String>> = Vec::new();
    for worker in workers {
        let events = worker.finish();
        let (last, jobs) = events.split_last().expect("a worker reports `empty` at the end");
        assert_eq!(last["event"], "empty");
        assert_eq!(last["worked"].as_u64(), Some(jobs.len() as u64));
        let mine: BTreeSet<String> = jobs
            .iter()
            .map(|job| {
                assert_eq!(job["event"], "worked");
                assert_eq!(job["attempt"], 1, "no job is delivered twice: {job}");
                job["id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(mine.len(), jobs.len(), "a worker got a job twice");
        worked.push(mine);
    }
    let (b, c) = (&worked[0], &worked[1]);
    assert!(!b.is_empty() && !c.is_empty(), "both workers took part: {} and {}", b.len(), c.len());
    assert!(b.is_disjoint(c), "jobs worked by both: {:?}", b.intersection(c).collect::<Vec<_>>());
    let all: BTreeSet<String> = b.union(c).cloned().collect();
    assert_eq!(all, ids, "every enqueued job was worked, and nothing else");

    let stats = run_one(&db, &["stats", "thumbnails"], "stats");
    for count in ["pending", "in_flight", "delayed", "dead"] {
        assert_eq!(stats[count], 0, "{count}: {stats}");
    }
}

#[tokio::test]
async fn processes_starting_at_once_migrate_one_database_safely() {
    let db = database().await;
    let instances: Vec<Instance> = (0..4).map(|_| Instance::start(&db, &["ping"])).collect();
    for mut instance in instances {
        instance.wired();
        assert!(instance.finish().is_empty());
    }
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations/postgres"))
        .unwrap()
        .filter(|entry| entry.as_ref().is_ok_and(|e| e.path().join("up.sql").is_file()))
        .count();
    let applied: i64 =
        db.connect().await.query_one("SELECT count(*) FROM __diesel_schema_migrations", &[]).await.unwrap().get(0);
    assert_eq!(usize::try_from(applied).unwrap(), migrations, "every migration applied exactly once");
}
