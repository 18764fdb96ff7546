//! Child processes of the `ticketing` binary for the fault suites (on Kafka, and the killed
//! driver on an embedded directory).

#![allow(dead_code)] // each suite uses part of it

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A `ticketing` process and where its logs go.
pub struct Process {
    pub name: String,
    pub child: Child,
    pub stdout: mpsc::Receiver<String>,
    pub stderr_log: PathBuf,
}

/// Starts `ticketing` with `args`; its stderr goes to `<dir>/<name>.<n>.log`.
pub fn start(name: &str, dir: &Path, args: &[String]) -> Process {
    start_logging(name, dir, args, "warn,tramline::runtime=info")
}

/// [`start`], logging what `rust_log` selects.
pub fn start_logging(name: &str, dir: &Path, args: &[String], rust_log: &str) -> Process {
    let attempt = (0..).find(|n| !dir.join(format!("{name}.{n}.log")).exists()).expect("a free log name");
    let stderr_log = dir.join(format!("{name}.{attempt}.log"));
    let stderr = std::fs::File::create(&stderr_log).expect("a log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ticketing"))
        .args(args)
        // The same instance id on restart: the new process fences the killed one's transactions.
        .env("TRAMLINE_INSTANCE_ID", format!("fault-{name}"))
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("ticketing starts");
    let stdout = lines(child.stdout.take().expect("piped stdout"));
    Process { name: name.to_owned(), child, stdout, stderr_log }
}

fn lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

impl Process {
    /// Waits for the `ready:` line of a process that serves modules.
    pub fn wait_ready(&mut self, patience: Duration) {
        let deadline = Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) if line.starts_with("ready:") => return,
                Ok(_) => {}
                Err(_) => panic!("{} did not get ready within {patience:?}; log:\n{}", self.name, self.log_tail()),
            }
        }
    }

    /// Waits until its log holds `count` lines that contain `text`.
    pub fn wait_log(&mut self, text: &str, count: usize, patience: Duration) {
        let deadline = Instant::now() + patience;
        while self.log_lines(text) < count {
            assert!(
                self.running(),
                "{} ended before it logged {text:?} {count} times; log:\n{}",
                self.name,
                self.log_tail()
            );
            assert!(
                Instant::now() < deadline,
                "{} did not log {text:?} {count} times within {patience:?}; log:\n{}",
                self.name,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many lines of its log contain `text`.
    pub fn log_lines(&self, text: &str) -> usize {
        std::fs::read_to_string(&self.stderr_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(text))
            .count()
    }

    /// Kills it with SIGKILL: no shutdown, no commit, nothing flushed.
    pub fn kill(&mut self) {
        self.child.kill().expect("killed");
        self.child.wait().expect("reaped");
    }

    /// Asks it to stop (SIGTERM), as a supervisor or Ctrl-C would.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Freezes it (SIGSTOP): it keeps its connections and state but does nothing.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a paused process go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "cannot send SIG{name} to {}", self.name);
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("a status").is_none()
    }

    /// Waits for it to exit, at most `patience`, and returns its status and the last line it
    /// printed.
    pub fn finish(&mut self, patience: Duration) -> (ExitStatus, Option<String>) {
        let deadline = Instant::now() + patience;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("a status") {
                break status;
            }
            if Instant::now() > deadline {
                self.child.kill().ok();
                panic!("{} did not finish within {patience:?}; log:\n{}", self.name, self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let last = std::iter::from_fn(|| self.stdout.recv_timeout(Duration::from_secs(5)).ok()).last();
        (status, last)
    }

    /// The end of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
        let start = log.len().saturating_sub(4000);
        let start = (start..log.len()).find(|i| log.is_char_boundary(*i)).unwrap_or(log.len());
        log[start..].to_owned()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory for one run's logs and mails, kept under `target/tmp` for a look after a failure.
pub fn run_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("a run directory");
    dir
}

/// The arguments every process of one run shares.
/// A namespace of their own on the shared broker: no other run's records, no other run's groups.
pub fn shared_args(bootstrap: &str, mail_dir: &Path, seed: u64) -> Vec<String> {
    let namespace = format!("test-{}", uuid::Uuid::now_v7().simple());
    let mut args: Vec<String> = vec!["--brokers".into(), bootstrap.into(), "--namespace".into(), namespace];
    args.push("--mail-dir".into());
    args.push(mail_dir.display().to_string());
    args.extend(["--seed".into(), seed.to_string(), "--decline-percent".into(), "10".into()]);
    args
}

/// Checks a driver's JSON summary: every invariant of the run, and that it placed `orders`.
pub fn check_summary(last_line: Option<String>, orders: u64) -> Value {
    let line = last_line.expect("the driver printed a summary");
    let summary: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON summary ({e}): {line}"));
    let figure = |name: &str| summary[name].as_i64().unwrap_or_else(|| panic!("no `{name}` in {summary}"));
    assert_eq!(figure("reservations"), orders as i64, "every order placed: {summary}");
    assert_eq!(figure("orders_placed_before"), 0, "a namespace of its own: {summary}");
    assert_eq!(figure("orders_placed") - figure("orders_placed_before"), orders as i64, "{summary}");
    assert_eq!(figure("tickets_issued"), figure("orders_confirmed"), "a ticket per confirmed order: {summary}");
    assert_eq!(figure("orders_confirmed"), figure("payments_completed"), "{summary}");
    assert_eq!(figure("orders_confirmed") + figure("orders_cancelled"), figure("orders_placed"), "{summary}");
    assert_eq!(figure("payments_cancelled"), figure("payments_declined_expected"), "{summary}");
    assert_eq!(figure("orders_with_several_tickets"), 0, "no ticket twice: {summary}");
    assert_eq!(figure("tickets_mailed"), figure("tickets_issued") - figure("tickets_issued_before"), "{summary}");
    assert_eq!(figure("accounting_revenue"), figure("confirmed_revenue"), "{summary}");
    assert_eq!(figure("dead_letters"), 0, "{summary}");
    summary
}
