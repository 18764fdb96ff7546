//! The runtime: processors that connect modules to a log.
//!
//! An [`App`] registers data modules ([`App::aggregate`]), reactions ([`App::reaction`]) and
//! projections ([`App::projection`]); [`App::start`] checks that every subscription has a
//! publisher and runs each as a task of the one processor loop (see `processor.rs`).

mod aggregate;
pub mod dead_letter;
mod export;
mod gateway;
mod processor;
mod progress;
mod projection;
mod reaction;
mod topology;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

pub use gateway::{Accepted, CommandError, CommandGateway, Outcome};
pub use projection::ProjectionHandle;
pub use topology::{ProcessorInfo, ProcessorKind, Topology};

use crate::log::{EventLog, LogError, TopicPartition, TopicSpec};
use crate::model::{Aggregate, Clock, Message, Position, Projection, Reaction, Subscription, SystemClock};
use crate::privacy::KeyStore;
use progress::ProgressBoard;

/// Tuning of the runtime. The defaults suit one machine.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Partitions of the topics the app creates.
    pub partitions: u32,
    /// The most records a processor handles in one batch (one atomic write).
    pub batch_size: usize,
    /// How long a poll waits for records.
    pub poll_timeout: Duration,
    /// How often a failing reaction handler is tried before its record is dead-lettered
    /// (projections and `decide` are pure: they are not retried).
    pub handler_attempts: u32,
    /// The pause between attempts (multiplied by the attempt number).
    pub retry_backoff: Duration,
    /// How long a caller waits for a command's outcome.
    pub command_timeout: Duration,
    /// How many command ids an entity remembers to recognise repeats.
    pub seen_commands: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            partitions: 4,
            batch_size: 2048,
            poll_timeout: Duration::from_millis(200),
            handler_attempts: 3,
            retry_backoff: Duration::from_millis(20),
            command_timeout: Duration::from_secs(30),
            seen_commands: 32,
        }
    }
}

/// Errors of the runtime. Each says which processor, topic or record.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A processor subscribes to events whose topic nobody created.
    #[error(
        "`{processor}` subscribes to {event} of module `{module}`, but topic `{topic}` does not exist: register that module (App::aggregate) in this app or start the process that runs it first"
    )]
    NoPublisher {
        /// The subscribing processor.
        processor: String,
        /// The event enum.
        event: &'static str,
        /// Its module.
        module: &'static str,
        /// Its topic.
        topic: &'static str,
    },
    /// A reaction sends commands to a module whose topic nobody created.
    #[error(
        "`{processor}` sends commands to module `{module}`, but topic `{topic}` does not exist: register that module (App::aggregate) in this app or start the process that runs it first"
    )]
    NoModule {
        /// The reaction.
        processor: String,
        /// The module it sends commands to.
        module: &'static str,
        /// Its commands topic.
        topic: &'static str,
    },
    /// A reaction sends commands to another module than its own.
    #[error(
        "reaction `{reaction}` of module `{module}` sends commands of module `{commands}`: a reaction issues commands to its own module; move it to `{commands}`"
    )]
    ForeignCommands {
        /// The reaction.
        reaction: &'static str,
        /// Its module.
        module: &'static str,
        /// The commands' module.
        commands: &'static str,
    },
    /// An aggregate's command and event enums belong to different modules.
    #[error(
        "aggregate `{aggregate}`: commands belong to module `{commands}` but events to `{events}`; both must name the same module"
    )]
    ModuleMismatch {
        /// The aggregate type.
        aggregate: &'static str,
        /// The commands' module.
        commands: &'static str,
        /// The events' module.
        events: &'static str,
    },
    /// A data module was registered twice in one app.
    #[error("module `{0}` is registered twice in this app")]
    DuplicateModule(&'static str),
    /// A partition's state could not be restored.
    #[error("cannot restore state from {position}: {reason}")]
    Restore {
        /// The record that failed.
        position: Position,
        /// Why.
        reason: String,
    },
    /// A processor's task panicked.
    #[error("processor `{0}` panicked")]
    Panicked(String),
    /// A processor stopped while others waited for it.
    #[error("processor `{0}` stopped; App::shutdown returns its error")]
    Stopped(String),
    /// A processor stopped.
    #[error("processor `{name}` stopped: {source}")]
    Processor {
        /// Its consumer group.
        name: String,
        /// Why.
        source: Box<RuntimeError>,
    },
}

type Spawn = Box<dyn FnOnce(&App) -> Started + Send>;

/// A registered processor not started yet.
struct Waiting {
    group: String,
    kind: ProcessorKind,
    subscriptions: Vec<Subscription>,
    writes: Option<(&'static str, &'static str)>,
    spawn: Spawn,
}

/// A processor to start, with what the app records about it.
struct Registration {
    group: String,
    subscriptions: Vec<Subscription>,
    /// The module and commands topic a reaction writes to, which must exist.
    writes: Option<(&'static str, &'static str)>,
    info: ProcessorInfo,
    /// The topics it reads, for `settle`.
    reads: Vec<&'static str>,
    /// Whose dead-letter topic it writes to.
    dead_letters: String,
    spawn: Spawn,
}
type Task = JoinHandle<Result<(), RuntimeError>>;
/// A spawned processor and the signal that it has its partitions.
type Started = (Task, oneshot::Receiver<()>);

/// Modules wired to a log: registers processors, starts them, waits for them to settle, and
/// shuts them down without losing anything.
pub struct App {
    log: Arc<dyn EventLog>,
    clock: Arc<dyn Clock>,
    settings: Settings,
    board: Arc<ProgressBoard>,
    shutdown: watch::Sender<bool>,
    /// Processors registered but not started.
    waiting: Vec<Waiting>,
    running: Vec<(String, Task)>,
    /// Consumer group -> topics it reads, for `settle`.
    reads: HashMap<String, Vec<&'static str>>,
    topology: Topology,
    /// The dead-letter topics of the registered processors.
    dead_letter_topics: Vec<String>,
    /// The data subjects' keys, on the log; opened with the first registration.
    keys: KeyStore,
    keys_open: bool,
    started: bool,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("settings", &self.settings)
            .field("processors", &self.topology.processors.len())
            .field("started", &self.started)
            .finish()
    }
}

impl App {
    /// An app on `log`, with the system clock and default settings.
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        App {
            log: log.clone(),
            clock: Arc::new(SystemClock),
            settings: Settings::default(),
            board: Arc::default(),
            shutdown: watch::channel(false).0,
            waiting: Vec::new(),
            running: Vec::new(),
            reads: HashMap::new(),
            topology: Topology::default(),
            dead_letter_topics: Vec::new(),
            keys: KeyStore::on(log),
            keys_open: false,
            started: false,
        }
    }

    /// Uses another clock (virtual time in tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses other settings.
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// The log the app runs on.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// The keys that seal personal data (see [`crate::privacy`]): to decode records with
    /// personal data outside a processor, [`KeyStore::decode`].
    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// The clock the app stamps messages with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The processors registered so far and the flows between them.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    async fn create(&self, spec: TopicSpec) -> Result<(), RuntimeError> {
        Ok(self.log.create_topic(&spec).await?)
    }

    async fn create_dead_letters(&mut self, owner: &str) -> Result<(), RuntimeError> {
        let topic = dead_letter::topic_of(owner);
        self.create(TopicSpec::keep(topic.clone(), self.settings.partitions)).await?;
        if !self.dead_letter_topics.contains(&topic) {
            self.dead_letter_topics.push(topic);
        }
        Ok(())
    }

    /// How many records sit in the dead-letter topics of this app's processors.
    pub async fn dead_letters(&self) -> Result<u64, RuntimeError> {
        let mut count = 0;
        for topic in &self.dead_letter_topics {
            for partition in 0..self.log.partition_count(topic).await?.unwrap_or(0) {
                count += self.log.end_offset(&TopicPartition::new(topic.as_str(), partition)).await?;
            }
        }
        Ok(count)
    }

    /// Registers a data module: creates its topics (`.commands`, `.events`, `.state`, and the
    /// dead-letter topic) and returns a gateway to send it commands. `services` is what its
    /// `decide` may consult.
    pub async fn aggregate<A: Aggregate>(&mut self, services: A::Services) -> Result<CommandGateway<A>, RuntimeError> {
        let module = <A::Command as Message>::MODULE;
        if module != <A::Event as Message>::MODULE {
            return Err(RuntimeError::ModuleMismatch {
                aggregate: std::any::type_name::<A>(),
                commands: module,
                events: <A::Event as Message>::MODULE,
            });
        }
        let group = aggregate::group_of(module);
        if self.reads.contains_key(&group) {
            return Err(RuntimeError::DuplicateModule(module));
        }
        let partitions = self.settings.partitions;
        self.create(TopicSpec::keep(<A::Command as Message>::TOPIC, partitions)).await?;
        self.create(TopicSpec::keep(<A::Event as Message>::TOPIC, partitions)).await?;
        self.create(TopicSpec::compact(aggregate::state_topic(module), partitions)).await?;

        self.open_keys().await?;
        let replies = Arc::new(gateway::Replies::new());
        let gateway = CommandGateway::new(
            replies.clone(),
            self.log.clone(),
            self.keys.clone(),
            self.clock.clone(),
            self.settings.command_timeout,
        );
        let services = Arc::new(services);
        self.register(Registration {
            group: group.clone(),
            subscriptions: Vec::new(),
            writes: None,
            info: ProcessorInfo {
                kind: ProcessorKind::Aggregate,
                module: module.to_owned(),
                name: group.clone(),
                reads: Vec::new(),
                commands: None,
            },
            reads: vec![<A::Command as Message>::TOPIC],
            dead_letters: group,
            spawn: Box::new(move |app: &App| {
                let processor = aggregate::AggregateProcessor::<A>::new(
                    services,
                    replies,
                    app.keys.clone(),
                    app.clock.clone(),
                    app.settings.clone(),
                );
                app.spawn(processor)
            }),
        })
        .await?;
        Ok(gateway)
    }

    /// Registers a reaction. It starts with the app (or at once, if the app runs already).
    pub async fn reaction<R: Reaction>(&mut self, reaction: R) -> Result<(), RuntimeError> {
        let group = reaction::group_of::<R>();
        let subscriptions = R::subscriptions();
        let writes_commands = !<R::Command as Message>::TYPES.is_empty();
        if writes_commands && <R::Command as Message>::MODULE != R::MODULE {
            return Err(RuntimeError::ForeignCommands {
                reaction: R::NAME,
                module: R::MODULE,
                commands: <R::Command as Message>::MODULE,
            });
        }
        self.register(Registration {
            group: group.clone(),
            info: ProcessorInfo {
                kind: ProcessorKind::Reaction,
                module: R::MODULE.to_owned(),
                name: R::NAME.to_owned(),
                reads: subscriptions.iter().map(|s| (s.module.to_owned(), s.event.to_owned())).collect(),
                commands: writes_commands.then(|| <R::Command as Message>::MODULE.to_owned()),
            },
            reads: subscriptions.iter().map(|s| s.topic).collect(),
            subscriptions,
            writes: writes_commands.then_some((<R::Command as Message>::MODULE, <R::Command as Message>::TOPIC)),
            dead_letters: group,
            spawn: Box::new(move |app: &App| {
                app.spawn(reaction::ReactionProcessor::new(reaction, app.clock.clone(), app.settings.clone()))
            }),
        })
        .await
    }

    /// Registers a projection and returns a handle to read it. It starts with the app (or at
    /// once, if the app runs already) and reads its topics from the beginning.
    pub async fn projection<P: Projection>(&mut self, projection: P) -> Result<ProjectionHandle<P>, RuntimeError> {
        // Each instance reads every partition: a group of its own.
        let id = projection::id_of::<P>();
        let group = format!("{id}@{}", Uuid::now_v7().simple());
        let subscriptions = P::subscriptions();
        let topics: Vec<&'static str> = subscriptions.iter().map(|s| s.topic).collect();
        let state = Arc::new(RwLock::new(projection));
        let handle = ProjectionHandle {
            state: state.clone(),
            group: group.clone(),
            topics: topics.clone(),
            board: self.board.clone(),
            log: self.log.clone(),
        };
        let processor_group = group.clone();
        self.register(Registration {
            group,
            info: ProcessorInfo {
                kind: ProcessorKind::Projection,
                module: P::MODULE.to_owned(),
                name: P::NAME.to_owned(),
                reads: subscriptions.iter().map(|s| (s.module.to_owned(), s.event.to_owned())).collect(),
                commands: None,
            },
            reads: topics,
            subscriptions,
            writes: None,
            dead_letters: id,
            spawn: Box::new(move |app: &App| app.spawn(projection::ProjectionProcessor::new(state, processor_group))),
        })
        .await?;
        Ok(handle)
    }

    /// Registers an export (see [`crate::export`]): creates `public.<feed>` on the feed's log
    /// and runs the export as a consumer group `<module>.export.<feed>` that starts at the
    /// beginning of its topics. It starts with the app (or at once, if the app runs already).
    pub async fn export<S: Send + Sync + 'static>(
        &mut self,
        export: crate::export::Export<S>,
    ) -> Result<(), RuntimeError> {
        let group = export.group();
        export::create_topics(&export, &*self.log, self.settings.partitions).await?;
        let reads: Vec<&'static str> = export.subscriptions.iter().map(|s| s.topic).collect();
        let mut subscriptions = export.subscriptions.clone();
        subscriptions.extend(export.tables.iter().map(|t| t.subscription));
        self.register(Registration {
            group: group.clone(),
            info: ProcessorInfo {
                kind: ProcessorKind::Export,
                module: export.module.to_owned(),
                name: export.topic(),
                reads: subscriptions.iter().map(|s| (s.module.to_owned(), s.event.to_owned())).collect(),
                commands: None,
            },
            reads,
            subscriptions,
            writes: None,
            dead_letters: group,
            spawn: Box::new(move |app: &App| {
                app.spawn(export::ExportProcessor::new(export, app.log.clone(), app.keys.clone(), app.settings.clone()))
            }),
        })
        .await
    }

    /// Records a processor and starts it if the app runs already. Nothing is recorded when its
    /// subscriptions cannot be served.
    async fn register(&mut self, registration: Registration) -> Result<(), RuntimeError> {
        let Registration { group, subscriptions, writes, info, reads, dead_letters, spawn } = registration;
        self.open_keys().await?;
        if self.started {
            self.check_publishers(&group, &subscriptions, writes).await?;
        }
        self.create_dead_letters(&dead_letters).await?;
        let kind = info.kind;
        self.topology.processors.push(info);
        self.reads.insert(group.clone(), reads);
        if self.started {
            let started = spawn(self);
            self.run(group.clone(), started).await?;
            if kind == ProcessorKind::Projection {
                self.catch_up(&[group]).await?;
            }
        } else {
            self.waiting.push(Waiting { group, kind, subscriptions, writes, spawn });
        }
        Ok(())
    }

    /// Creates or reads the keys topic, once.
    async fn open_keys(&mut self) -> Result<(), RuntimeError> {
        if !self.keys_open {
            self.keys.load(self.settings.partitions).await?;
            self.keys_open = true;
        }
        Ok(())
    }

    /// Every subscription's topic must exist: a subscription nobody publishes is an error,
    /// never silence.
    async fn check_publishers(
        &self,
        processor: &str,
        subscriptions: &[Subscription],
        writes: Option<(&'static str, &'static str)>,
    ) -> Result<(), RuntimeError> {
        for subscription in subscriptions {
            if self.log.partition_count(subscription.topic).await?.is_none() {
                return Err(RuntimeError::NoPublisher {
                    processor: processor.to_owned(),
                    event: subscription.event,
                    module: subscription.module,
                    topic: subscription.topic,
                });
            }
        }
        if let Some((module, topic)) = writes
            && self.log.partition_count(topic).await?.is_none()
        {
            return Err(RuntimeError::NoModule { processor: processor.to_owned(), module, topic });
        }
        Ok(())
    }

    fn spawn<P: processor::Processor>(&self, processor: P) -> Started {
        let (ready, is_ready) = oneshot::channel();
        // Every processor runs with the app's keys in scope, for the personal data it reads and
        // writes.
        let task = tokio::spawn(self.keys.clone().scope_async(processor::run(
            processor,
            self.log.clone(),
            self.keys.clone(),
            self.settings.clone(),
            self.board.clone(),
            self.shutdown.subscribe(),
            ready,
        )));
        (task, is_ready)
    }

    /// Runs a spawned processor and waits until it holds its partitions, so that nothing
    /// written after this returns escapes it.
    async fn run(&mut self, group: String, (task, is_ready): Started) -> Result<(), RuntimeError> {
        let ready = is_ready.await.is_ok();
        if !ready {
            // The task ended before it was assigned: report why.
            let error = match task.await {
                Ok(Err(error)) => error,
                Ok(Ok(())) | Err(_) => RuntimeError::Panicked(group.clone()),
            };
            return Err(RuntimeError::Processor { name: group, source: Box::new(error) });
        }
        self.running.push((group, task));
        Ok(())
    }

    /// Checks every subscription and starts every registered processor: projections first,
    /// which catch up with the log before reactions and data modules start (as Kafka Streams
    /// restores its state stores before processing), so that `decide` never consults a read
    /// model that has not yet seen what is on the log.
    pub async fn start(&mut self) -> Result<(), RuntimeError> {
        for waiting in &self.waiting {
            self.check_publishers(&waiting.group, &waiting.subscriptions, waiting.writes).await?;
        }
        let (projections, others): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.waiting).into_iter().partition(|w| w.kind == ProcessorKind::Projection);
        for batch in [projections, others] {
            let started: Vec<_> = batch.into_iter().map(|w| (w.group, (w.spawn)(self))).collect();
            let groups: Vec<String> = started.iter().map(|(group, _)| group.clone()).collect();
            for (group, started) in started {
                self.run(group, started).await?;
            }
            self.catch_up(&groups).await?;
        }
        self.started = true;
        Ok(())
    }

    /// Waits until every running processor has processed everything on its topics, including
    /// what the others wrote meanwhile: the app is quiet. Fails if a processor stopped.
    pub async fn settle(&self) -> Result<(), RuntimeError> {
        let groups: Vec<String> = self.running.iter().map(|(group, _)| group.clone()).collect();
        loop {
            let ends = self.end_offsets(&groups).await?;
            self.wait_for_positions(&ends).await?;
            if self.end_offsets(&groups).await? == ends {
                return Ok(());
            }
        }
    }

    /// Waits until these processors have processed what is on their topics now.
    async fn catch_up(&self, groups: &[String]) -> Result<(), RuntimeError> {
        let ends = self.end_offsets(groups).await?;
        self.wait_for_positions(&ends).await
    }

    async fn wait_for_positions(&self, ends: &[(String, TopicPartition, u64)]) -> Result<(), RuntimeError> {
        let mut stopped = None;
        self.board
            .wait_until(|board| {
                stopped = self.running.iter().find(|(_, task)| task.is_finished()).map(|(g, _)| g.clone());
                stopped.is_some()
                    || ends
                        .iter()
                        .all(|(group, tp, end)| *end == 0 || board.position(group, tp).is_some_and(|next| next >= *end))
            })
            .await;
        match stopped {
            Some(group) => Err(RuntimeError::Stopped(group)),
            None => Ok(()),
        }
    }

    async fn end_offsets(&self, groups: &[String]) -> Result<Vec<(String, TopicPartition, u64)>, RuntimeError> {
        let mut ends = Vec::new();
        for group in groups {
            for topic in self.reads.get(group).into_iter().flatten() {
                let partitions = self.log.partition_count(topic).await?.unwrap_or(0);
                for partition in 0..partitions {
                    let tp = TopicPartition::new(*topic, partition);
                    let end = self.log.end_offset(&tp).await?;
                    ends.push((group.clone(), tp, end));
                }
            }
        }
        Ok(ends)
    }

    /// Stops every processor: each finishes its batch, commits and leaves its group. Returns
    /// the first error a processor stopped with.
    pub async fn shutdown(mut self) -> Result<(), RuntimeError> {
        let _ = self.shutdown.send(true);
        let mut first_error = None;
        for (group, task) in self.running.drain(..) {
            let result = match task.await {
                Ok(result) => result,
                Err(_) => Err(RuntimeError::Panicked(group.clone())),
            };
            if let Err(error) = result {
                tracing::error!(group, %error, "processor stopped with an error");
                first_error.get_or_insert(RuntimeError::Processor { name: group, source: Box::new(error) });
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
