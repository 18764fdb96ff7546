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
            Arc::new(Namespaced::new(MemoryLog::shared(), "tenant"))
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
    async fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-directory");
        std::fs::write(&file, b"x").unwrap();
        let error = EmbeddedLog::open(&file).expect_err("a file is not a log directory");
        assert!(error.to_string().contains(&*file.to_string_lossy()), "{error}");
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
            record("entity.state", None, Some("no key")),
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
        let expected: Vec<(u64, Option<Bytes>)> = vec![
            (1, Some(Bytes::from_static(b"b1"))),
            (3, Some(Bytes::from_static(b"no key"))),
            (5, None),
            (6, Some(Bytes::from_static(b"a3"))),
        ];
        assert_eq!(kept, expected, "latest per key, keyless records and tombstones stay; offsets do not move");
        assert_eq!(log.end_offset(&state).await.unwrap(), 7);
        let events = TopicPartition::new("entity.events", 0);
        assert_eq!(log.read(&events, 0, 100).await.unwrap().len(), 2, "a kept topic is not compacted");
        assert_eq!(log.compact().await.unwrap(), 0, "nothing more to compact");
        let position = log.append(vec![record("entity.state", Some("a"), Some("a4"))]).await.unwrap();
        assert_eq!(position[0].offset, 7);
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
