//! The backend conformance suite (`tramline::testing::conformance`) against every adapter built
//! in: the memory log always, the embedded log with the `embedded` feature.

mod memory {
    tramline::conformance_tests!(tramline::testing::conformance::MemoryTarget);
}

/// A namespace over a log behaves as a log of its own.
mod namespaced {
    use std::sync::Arc;

    use tramline::MemoryLog;
    use tramline::log::{EventLog, Namespaced};
    use tramline::testing::conformance::ConformanceTarget;

    struct Tenant;

    #[async_trait::async_trait]
    impl ConformanceTarget for Tenant {
        async fn fresh(&self) -> Arc<dyn EventLog> {
            Arc::new(Namespaced::new(MemoryLog::shared(), "tenant").expect("a namespace"))
        }

        async fn reopen(&self, log: Arc<dyn EventLog>) -> Option<Arc<dyn EventLog>> {
            Some(log)
        }
    }

    tramline::conformance_tests!(Tenant);
}

#[cfg(feature = "embedded")]
mod embedded {
    use std::sync::Arc;

    use bytes::Bytes;
    use tramline::log::embedded::{Durability, EmbeddedLog, EmbeddedOptions};
    use tramline::log::{EventLog, Headers, LogError, OutRecord, TopicPartition, TopicSpec};
    use tramline::testing::conformance::{self, ConformanceTarget, EmbeddedTarget};

    /// The embedded target in a temporary directory that goes with it.
    struct Temp {
        target: EmbeddedTarget,
        _dir: tempfile::TempDir,
    }

    fn temp() -> Temp {
        temp_with(EmbeddedOptions::default())
    }

    fn temp_with(options: EmbeddedOptions) -> Temp {
        let dir = tempfile::tempdir().expect("a temporary directory");
        Temp { target: EmbeddedTarget::with_options(dir.path(), options), _dir: dir }
    }

    #[async_trait::async_trait]
    impl ConformanceTarget for Temp {
        async fn fresh(&self) -> Arc<dyn EventLog> {
            self.target.fresh().await
        }

        async fn reopen(&self, log: Arc<dyn EventLog>) -> Option<Arc<dyn EventLog>> {
            self.target.reopen(log).await
        }
    }

    tramline::conformance_tests!(temp());

    /// The whole suite once more with `synchronous=FULL`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_durability_passes_the_suite() {
        conformance::run_all(&temp_with(EmbeddedOptions::default().with_durability(Durability::Full))).await;
    }

    fn record(topic: &str, key: Option<&str>, value: Option<&str>) -> OutRecord {
        OutRecord {
            topic: Arc::from(topic),
            partition: None,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: Headers::new(),
            timestamp: None,
        }
    }

    /// A write's input positions never show (through `committed`) before its outputs do
    /// (through `end_offset`): a reader that trusts a committed position finds what it produced.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_committed_position_never_shows_before_its_outputs() {
        use tramline::log::StartFrom;
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path()).unwrap();
        log.create_topic(&TopicSpec::keep("in", 1)).await.unwrap();
        log.create_topic(&TopicSpec::keep("out", 1)).await.unwrap();
        const INPUTS: u64 = 2000;
        log.append((0..INPUTS).map(|i| record("in", Some("k"), Some(&i.to_string()))).collect())
            .await
            .unwrap();
        let (input, output) = (TopicPartition::new("in", 0), TopicPartition::new("out", 0));
        let worker = tokio::spawn({
            let (log, input) = (log.clone(), input.clone());
            async move {
                let mut member = log.join("g", &["in"], StartFrom::Beginning).await.unwrap();
                let mut done = 0;
                while done < INPUTS {
                    for polled in member.poll(1, std::time::Duration::from_millis(100)).await.unwrap().records {
                        let next = vec![(input.clone(), polled.offset + 1)];
                        member.commit(vec![record("out", Some("k"), Some("o"))], next).await.unwrap();
                        done += 1;
                    }
                }
            }
        });
        let (mut checks, mut ahead) = (0, 0);
        while !worker.is_finished() {
            let committed = log.committed("g", &input).await.unwrap().unwrap_or(0);
            let end = log.end_offset(&output).await.unwrap();
            checks += 1;
            ahead += u32::from(end < committed);
        }
        worker.await.unwrap();
        assert!(checks > 100, "the checks raced the writes: {checks}");
        assert_eq!(ahead, 0, "{ahead} of {checks} checks saw a position before its outputs");
    }

    /// An open log compacts every interval, not only when it opens: a long-running process does
    /// not keep a superseded key (a forgotten subject's) until its next start.
    #[tokio::test]
    async fn an_open_log_compacts_every_interval() {
        let dir = tempfile::tempdir().unwrap();
        let every = EmbeddedOptions::default().with_compaction_interval(Some(std::time::Duration::from_millis(20)));
        let log = EmbeddedLog::open_with(dir.path(), every).unwrap();
        log.create_topic(&TopicSpec::compact("keys", 1)).await.unwrap();
        log.append(vec![record("keys", Some("subject"), Some("key")), record("keys", Some("subject"), None)])
            .await
            .unwrap();
        let tp = TopicPartition::new("keys", 0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while log.read(&tp, 0, 10).await.unwrap().len() > 1 {
            assert!(std::time::Instant::now() < deadline, "the superseded key is still there");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let left = log.read(&tp, 0, 10).await.unwrap();
        assert_eq!((left[0].offset, left[0].value.is_none()), (1, true), "the tombstone stays");
    }

    /// As Kafka after `delete.retention.ms`: a tombstone stays while a reader that is behind
    /// may still need it, then goes with its key. Its age is that of the compaction marks.
    #[tokio::test]
    async fn a_tombstone_goes_after_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let write = |log: EmbeddedLog| async move {
            log.create_topic(&TopicSpec::compact("keys", 1)).await.unwrap();
            let records = [("gone", Some("k1")), ("gone", None), ("kept", Some("k2"))];
            log.append(records.iter().map(|(key, value)| record("keys", Some(key), *value)).collect())
                .await
                .unwrap();
            log
        };
        let offsets = |log: EmbeddedLog| async move {
            let read = log.read(&TopicPartition::new("keys", 0), 0, 10).await.unwrap();
            read.iter().map(|r| r.offset).collect::<Vec<_>>()
        };

        let log = write(EmbeddedLog::open(dir.path().join("kafka-default")).unwrap()).await;
        assert_eq!(log.compact().await.unwrap(), 1, "the superseded record");
        assert_eq!(log.compact().await.unwrap(), 0, "the tombstone stays for a day");
        assert_eq!(offsets(log).await, [1, 2]);

        let none = EmbeddedOptions::default().with_tombstone_retention(Some(std::time::Duration::ZERO));
        let log = write(EmbeddedLog::open_with(dir.path().join("no-retention"), none.clone()).unwrap()).await;
        // The first compaction marks where the partition ends; the tombstone is below that
        // mark at the next.
        assert_eq!(log.compact().await.unwrap(), 1, "the superseded record");
        assert_eq!(offsets(log.clone()).await, [1, 2]);
        log.append(vec![record("keys", Some("kept"), None)]).await.unwrap();
        assert_eq!(log.compact().await.unwrap(), 2, "the old tombstone, and the record the new one supersedes");
        assert_eq!(offsets(log.clone()).await, [3], "the new tombstone is younger than the last mark");
        assert_eq!(log.compact().await.unwrap(), 0, "a partition's last record stays: it holds the end");
        log.append(vec![record("keys", Some("gone"), Some("k3"))]).await.unwrap();
        assert_eq!(log.compact().await.unwrap(), 1);
        assert_eq!(offsets(log.clone()).await, [4]);
        drop(log);
        let log = EmbeddedLog::open_with(dir.path().join("no-retention"), none).unwrap();
        let next = log.append(vec![record("keys", Some("kept"), Some("k4"))]).await.unwrap();
        assert_eq!(next[0].offset, 5, "offsets are never given twice");
        drop(log);

        let forever = EmbeddedOptions::default().with_tombstone_retention(None);
        let log = write(EmbeddedLog::open_with(dir.path().join("forever"), forever).unwrap()).await;
        for _ in 0..3 {
            log.compact().await.unwrap();
        }
        assert_eq!(offsets(log).await, [1, 2]);
    }

    /// As Kafka's `cleanup.policy=compact,delete`: records older than the retention, by their
    /// timestamp, go at the next compaction, whatever their key; a partition's last record
    /// stays. The retention survives a restart, and a reader sees the policy.
    #[tokio::test]
    async fn records_older_than_the_retention_expire() {
        let dir = tempfile::tempdir().unwrap();
        let hour = std::time::Duration::from_secs(3600);
        let now = jiff::Timestamp::now().as_millisecond();
        let at = |key: &str, minutes_ago: i64| OutRecord {
            timestamp: Some(now - minutes_ago * 60_000),
            ..record("rows", Some(key), Some("v"))
        };
        let log = EmbeddedLog::open(dir.path()).unwrap();
        log.create_topic(&TopicSpec::compact_and_expire("rows", 1, hour)).await.unwrap();
        let old = [at("a", 120), at("b", 90), at("c", 30), at("b", 10)];
        log.append(old.into_iter().collect()).await.unwrap();
        drop(log);
        let log = EmbeddedLog::open_with(dir.path(), EmbeddedOptions::default().with_compact_on_open(false)).unwrap();
        let offsets = |log: EmbeddedLog| async move {
            let read = log.read(&TopicPartition::new("rows", 0), 0, 10).await.unwrap();
            read.iter().map(|r| r.offset).collect::<Vec<_>>()
        };
        assert_eq!(log.compact().await.unwrap(), 2, "`a`, older than an hour, and `b`, superseded");
        assert_eq!(offsets(log.clone()).await, [2, 3]);
        log.append(vec![at("d", 180)]).await.unwrap();
        assert_eq!(log.compact().await.unwrap(), 0, "a partition's last record stays, however old");
        log.append(vec![at("e", 0)]).await.unwrap();
        assert_eq!(log.compact().await.unwrap(), 1);
        assert_eq!(offsets(log.clone()).await, [2, 3, 5]);
        let refused = log.create_topic(&TopicSpec::compact("rows", 1)).await;
        assert!(matches!(refused, Err(LogError::CleanupMismatch { .. })), "{refused:?}");
        drop(log);
        let reader = EmbeddedLog::open_read_only(dir.path()).unwrap();
        let refused = reader.create_topic(&TopicSpec::compact("rows", 1)).await;
        assert!(matches!(refused, Err(LogError::CleanupMismatch { .. })), "a reader knows the policy: {refused:?}");
    }

    #[tokio::test]
    async fn a_second_open_of_the_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = EmbeddedLog::open(dir.path()).expect("first open");
        let second = EmbeddedLog::open(dir.path()).expect_err("a second open must fail");
        let message = second.to_string();
        assert!(matches!(second, LogError::Backend(_)), "{second:?}");
        assert!(message.contains("already open") && message.contains("tramline.lock"), "{message}");
        assert!(message.contains(&std::process::id().to_string()), "names the holder: {message}");
        drop(first);
        EmbeddedLog::open(dir.path()).expect("open again once the first is closed");
    }

    #[tokio::test]
    async fn deleting_the_lock_file_does_not_let_a_second_open_in() {
        let dir = tempfile::tempdir().unwrap();
        let first = EmbeddedLog::open(dir.path()).expect("first open");
        // It looks stale to someone: they delete it.
        std::fs::remove_file(dir.path().join("tramline.lock")).unwrap();
        let second = EmbeddedLog::open(dir.path()).expect_err("a second open must still fail");
        assert!(second.to_string().contains("already open"), "{second}");
        drop(first);
        EmbeddedLog::open(dir.path()).expect("open again once the first is closed");
    }

    #[tokio::test]
    async fn a_reader_opens_the_directory_beside_its_writer_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let writer = EmbeddedLog::open(dir.path()).unwrap();
        writer.create_topic(&TopicSpec::keep("t", 1)).await.unwrap();
        writer.append(vec![record("t", Some("a"), Some("1"))]).await.unwrap();
        let tp = TopicPartition::new("t", 0);

        let reader = EmbeddedLog::open_read_only(dir.path()).expect("opened beside the writer");
        assert_eq!(reader.read(&tp, 0, 10).await.unwrap().len(), 1);
        writer.append(vec![record("t", Some("b"), Some("2"))]).await.unwrap();
        assert_eq!(reader.end_offset(&tp).await.unwrap(), 1, "the topics as they were when it opened");
        let later = EmbeddedLog::open_read_only(dir.path()).unwrap();
        assert_eq!(later.read(&tp, 0, 10).await.unwrap().len(), 2);

        reader.create_topic(&TopicSpec::keep("t", 1)).await.expect("an existing topic checks");
        let refused = [
            reader.append(vec![record("t", Some("c"), Some("3"))]).await.map(|_| ()),
            reader.create_topic(&TopicSpec::keep("u", 1)).await,
            reader.join("g", &["t"], tramline::log::StartFrom::Beginning).await.map(|_| ()),
            reader.compact().await.map(|_| ()),
        ];
        for error in refused {
            let message = error.expect_err("refused").to_string();
            assert!(message.contains("opened read-only"), "{message}");
        }
        assert_eq!(writer.end_offset(&tp).await.unwrap(), 2, "nothing written");

        let missing = dir.path().join("nothing-here");
        let error = EmbeddedLog::open_read_only(&missing).expect_err("no log there");
        assert!(error.to_string().contains("holds no embedded log"), "{error}");
        assert!(!missing.exists(), "nothing made");
    }

    #[tokio::test]
    async fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-directory");
        std::fs::write(&file, b"x").unwrap();
        let error = EmbeddedLog::open(&file).expect_err("a file is not a log directory");
        let message = error.to_string();
        assert!(message.contains(&*file.to_string_lossy()) && message.contains("not a directory"), "{message}");
    }

    /// The keys of forgotten subjects leave no byte in the files once compaction removed them.
    /// `secure_delete` zeroes a deleted record, but not the old copies of the records a page
    /// rebalance moved, and 7 of these 3,000 keys stayed in unused space of pages: the log
    /// vacuums the database after a compaction that removed keys.
    #[tokio::test]
    async fn keys_compacted_away_leave_no_byte_in_the_files() {
        use tramline::privacy::KEYS_TOPIC;
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path()).unwrap();
        log.create_topic(&TopicSpec::compact(KEYS_TOPIC, 1)).await.unwrap();
        log.create_topic(&TopicSpec::compact("filler", 1)).await.unwrap();
        let secret = |i: u64| -> Vec<u8> {
            (0..4u64).flat_map(|j| (i * 4 + j + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes()).collect()
        };
        let bytes = |topic: &str, key: String, value: Option<Vec<u8>>| OutRecord {
            topic: Arc::from(topic),
            partition: Some(0),
            key: Some(key.into_bytes().into()),
            value: value.map(Into::into),
            headers: Headers::new(),
            timestamp: None,
        };
        let secrets = 3_000u64;
        for i in 0..secrets {
            // Records of varied sizes around each key, most superseded: pages fill and split.
            let mut records: Vec<_> = (0..6u64)
                .map(|j| {
                    let key = if j == 5 { format!("u{i}") } else { "dup".into() };
                    bytes("filler", key, Some(vec![b'x'; 100 + ((i * 7 + j) * 2_654_435_761 % 800) as usize]))
                })
                .collect();
            records.push(bytes(KEYS_TOPIC, format!("s{i}"), Some(secret(i))));
            log.append(records).await.unwrap();
        }
        log.compact().await.unwrap();
        let tombstones: Vec<_> = (0..secrets).map(|i| bytes(KEYS_TOPIC, format!("s{i}"), None)).collect();
        for chunk in tombstones.chunks(500) {
            log.append(chunk.to_vec()).await.unwrap();
        }
        log.compact().await.unwrap();
        drop(log);
        let all: std::collections::HashSet<Vec<u8>> = (0..secrets).map(secret).collect();
        let starts: std::collections::HashSet<&[u8]> = all.iter().map(|s| &s[..8]).collect();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let file = std::fs::read(&path).unwrap();
            let left = file.windows(32).filter(|w| starts.contains(&w[..8]) && all.contains(*w)).count();
            assert_eq!(left, 0, "{left} of {secrets} keys left in {}", path.display());
        }
    }

    #[tokio::test]
    async fn compaction_on_open_keeps_the_latest_record_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path()).unwrap();
        log.create_topic(&TopicSpec::compact("entity.state", 1)).await.unwrap();
        log.create_topic(&TopicSpec::keep("entity.events", 1)).await.unwrap();
        let records = vec![
            record("entity.state", Some("a"), Some("a1")),
            record("entity.state", Some("b"), Some("b1")),
            record("entity.state", Some("a"), Some("a2")),
            record("entity.state", Some("c"), Some("c1")),
            record("entity.state", Some("c"), None),
            record("entity.state", Some("a"), Some("a3")),
            record("entity.events", Some("a"), Some("e1")),
            record("entity.events", Some("a"), Some("e2")),
        ];
        log.append(records).await.unwrap();
        drop(log);

        let log = EmbeddedLog::open(dir.path()).unwrap();
        let state = TopicPartition::new("entity.state", 0);
        let kept: Vec<(u64, Option<Bytes>)> =
            log.read(&state, 0, 100).await.unwrap().into_iter().map(|r| (r.offset, r.value)).collect();
        let expected: Vec<(u64, Option<Bytes>)> =
            vec![(1, Some(Bytes::from_static(b"b1"))), (4, None), (5, Some(Bytes::from_static(b"a3")))];
        assert_eq!(kept, expected, "the latest per key and tombstones stay; offsets do not move");
        assert_eq!(log.end_offset(&state).await.unwrap(), 6);
        let events = TopicPartition::new("entity.events", 0);
        assert_eq!(log.read(&events, 0, 100).await.unwrap().len(), 2, "a kept topic is not compacted");
        assert_eq!(log.compact().await.unwrap(), 0, "nothing more to compact");
        let position = log.append(vec![record("entity.state", Some("a"), Some("a4"))]).await.unwrap();
        assert_eq!(position[0].offset, 6);
    }

    fn tables(db: &rusqlite::Connection) -> Vec<String> {
        let mut select = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").unwrap();
        select.query_map([], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    }

    #[tokio::test]
    async fn another_applications_database_is_refused_and_left_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sqlite3");
        rusqlite::Connection::open(&path).unwrap().execute_batch("CREATE TABLE users (name TEXT)").unwrap();
        let error = EmbeddedLog::open(dir.path()).expect_err("not a tramline log");
        let message = error.to_string();
        assert!(message.contains("not a tramline log") && message.contains("users"), "{message}");
        assert!(message.contains(&*path.to_string_lossy()), "names the file: {message}");
        let db = rusqlite::Connection::open(&path).unwrap();
        assert_eq!(tables(&db), ["users"]);
        let mode: String = db.pragma_query_value(None, "journal_mode", |row| row.get(0)).unwrap();
        assert_eq!(mode, "delete", "still in its own journal mode");
    }

    #[tokio::test]
    async fn a_database_that_only_looks_like_a_log_is_refused_before_anything_is_written() {
        for (what, setup) in [
            ("an empty database of another schema", "PRAGMA user_version = 5"),
            (
                "tramline's tables without a schema version",
                "CREATE TABLE topics (id INTEGER); CREATE TABLE records (topic INTEGER); \
                 CREATE TABLE committed (topic INTEGER)",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("log.sqlite3");
            rusqlite::Connection::open(&path).unwrap().execute_batch(setup).unwrap();
            let error = EmbeddedLog::open(dir.path()).expect_err(what);
            assert!(error.to_string().contains("left unchanged"), "{what}: {error}");
            let db = rusqlite::Connection::open(&path).unwrap();
            let mode: String = db.pragma_query_value(None, "journal_mode", |row| row.get(0)).unwrap();
            assert_eq!(mode, "delete", "{what}: not switched to WAL");
        }
    }

    /// A closed log of this version in `dir` with one record on topic `t`; its database file.
    async fn one_record_log(dir: &std::path::Path) -> std::path::PathBuf {
        let log = EmbeddedLog::open(dir).unwrap();
        log.create_topic(&TopicSpec::keep("t", 1)).await.unwrap();
        log.append(vec![record("t", Some("k"), Some("v"))]).await.unwrap();
        drop(log);
        dir.join("log.sqlite3")
    }

    #[tokio::test]
    async fn a_log_made_before_the_application_id_opens_and_is_marked() {
        let dir = tempfile::tempdir().unwrap();
        let path = one_record_log(dir.path()).await;
        let application_id = |db: &rusqlite::Connection| -> i64 {
            db.pragma_query_value(None, "application_id", |row| row.get(0)).unwrap()
        };
        let db = rusqlite::Connection::open(&path).unwrap();
        let marked = application_id(&db);
        assert_ne!(marked, 0, "a new log is marked as tramline's");
        // As such a log was: version 1, without the compaction marks.
        db.execute_batch(
            "DROP TABLE compaction_marks; DROP TABLE pending_vacuum; DROP TABLE topic_retention; PRAGMA user_version = 1",
        )
            .unwrap();
        db.pragma_update(None, "application_id", 0).unwrap();
        drop(db);

        let log = EmbeddedLog::open(dir.path()).expect("an unmarked log of version 1 opens");
        assert_eq!(log.read(&TopicPartition::new("t", 0), 0, 10).await.unwrap().len(), 1);
        drop(log);
        let db = rusqlite::Connection::open(&path).unwrap();
        assert_eq!(application_id(&db), marked);
        let version: i64 = db.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap();
        let marks: i64 = db.query_row("SELECT count(*) FROM compaction_marks", [], |row| row.get(0)).unwrap();
        let pending: i64 = db.query_row("SELECT count(*) FROM pending_vacuum", [], |row| row.get(0)).unwrap();
        assert_eq!((version, marks, pending), (2, 0, 0), "brought to version 2");
    }

    /// The tables of pending vacuums and of topics' retentions came later within version 2: a
    /// log without them is read as it is, beside the process that writes it, and gets them when
    /// opened for writing.
    #[tokio::test]
    async fn a_log_without_the_later_tables_is_read_as_it_is_and_gets_them_when_opened_for_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = one_record_log(dir.path()).await;
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch("DROP TABLE pending_vacuum; DROP TABLE topic_retention").unwrap();
        drop(db);

        let reader = EmbeddedLog::open_read_only(dir.path()).expect("a log without the tables is read");
        assert_eq!(reader.read(&TopicPartition::new("t", 0), 0, 10).await.unwrap().len(), 1);
        drop(reader);
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let day = std::time::Duration::from_secs(86_400);
        log.create_topic(&TopicSpec::compact_and_expire("rows", 1, day))
            .await
            .expect("a topic whose rows expire");
        drop(log);
        let db = rusqlite::Connection::open(&path).unwrap();
        let version: i64 = db.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap();
        let pending: i64 = db.query_row("SELECT count(*) FROM pending_vacuum", [], |row| row.get(0)).unwrap();
        let retention: i64 = db.query_row("SELECT retention_ms FROM topic_retention", [], |row| row.get(0)).unwrap();
        assert_eq!((version, pending, retention), (2, 0, 86_400_000));
    }

    /// Compaction promises that no copy of a deleted record stays in the files; another
    /// process reading the database keeps the write-ahead log from being emptied, which must
    /// be said, and done by the next compaction.
    #[tokio::test]
    async fn a_reader_elsewhere_that_keeps_the_wal_fails_the_compaction_until_it_is_gone() {
        const SECRET: &[u8] = b"secret-key-of-ada-0123456789";
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path()).unwrap();
        log.create_topic(&TopicSpec::compact("keys.state", 1)).await.unwrap();
        log.append(vec![record("keys.state", Some("ada"), Some(std::str::from_utf8(SECRET).unwrap()))])
            .await
            .unwrap();
        let outside = rusqlite::Connection::open(dir.path().join("log.sqlite3")).unwrap();
        outside.execute_batch("BEGIN").unwrap();
        outside.query_row("SELECT count(*) FROM records", [], |row| row.get::<_, i64>(0)).unwrap();
        log.append(vec![record("keys.state", Some("ada"), None)]).await.unwrap();

        let error = log.compact().await.expect_err("the WAL could not be emptied");
        assert!(error.to_string().contains("log.sqlite3-wal"), "{error}");
        outside.execute_batch("COMMIT").unwrap();
        drop(outside);
        assert_eq!(log.compact().await.unwrap(), 0, "nothing more to delete, and the WAL is emptied now");
        let wal = std::fs::read(dir.path().join("log.sqlite3-wal")).unwrap_or_default();
        assert!(wal.is_empty(), "the WAL is truncated ({} bytes)", wal.len());
        let database = std::fs::read(dir.path().join("log.sqlite3")).unwrap();
        assert!(!database.windows(SECRET.len()).any(|w| w == SECRET), "the deleted value is gone from the database");
    }

    #[tokio::test]
    async fn a_database_of_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(EmbeddedLog::open(dir.path()).unwrap());
        let db = rusqlite::Connection::open(dir.path().join("log.sqlite3")).unwrap();
        db.pragma_update(None, "user_version", 99).unwrap();
        drop(db);
        let error = EmbeddedLog::open(dir.path()).expect_err("schema version 99 is unknown");
        assert!(error.to_string().contains("schema version 99"), "{error}");
    }
}
