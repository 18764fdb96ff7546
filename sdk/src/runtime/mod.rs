//! The runtime: processors that connect modules to a log.
//!
//! An [`App`] registers data modules ([`App::aggregate`]), reactions ([`App::reaction`]) and
//! projections ([`App::projection`]) and stream queries ([`App::query`]); [`App::start`] checks that every subscription has a
//! publisher and runs each as a task of the one processor loop (see `processor.rs`).

mod aggregate;
pub(crate) use aggregate::panic_message;
pub mod dead_letter;
mod export;
mod gateway;
mod processor;
mod progress;
mod projection;
mod query;
mod reaction;
mod remote;
mod topology;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;
use uuid::Uuid;

pub use gateway::{Accepted, CommandError, CommandGateway, Outcome};
use projection::CheckpointPlace;
pub use projection::{Checkpoints, ProjectionHandle};
pub use query::{
    Columns, QueryHandle, QueryReset, QueryRow, changelog_topic, headers as query_headers, repartition_topic,
    reset_query,
};
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
    /// How many ids of accepted commands an entity remembers to recognise repeats. A caller
    /// that heard no outcome sends the same envelope again after `command_timeout`; the repeat
    /// is recognised only if the entity accepted fewer other commands meanwhile. Raise it for
    /// entities that take many commands in a few timeouts (a stock, an account). Rejected
    /// commands are not remembered: a repeat is decided again.
    pub seen_commands: usize,
    /// How often a stream query's aggregation deletes the records of its repartition topic
    /// that it has committed past (Kafka Streams' `repartition.purge.interval.ms`): the topic
    /// holds a copy of every record the query re-keys, needed only until it is counted.
    pub repartition_purge_interval: Duration,
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
            repartition_purge_interval: Duration::from_secs(30),
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
        "`{processor}` subscribes to {event} of module `{module}`, but topic `{topic}` does not exist: register that module (App::aggregate) in this app or start the process that runs it first (in a test of this processor alone, create the topic: `log.create_topic(&TopicSpec::keep({event}::TOPIC, partitions))`)"
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
    /// A projection or reaction subscribes to two event enums carried on one topic.
    #[error(
        "`{processor}` subscribes to `{first}` and `{second}`, both carried on `{topic}`: a topic's records are read as one event enum; subscribe to the one its module writes"
    )]
    SharedTopic {
        /// The projection or reaction.
        processor: &'static str,
        /// The topic.
        topic: &'static str,
        /// The first event enum.
        first: &'static str,
        /// The other.
        second: &'static str,
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
    /// A stream query whose source stream has no known topic.
    #[error(
        "query `{query}` reads stream `{stream}`, but no topic is known for it: plan the query with a catalog that has its event enum (Catalog::with::<E>())"
    )]
    NoSource {
        /// The query.
        query: String,
        /// The stream it reads.
        stream: String,
    },
    /// A plan that no query can run, built by hand ([`Plan::check`](crate::stream::Plan::check)).
    #[error("query `{query}` cannot run: {reason}")]
    InvalidPlan {
        /// The query.
        query: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A stream query that ran as the other kind before under its name (an aggregation, or a
    /// query without GROUP BY): it would add rows of another shape to the same sink.
    #[error(
        "query `{query}` ran as {was} before (group `{group}` has positions): as {now} it would add rows of another shape to its sink; give the query another name, or delete what the earlier one left ({leftovers}) to start it over"
    )]
    QueryKindChanged {
        /// The query.
        query: String,
        /// What it was (`an aggregation` or `a query without GROUP BY`).
        was: &'static str,
        /// What it is now.
        now: &'static str,
        /// The earlier kind's consumer group that has positions.
        group: String,
        /// Every group and topic of the earlier kind, the sink included (deleting only some of
        /// an aggregation's would count its records again when it comes back), and the command
        /// that deletes them.
        leftovers: String,
    },
    /// A query's sink topic exists cleaned up otherwise than the query needs (compacted, for
    /// a STREAM's rows; expiring, for a TABLE without windows), made for the query as it was
    /// before it changed.
    #[error(
        "query `{query}` cannot write its rows to its sink: {mismatch}; if the query changed (a TABLE became a STREAM, or lost its windows), start it over with the app stopped: {reset}"
    )]
    SinkMismatch {
        /// The query.
        query: String,
        /// What the log found ([`LogError::CleanupMismatch`]).
        mismatch: Box<LogError>,
        /// The command that starts the query over.
        reset: String,
    },
    /// A stream query's reset ([`reset_query`]) stopped after it
    /// had deleted something: the query must not run before the reset is run again.
    #[error(
        "query `{query}` is not fully reset: deleting `{failed}` failed: {error}; deleted before it (those that existed): {}; stop any app that runs the query, and run the reset again before one runs it",
        .deleted.join(", ")
    )]
    ResetIncomplete {
        /// The query.
        query: String,
        /// The group or topic whose deletion failed.
        failed: String,
        /// The groups (deleted if they existed) and topics deleted before it.
        deleted: Vec<String>,
        /// Why it failed.
        error: Box<LogError>,
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
    /// A processor's task panicked (outside the module code it guards: restoring, say).
    #[error("processor `{processor}` panicked: {message}")]
    Panicked {
        /// The processor (its consumer group).
        processor: String,
        /// The panic's message.
        message: String,
    },
    /// Two processors of the app have the same module and name: they would share one consumer
    /// group, and so split the partitions between them (each would see part of the events), or
    /// one dead-letter topic (a projection and a reaction: each would take the other's letters
    /// for its own).
    #[error(
        "two processors are named `{0}` (the same module and name): they would share its consumer group or its \
         dead-letter topic; give one another name{hint}", hint = reserved(.0)
    )]
    DuplicateGroup(String),
    /// An export's module or feed name that cannot name its topic and group.
    #[error("{what} `{name}` is not a valid name: {rule}")]
    InvalidName {
        /// What it names: `export module`, `export feed`.
        what: &'static str,
        /// The name.
        name: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A projection of events with personal data cannot be checkpointed: its checkpoints would
    /// keep that data readable after the subject is forgotten.
    #[error(
        "projection `{projection}` reads `{event}`, which carries personal data: it cannot be checkpointed, since its \
         checkpoints would keep that data after its subject is forgotten; register it with App::projection"
    )]
    PersonalCheckpoint {
        /// The projection.
        projection: String,
        /// The event enum with personal data.
        event: &'static str,
    },
    /// A processor stopped while others waited for it.
    #[error("processor `{0}` stopped; App::shutdown returns its error")]
    Stopped(String),
    /// The app was waited for before [`App::start`]: nothing runs until then.
    #[error("{0} before App::start: the app's processors do not run until it is started")]
    NotStarted(String),
    /// A projection that runs in another process was waited for.
    #[error("projection `{0}` runs in another process (see App::run_only): read and wait for it there")]
    Elsewhere(String),
    /// A processor stopped.
    #[error("processor `{name}` stopped: {source}")]
    Processor {
        /// Its consumer group.
        name: String,
        /// Why.
        source: Box<RuntimeError>,
    },
}

/// Why a processor's name is taken when the other one is the data module's own group.
fn reserved(group: &str) -> &'static str {
    match group.split_once('.').is_some_and(|(_, name)| name == aggregate::GROUP_SUFFIX) {
        true => " (the module's data module, App::aggregate, has this group)",
        false => "",
    }
}

impl RuntimeError {
    /// [`RuntimeError::ModuleMismatch`] when aggregate `A`'s commands and events name different
    /// modules.
    pub(crate) fn check_one_module<A: Aggregate>() -> Result<(), RuntimeError> {
        let (commands, events) = (<A::Command as Message>::MODULE, <A::Event as Message>::MODULE);
        match commands == events {
            true => Ok(()),
            false => Err(RuntimeError::ModuleMismatch { aggregate: std::any::type_name::<A>(), commands, events }),
        }
    }

    /// [`RuntimeError::ForeignCommands`] when reaction `R` sends another module's commands.
    pub(crate) fn check_own_commands<R: Reaction>() -> Result<(), RuntimeError> {
        let commands = <R::Command as Message>::MODULE;
        match <R::Command as Message>::TYPES.is_empty() || commands == R::MODULE {
            true => Ok(()),
            false => Err(RuntimeError::ForeignCommands { reaction: R::NAME, module: R::MODULE, commands }),
        }
    }

    /// [`RuntimeError::SharedTopic`] when `processor` subscribes to two enums of one topic.
    pub(crate) fn check_topics(processor: &'static str, subscriptions: &[Subscription]) -> Result<(), RuntimeError> {
        match Subscription::sharing_a_topic(subscriptions) {
            None => Ok(()),
            Some((first, second)) => Err(RuntimeError::SharedTopic {
                processor,
                topic: first.topic,
                first: first.event,
                second: second.event,
            }),
        }
    }
}

type Spawn = Box<dyn FnOnce(&App) -> Started + Send>;

/// How long a wait of `settle` goes before it logs what it waits for.
const SLOW_WAIT: Duration = Duration::from_secs(10);

/// A partition a group has not processed to its end.
struct Behind {
    group: String,
    tp: TopicPartition,
    /// Where the group stands on it.
    at: u64,
    end: u64,
}

/// When a processor starts in [`App::start`]: the phases in order, each running before the next
/// starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Projections and reply listeners, which catch up with the log before anything else runs.
    Restore,
    /// Reactions, which take their start positions (the end of the log, on a first start)
    /// before a data module here writes: the events of commands that waited on the log for the
    /// module are not taken for old ones.
    Position,
    /// Data modules, queries and exports.
    Process,
}

/// A registered processor not started yet.
struct Waiting {
    group: String,
    phase: Phase,
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
    /// What the topology shows of it; `None` for the runtime's own plumbing.
    info: Option<ProcessorInfo>,
    phase: Phase,
    /// The topics it reads, for `settle`.
    reads: Vec<&'static str>,
    /// Whose dead-letter topic it writes to, if it writes dead letters.
    dead_letters: Option<DeadLetters>,
    spawn: Spawn,
}

/// The dead-letter topic a processor writes to (`<owner>.dlq`), and who may share it: the
/// processor alone, or every instance of one projection (each reads with a group of its own).
struct DeadLetters {
    owner: String,
    sharer: String,
}

impl DeadLetters {
    /// The topic of the processor with this group, for it alone.
    fn of(group: &str) -> Self {
        DeadLetters { owner: group.to_owned(), sharer: group.to_owned() }
    }

    /// The topic of projection `P`, shared by its instances.
    fn of_projection<P: Projection>() -> Self {
        DeadLetters { owner: projection::id_of::<P>(), sharer: std::any::type_name::<P>().to_owned() }
    }
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
    /// The dead-letter topics of the registered processors, with who may share each
    /// ([`DeadLetters`]).
    dead_letter_topics: HashMap<String, String>,
    /// The modules whose processors run in this process; `None`: all.
    local: Option<HashSet<String>>,
    /// Module, consumer group and topics of each projection running here.
    projections: Vec<(&'static str, String, Vec<&'static str>)>,
    /// Consumer groups of data modules and reactions that run in other processes, with the
    /// topics they read, for `settle`.
    elsewhere: Vec<(String, Vec<&'static str>)>,
    /// The data subjects' keys, on the log; opened with the first registration.
    keys: KeyStore,
    keys_open: bool,
    started: bool,
    /// The span of everything the app logs: it names the log's namespace, which the logs'
    /// topic and group names leave out.
    span: tracing::Span,
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
            dead_letter_topics: HashMap::new(),
            local: None,
            projections: Vec::new(),
            elsewhere: Vec::new(),
            // At error level, so that it is on whenever any of the runtime's logs is.
            span: match log.namespace() {
                Some(namespace) => tracing::error_span!("tramline", namespace = %namespace),
                None => tracing::Span::none(),
            },
            keys: KeyStore::on(log),
            keys_open: false,
            started: false,
        }
    }

    /// Runs only the processors of these modules in this process; the others run in other
    /// processes on the same log. Every module is still registered as usual, so topics, the
    /// topology, dead letters and [`App::settle`] cover the whole platform, and the gateway of
    /// a data module that runs elsewhere sends commands through the log and hears their
    /// outcomes on `<module>.replies`. A projection of a module that runs elsewhere is not
    /// built here: waiting for it is an error ([`RuntimeError::Elsewhere`]). A module may also
    /// run in several processes (instances of one consumer group, each owning some partitions):
    /// a caller hears the outcome of a command that another process decided on the reply topic
    /// too, and `start` and `settle` look at the group's committed positions for the partitions
    /// held elsewhere.
    pub fn run_only<S: Into<String>>(mut self, modules: impl IntoIterator<Item = S>) -> Self {
        self.local = Some(modules.into_iter().map(Into::into).collect());
        self
    }

    /// Whether the processors of `module` run in this process.
    pub fn runs_here(&self, module: &str) -> bool {
        self.local.as_ref().is_none_or(|local| local.contains(module))
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

    /// Creates a processor's dead-letter topic, refusing one that another processor of the app
    /// has already (a projection and a reaction of one name: each would take the other's
    /// letters for its own).
    async fn create_dead_letters(&mut self, dead_letters: &DeadLetters) -> Result<(), RuntimeError> {
        let DeadLetters { owner, sharer } = dead_letters;
        let topic = dead_letter::topic_of(owner);
        match self.dead_letter_topics.get(&topic) {
            Some(known) if known == sharer => return Ok(()),
            Some(_) => return Err(RuntimeError::DuplicateGroup(owner.clone())),
            None => {}
        }
        self.create(TopicSpec::keep(topic.clone(), self.settings.partitions)).await?;
        self.dead_letter_topics.insert(topic, sharer.clone());
        Ok(())
    }

    /// How many records sit in the dead-letter topics of this app's processors.
    pub async fn dead_letters(&self) -> Result<u64, RuntimeError> {
        let mut count = 0;
        for topic in self.dead_letter_topics.keys() {
            count += dead_letter::count(&*self.log, topic).await?;
        }
        Ok(count)
    }

    /// Registers a data module: creates its topics (`.commands`, `.events`, `.state`,
    /// `.replies` and the dead-letter topic) and returns a gateway to send it commands.
    /// `services` is what its `decide` may consult.
    pub async fn aggregate<A: Aggregate>(&mut self, services: A::Services) -> Result<CommandGateway<A>, RuntimeError> {
        RuntimeError::check_one_module::<A>()?;
        let module = <A::Command as Message>::MODULE;
        let group = aggregate::group_of(module);
        if self.reads.contains_key(&group) {
            return Err(RuntimeError::DuplicateModule(module));
        }
        let partitions = self.settings.partitions;
        self.create(TopicSpec::keep(<A::Command as Message>::TOPIC, partitions)).await?;
        self.create(TopicSpec::keep(<A::Event as Message>::TOPIC, partitions)).await?;
        self.create(TopicSpec::compact(aggregate::state_topic(module), partitions)).await?;

        let info = ProcessorInfo {
            kind: ProcessorKind::Aggregate,
            module: module.to_owned(),
            name: group.clone(),
            reads: Vec::new(),
            commands: None,
        };
        self.open_keys().await?;
        let replies = Arc::new(gateway::Replies::new());
        // An outcome comes back on the reply topic when an instance of the module in another
        // process decided the command, whether or not the module also runs here.
        let replies_topic = self.listen_for_replies::<A>(replies.clone()).await?;
        let remote = !self.runs_here(module);
        let gateway = CommandGateway {
            replies: replies.clone(),
            log: self.log.clone(),
            keys: self.keys.clone(),
            clock: self.clock.clone(),
            timeout: self.settings.command_timeout,
            reply_to: replies_topic,
            remote,
            board: self.board.clone(),
        };
        if remote {
            self.declare_elsewhere(group, info, vec![<A::Command as Message>::TOPIC]).await?;
            return Ok(gateway);
        }
        let services = Arc::new(services);
        self.register(Registration {
            group: group.clone(),
            subscriptions: Vec::new(),
            writes: None,
            info: Some(info),
            phase: Phase::Process,
            reads: vec![<A::Command as Message>::TOPIC],
            dead_letters: Some(DeadLetters::of(&group)),
            spawn: Box::new(move |app: &App| {
                let own_projections = aggregate::OwnProjections {
                    board: app.board.clone(),
                    projections: (app.projections.iter())
                        .filter(|(owner, _, _)| *owner == module)
                        .map(|(_, group, topics)| (group.clone(), topics.clone()))
                        .collect(),
                };
                let processor = aggregate::AggregateProcessor::<A>::new(
                    services,
                    replies,
                    own_projections,
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

    /// Creates a data module's reply topic and registers the listener that hands the outcomes
    /// published there to the callers of this process; returns the topic.
    async fn listen_for_replies<A: Aggregate>(
        &mut self,
        replies: Arc<gateway::Replies<A>>,
    ) -> Result<&'static str, RuntimeError> {
        let replies_topic = remote::replies_topic(<A::Command as Message>::MODULE);
        self.create(TopicSpec::keep(replies_topic, self.settings.partitions)).await?;
        let listener_group = format!("{replies_topic}@{}", Uuid::now_v7().simple());
        self.register(Registration {
            group: listener_group.clone(),
            subscriptions: Vec::new(),
            writes: None,
            info: None,
            phase: Phase::Restore,
            reads: vec![replies_topic],
            dead_letters: None,
            spawn: Box::new(move |app: &App| {
                app.spawn(remote::ReplyListener::new(listener_group, replies_topic, replies))
            }),
        })
        .await?;
        Ok(replies_topic)
    }

    /// Registers a reaction. It starts with the app (or at once, if the app runs already).
    pub async fn reaction<R: Reaction>(&mut self, reaction: R) -> Result<(), RuntimeError> {
        let group = reaction::group_of::<R>();
        let subscriptions = R::subscriptions();
        RuntimeError::check_topics(R::NAME, &subscriptions)?;
        let writes_commands = !<R::Command as Message>::TYPES.is_empty();
        RuntimeError::check_own_commands::<R>()?;
        let info = ProcessorInfo {
            kind: ProcessorKind::Reaction,
            module: R::MODULE.to_owned(),
            name: R::NAME.to_owned(),
            reads: subscriptions.iter().map(|s| (s.module.to_owned(), s.event.to_owned())).collect(),
            commands: writes_commands.then(|| <R::Command as Message>::MODULE.to_owned()),
        };
        let reads: Vec<&'static str> = subscriptions.iter().map(|s| s.topic).collect();
        if !self.runs_here(R::MODULE) {
            return self.declare_elsewhere(group, info, reads).await;
        }
        self.register(Registration {
            group: group.clone(),
            info: Some(info),
            phase: Phase::Position,
            reads,
            subscriptions,
            writes: writes_commands.then_some((<R::Command as Message>::MODULE, <R::Command as Message>::TOPIC)),
            dead_letters: Some(DeadLetters::of(&group)),
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
        let spawn_group = group.clone();
        self.add_projection(projection, group, move |state, app: &App| {
            app.spawn(projection::ProjectionProcessor::new(state, spawn_group))
        })
        .await
    }

    /// Registers a projection whose read model is checkpointed, and returns a handle to read
    /// it: now and then (`checkpoints.interval`) its state (as JSON) and the positions it has
    /// applied are written to `<projection>.checkpoint` with its input positions, in one atomic
    /// write. A restart restores the last checkpoint and reads only what came after it; one of
    /// another [version](Checkpoints::version), or one that does not read as `P`, is not
    /// restored, and the read model is rebuilt from the beginning (with a warning).
    ///
    /// Each instance keeps its own checkpoints under its group, `<projection>@<instance id>`
    /// on a log that processes share (Kafka's `KafkaConfig::instance_id`, which must then be
    /// stable, as for transactions). A projection of events with personal data is refused: its
    /// checkpoints would keep that data readable after its subject is forgotten.
    pub async fn checkpointed_projection<P>(
        &mut self,
        projection: P,
        checkpoints: Checkpoints,
    ) -> Result<ProjectionHandle<P>, RuntimeError>
    where
        P: Projection + serde::Serialize + serde::de::DeserializeOwned,
    {
        let id = projection::id_of::<P>();
        if let Some(personal) = P::subscriptions().iter().find(|s| s.personal) {
            return Err(RuntimeError::PersonalCheckpoint { projection: id, event: personal.event });
        }
        let place = CheckpointPlace::of(&id, self.log.instance_id());
        if !self.runs_here(P::MODULE) {
            // Declared only: built and checkpointed in another process.
            return self.projection(projection).await;
        }
        self.create(place.topic_spec()).await?;
        let (projection, applied) = match projection::restore::<P>(&*self.log, &place, checkpoints.version).await? {
            projection::Restored::Found(restored, applied) => {
                tracing::info!(projection = id, checkpoint = place.topic, "restored from its checkpoint");
                (restored, applied)
            }
            restored => {
                if let projection::Restored::Unusable(why) = restored {
                    tracing::warn!(projection = id, "{why}; the read model is rebuilt from the beginning");
                }
                // Positions without the state they go with: from the beginning. A group that
                // cannot go yet (Kafka: a crashed member's session still open) is moved back as
                // its partitions are taken up (the processor's `behind`).
                if let Err(error) = self.log.delete_group(&place.group).await {
                    tracing::info!(projection = id, %error, "the group's positions stay for now; they are moved back to the beginning as the projection starts");
                }
                (projection, Vec::new())
            }
        };
        let group = place.group.clone();
        self.add_projection(projection, group, move |state, app: &App| {
            app.spawn(projection::ProjectionProcessor::checkpointed(state, &place, checkpoints, applied))
        })
        .await
    }

    async fn add_projection<P: Projection>(
        &mut self,
        projection: P,
        group: String,
        spawn: impl FnOnce(Arc<RwLock<P>>, &App) -> Started + Send + 'static,
    ) -> Result<ProjectionHandle<P>, RuntimeError> {
        let id = projection::id_of::<P>();
        let subscriptions = P::subscriptions();
        RuntimeError::check_topics(P::NAME, &subscriptions)?;
        let topics: Vec<&'static str> = subscriptions.iter().map(|s| s.topic).collect();
        let state = Arc::new(RwLock::new(projection));
        let here = self.runs_here(P::MODULE);
        let handle = ProjectionHandle {
            state: state.clone(),
            group: if here { group.clone() } else { id.clone() },
            here,
            topics: topics.clone(),
            board: self.board.clone(),
            log: self.log.clone(),
        };
        let info = ProcessorInfo {
            kind: ProcessorKind::Projection,
            module: P::MODULE.to_owned(),
            name: P::NAME.to_owned(),
            reads: subscriptions.iter().map(|s| (s.module.to_owned(), s.event.to_owned())).collect(),
            commands: None,
        };
        if !here {
            self.create_dead_letters(&DeadLetters::of_projection::<P>()).await?;
            self.topology.processors.push(info);
            return Ok(handle);
        }
        let processor_state = state.clone();
        self.register(Registration {
            group: group.clone(),
            info: Some(info),
            phase: Phase::Restore,
            reads: topics.clone(),
            subscriptions,
            writes: None,
            dead_letters: Some(DeadLetters::of_projection::<P>()),
            spawn: Box::new(move |app: &App| spawn(processor_state, app)),
        })
        .await?;
        // Only once it is registered: its module's aggregate waits for it.
        self.projections.push((P::MODULE, group, topics));
        Ok(handle)
    }

    /// Registers an export (see [`crate::export`]): creates `public.<feed>` on the feed's log
    /// and runs the export as a consumer group `<module>.export.<feed>` that starts at the
    /// beginning of its topics. It starts with the app (or at once, if the app runs already).
    pub async fn export<S: Send + Sync + 'static>(
        &mut self,
        export: crate::export::Export<S>,
    ) -> Result<(), RuntimeError> {
        export.check_names()?;
        let group = export.group();
        export::create_topics(&export, &*self.log, self.settings.partitions).await?;
        let reads: Vec<&'static str> = export.subscriptions.iter().map(|s| s.topic).collect();
        let mut subscriptions = export.subscriptions.clone();
        subscriptions.extend(export.tables.iter().map(|t| t.subscription));
        let info = ProcessorInfo {
            kind: ProcessorKind::Export,
            module: export.module.to_owned(),
            name: export.topic(),
            reads: subscriptions.iter().map(|s| (s.module.to_owned(), s.event.to_owned())).collect(),
            commands: None,
        };
        if !self.runs_here(export.module) {
            return self.declare_elsewhere(group, info, reads).await;
        }
        self.register(Registration {
            group: group.clone(),
            info: Some(info),
            phase: Phase::Process,
            reads,
            subscriptions,
            writes: None,
            dead_letters: Some(DeadLetters::of(&group)),
            spawn: Box::new(move |app: &App| {
                app.spawn(export::ExportProcessor::new(export, app.log.clone(), app.keys.clone(), app.settings.clone()))
            }),
        })
        .await
    }

    /// Refuses a consumer group another processor of the app has already.
    fn check_unique(&self, group: &str) -> Result<(), RuntimeError> {
        match self.reads.contains_key(group) || self.elsewhere.iter().any(|(other, _)| other == group) {
            true => Err(RuntimeError::DuplicateGroup(group.to_owned())),
            false => Ok(()),
        }
    }

    /// Records a processor that runs in another process: the topology shows it, its dead-letter
    /// topic exists, and `settle` waits for its group's committed positions.
    pub(crate) async fn declare_elsewhere(
        &mut self,
        group: String,
        info: ProcessorInfo,
        reads: Vec<&'static str>,
    ) -> Result<(), RuntimeError> {
        self.check_unique(&group)?;
        self.create_dead_letters(&DeadLetters::of(&group)).await?;
        self.topology.processors.push(info);
        self.elsewhere.push((group, reads));
        Ok(())
    }

    /// Records a processor and starts it if the app runs already. Nothing is recorded when its
    /// subscriptions cannot be served.
    async fn register(&mut self, registration: Registration) -> Result<(), RuntimeError> {
        let Registration { group, subscriptions, writes, info, phase, reads, dead_letters, spawn } = registration;
        self.check_unique(&group)?;
        self.open_keys().await?;
        if self.started {
            let check = || self.check_publishers(&group, &subscriptions, writes);
            patiently(&self.settings, "checking the topics", check).await?;
        }
        if let Some(dead_letters) = dead_letters {
            self.create_dead_letters(&dead_letters).await?;
        }
        self.topology.processors.extend(info);
        self.reads.insert(group.clone(), reads);
        if self.started {
            let (task, is_ready) = spawn(self);
            self.running.push((group.clone(), task));
            self.ready(&group, is_ready).await?;
            if phase == Phase::Restore {
                self.catch_up(&[group]).await?;
            }
        } else {
            self.waiting.push(Waiting { group, phase, subscriptions, writes, spawn });
        }
        Ok(())
    }

    /// Creates or reads the keys topic, once.
    async fn open_keys(&mut self) -> Result<(), RuntimeError> {
        if !self.keys_open {
            let load = || async { Ok(self.keys.load(self.settings.partitions).await?) };
            patiently(&self.settings, "reading the keys", load).await?;
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
        // A projection's group is its name and the instance's id (`loyalty@0193…`): the user
        // named the first part.
        let processor = processor.rsplit_once('@').map_or(processor, |(name, _)| name);
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
        let run = processor::run(
            processor,
            self.log.clone(),
            self.keys.clone(),
            self.settings.clone(),
            self.board.clone(),
            self.shutdown.subscribe(),
            ready,
        );
        let task = tokio::spawn(self.keys.clone().scope_async(run).instrument(self.span.clone()));
        (task, is_ready)
    }

    /// Waits until a spawned processor (in `running` from its spawn on) holds its partitions,
    /// so that nothing written after this returns escapes it.
    async fn ready(&mut self, group: &str, is_ready: oneshot::Receiver<()>) -> Result<(), RuntimeError> {
        if is_ready.await.is_ok() {
            return Ok(());
        }
        // The task ended before it was assigned: report why.
        let at = self.running.iter().position(|(running, _)| running == group);
        let (group, task) = self.running.remove(at.expect("a spawned processor is running"));
        let error = match task.await {
            Ok(Err(error)) => error,
            Ok(Ok(())) => RuntimeError::Stopped(group.clone()),
            Err(join) => panicked(&group, join),
        };
        Err(RuntimeError::Processor { name: group, source: Box::new(error) })
    }

    /// Checks every subscription and starts every registered processor: projections first,
    /// which catch up with the log before reactions and data modules start (as Kafka Streams
    /// restores its state stores before processing), so that `decide` never consults a read
    /// model that has not yet seen what is on the log; then reactions, which take their start
    /// positions before a data module here applies the commands that waited for it; then the
    /// rest. It returns once each has caught up with the log as it was when it started: what
    /// they write meanwhile (a reaction's commands, the events a data module makes of them) may
    /// still be in flight, which [`App::settle`] waits for.
    ///
    /// Dropping its future (a process told to stop while it starts) leaves the processors
    /// started so far to [`App::shutdown`], which stops them as it stops running ones: each
    /// leaves its group rather than holding its partitions until the group times it out.
    pub async fn start(&mut self) -> Result<(), RuntimeError> {
        for Waiting { group, subscriptions, writes, .. } in &self.waiting {
            let check = || self.check_publishers(group, subscriptions, *writes);
            patiently(&self.settings, "checking the topics", check).await?;
        }
        // From here on commands may be sent and processors waited for: a reaction may send
        // commands while it catches up, to a data module that starts in a later phase.
        self.board.start();
        let mut waiting = std::mem::take(&mut self.waiting);
        let mut caught_up = Vec::new();
        for phase in [Phase::Restore, Phase::Position, Phase::Process] {
            let batch: Vec<Waiting>;
            (batch, waiting) = waiting.into_iter().partition(|w| w.phase == phase);
            let mut started = Vec::new();
            for Waiting { group, spawn, .. } in batch {
                let (task, is_ready) = spawn(self);
                self.running.push((group.clone(), task));
                started.push((group, is_ready));
            }
            caught_up.extend(started.iter().map(|(group, _)| group.clone()));
            // Running, with their start positions taken (the end of the log, for a reaction's
            // first start).
            for (group, is_ready) in started {
                self.ready(&group, is_ready).await?;
            }
            if phase != Phase::Position {
                self.catch_up(&std::mem::take(&mut caught_up)).await?;
            }
        }
        self.started = true;
        Ok(())
    }

    /// Waits until every running processor has processed everything on its topics, including
    /// what the others wrote meanwhile: the app is quiet. Data modules and reactions that run
    /// in other processes ([`App::run_only`]) count too: they are quiet when their committed
    /// positions leave nothing to read, as do the partitions that another instance of a group
    /// running here holds. Fails if a processor of this process stopped, and at once before
    /// [`App::start`] ([`RuntimeError::NotStarted`]); waits as long as a module elsewhere is away
    /// or the log does not answer (a broker restarting), as the processors do.
    pub async fn settle(&self) -> Result<(), RuntimeError> {
        self.wait_until_settled().instrument(self.span.clone()).await
    }

    async fn wait_until_settled(&self) -> Result<(), RuntimeError> {
        if !self.board.is_started() {
            return Err(RuntimeError::NotStarted("settle".into()));
        }
        let groups: Vec<String> = self.running.iter().map(|(group, _)| group.clone()).collect();
        let mut report = tokio::time::Instant::now() + SLOW_WAIT;
        let mut failures = 0;
        loop {
            match self.settled(&groups, &mut report).await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(error) if waited_for_log(&self.settings, "settling", &mut failures, &error).await => {}
                Err(error) => return Err(error),
            }
        }
    }

    /// One pass of [`settle`](Self::settle): waits for the processors to reach the ends of their
    /// partitions, then tells whether nothing was written meanwhile.
    async fn settled(&self, groups: &[String], report: &mut tokio::time::Instant) -> Result<bool, RuntimeError> {
        let ends = self.end_offsets(groups).await?;
        self.wait_for_positions(&ends).await?;
        while let Some(behind) = self.behind_elsewhere().await? {
            if tokio::time::Instant::now() >= *report {
                // A wait that does not end must say what it waits for.
                let Behind { group, tp, at, end } = behind;
                tracing::warn!(group, %tp, committed = at, end, "still waiting for a processor in another process to commit the end of a partition");
                *report += SLOW_WAIT;
            }
            tokio::time::sleep(self.elsewhere_poll()).await;
        }
        Ok(self.end_offsets(groups).await? == ends && self.behind_elsewhere().await?.is_none())
    }

    /// How often a wait looks again at the committed positions of processors in other processes.
    fn elsewhere_poll(&self) -> Duration {
        self.settings.poll_timeout.max(Duration::from_millis(20))
    }

    /// The first partition that the processors running elsewhere have not committed to its end
    /// (a gap of transaction markers aside), if any.
    async fn behind_elsewhere(&self) -> Result<Option<Behind>, RuntimeError> {
        for (group, topics) in &self.elsewhere {
            for topic in topics {
                for partition in 0..self.log.partition_count(topic).await?.unwrap_or(0) {
                    let tp = TopicPartition::new(*topic, partition);
                    let end = self.log.end_offset(&tp).await?;
                    if let Some(at) = self.committed_before(group, &tp, end).await? {
                        return Ok(Some(Behind { group: group.clone(), tp, at, end }));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The group's committed position on `tp` if records before `end` remain to be processed
    /// after it; `None` when only transaction markers (which are never handed out) lie between.
    async fn committed_before(&self, group: &str, tp: &TopicPartition, end: u64) -> Result<Option<u64>, RuntimeError> {
        let committed = self.log.committed(group, tp).await?.unwrap_or(0);
        if committed >= end {
            return Ok(None);
        }
        let next = self.log.read(tp, committed, 1).await?;
        Ok(next.first().is_some_and(|record| record.offset < end).then_some(committed))
    }

    /// Waits until these processors have processed what is on their topics now.
    async fn catch_up(&self, groups: &[String]) -> Result<(), RuntimeError> {
        let ends = patiently(&self.settings, "reading the ends of the topics", || self.end_offsets(groups)).await?;
        self.wait_for_positions(&ends).await
    }

    /// Waits until each group has processed its partitions up to these ends: the partitions it
    /// holds in this process by their positions on the board, the others (held by another
    /// instance of the group, in another process) by the group's committed positions.
    async fn wait_for_positions(&self, ends: &[(String, TopicPartition, u64)]) -> Result<(), RuntimeError> {
        let mut report = tokio::time::Instant::now() + SLOW_WAIT;
        loop {
            let mut stopped = None;
            let mut not_held = Vec::new();
            self.board
                .wait_until(|board| {
                    stopped = self.running.iter().find(|(_, task)| task.is_finished()).map(|(g, _)| g.clone());
                    not_held.clear();
                    let mut behind = None;
                    for (group, tp, end) in ends.iter().filter(|(_, _, end)| *end > 0) {
                        match board.position(group, tp) {
                            None => not_held.push((group, tp, *end)),
                            Some(next) if next < *end => {
                                behind = Some((group, tp, next, *end));
                                break;
                            }
                            Some(_) => {}
                        }
                    }
                    if let Some((group, tp, at, end)) = behind
                        && tokio::time::Instant::now() >= report
                    {
                        // A wait that does not end must say what it waits for.
                        tracing::warn!(group, %tp, at, end, "still waiting for a processor to reach the end of a partition");
                        report += SLOW_WAIT;
                    }
                    stopped.is_some() || behind.is_none()
                })
                .await;
            if let Some(group) = stopped {
                return Err(RuntimeError::Stopped(group));
            }
            let mut behind = None;
            for (group, tp, end) in not_held {
                if let Some(committed) = self.committed_before(group, tp, end).await? {
                    behind = Some((group, tp, committed, end));
                    break;
                }
            }
            let Some((group, tp, committed, end)) = behind else { return Ok(()) };
            if tokio::time::Instant::now() >= report {
                tracing::warn!(group, %tp, committed, end, "still waiting for a partition held elsewhere (another instance of the group) to be committed to its end");
                report += SLOW_WAIT;
            }
            tokio::time::sleep(self.elsewhere_poll()).await;
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
                Err(join) => Err(panicked(&group, join)),
            };
            if let Err(error) = result {
                self.span.in_scope(|| tracing::error!(group, %error, "processor stopped with an error"));
                first_error.get_or_insert(RuntimeError::Processor { name: group, source: Box::new(error) });
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Runs `attempt` again while the log's backend fails (a broker away or restarting: the
/// processors wait for it too), pausing as they do; any other outcome is returned.
async fn patiently<T, Attempt: Future<Output = Result<T, RuntimeError>>>(
    settings: &Settings,
    doing: &str,
    mut attempt: impl FnMut() -> Attempt,
) -> Result<T, RuntimeError> {
    let mut failures = 0;
    loop {
        match attempt().await {
            Err(error) if waited_for_log(settings, doing, &mut failures, &error).await => {}
            outcome => return outcome,
        }
    }
}

/// Whether `error` is the log's backend not answering (a broker away or restarting: the
/// processors wait for it too); then it has waited as they do before the next attempt.
async fn waited_for_log(settings: &Settings, doing: &str, failures: &mut u32, error: &RuntimeError) -> bool {
    if !matches!(error, RuntimeError::Log(LogError::Backend(_))) {
        return false;
    }
    *failures += 1;
    tracing::warn!(%error, failures, "{doing}: the log does not answer; asking again");
    tokio::time::sleep(processor::backoff(settings, *failures)).await;
    true
}

/// The error of a processor task that panicked, with the panic's message.
fn panicked(group: &str, join: tokio::task::JoinError) -> RuntimeError {
    let message = match join.try_into_panic() {
        Ok(panic) => aggregate::panic_message(&*panic).to_owned(),
        Err(join) => join.to_string(),
    };
    RuntimeError::Panicked { processor: group.to_owned(), message }
}
