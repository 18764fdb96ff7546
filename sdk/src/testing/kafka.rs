//! A Kafka broker for tests: the one named by `TRAMLINE_KAFKA_BOOTSTRAP`, or the repository's
//! single-node broker, started by `scripts/kafka start` when it does not run yet.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// The bootstrap address of the test broker. Panics with the script's output when there is no
/// broker: Kafka tests are never skipped.
pub fn bootstrap() -> String {
    static BOOTSTRAP: OnceLock<Result<String, String>> = OnceLock::new();
    let found = BOOTSTRAP.get_or_init(|| {
        if let Ok(address) = std::env::var("TRAMLINE_KAFKA_BOOTSTRAP")
            && !address.trim().is_empty()
        {
            return Ok(address.trim().to_owned());
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka");
        let output = Command::new("bash")
            .arg(&script)
            .arg("start")
            .output()
            .map_err(|e| format!("cannot run `{} start`: {e}", script.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let address = stdout.lines().rev().map(str::trim).find(|line| !line.is_empty());
        match (output.status.success(), address) {
            (true, Some(address)) => Ok(address.to_owned()),
            _ => Err(format!(
                "no Kafka broker: TRAMLINE_KAFKA_BOOTSTRAP is not set and `{} start` failed ({}).\n\
                 --- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
                script.display(),
                output.status
            )),
        }
    });
    found.clone().unwrap_or_else(|why| panic!("{why}"))
}

/// A log on the test broker in a namespace of its own (`<prefix>-<uuid>`), so that a test sees
/// no other run's records and joins no other run's groups. Returns the log and the namespace
/// (for a child process's `--namespace`).
pub async fn isolated_log(prefix: &str) -> (std::sync::Arc<dyn crate::log::EventLog>, String) {
    use crate::log::kafka::{KafkaConfig, KafkaLog};
    let namespace = format!("{prefix}-{}", uuid::Uuid::now_v7().simple());
    let config = KafkaConfig::new(bootstrap()).with_instance_id(prefix);
    let kafka = KafkaLog::connect(config).await.unwrap_or_else(|e| panic!("cannot connect to the test broker: {e}"));
    let log = crate::log::Namespaced::new(std::sync::Arc::new(kafka), &namespace)
        .expect("a namespace of letters, digits and `-`");
    (std::sync::Arc::new(log), namespace)
}

/// Deletes the topics and consumer groups on the cluster at `brokers` whose names `ours`
/// accepts: what a benchmark or test run left, so that runs on one broker do not pile up
/// partitions that slow it down. One that cannot go is a warning on stderr, not an error.
pub async fn delete_leftovers(brokers: &str, ours: impl Fn(&str) -> bool) -> Result<(), crate::log::LogError> {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    let failed = |what: &str, error: rdkafka::error::KafkaError| {
        crate::log::LogError::Backend(format!("kafka: deleting the leftovers on {brokers}: {what}: {error}"))
    };
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| failed("admin client", e))?;
    let timeout = std::time::Duration::from_secs(30);
    let metadata = admin.inner().fetch_metadata(None, timeout).map_err(|e| failed("metadata", e))?;
    let topics: Vec<&str> = metadata.topics().iter().map(|t| t.name()).filter(|name| ours(name)).collect();
    let groups = admin.inner().fetch_group_list(None, timeout).map_err(|e| failed("group list", e))?;
    let groups: Vec<&str> = groups.groups().iter().map(|g| g.name()).filter(|name| ours(name)).collect();
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    let warn = |results: Vec<Result<String, (String, rdkafka::types::RDKafkaErrorCode)>>, what: &str| {
        for (name, code) in results.into_iter().filter_map(Result::err) {
            eprintln!("warning: cannot delete the {what} `{name}`: {code:?}");
        }
    };
    if !groups.is_empty() {
        warn(admin.delete_groups(&groups, &options).await.map_err(|e| failed("delete groups", e))?, "group");
    }
    if !topics.is_empty() {
        warn(admin.delete_topics(&topics, &options).await.map_err(|e| failed("delete topics", e))?, "topic");
    }
    Ok(())
}
