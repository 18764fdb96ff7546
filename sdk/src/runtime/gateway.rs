//! How a caller sends a command to a data module and gets its outcome: accepted with its events
//! (and their positions on the log), or rejected with the module's error. Outcomes are revealed
//! only after the module's atomic write has been committed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use uuid::Uuid;

use super::progress::ProgressBoard;
use super::remote;
use crate::codec;
use crate::log::{EventLog, LogError, OutRecord};
use crate::model::{Aggregate, Clock, Envelope, Message, Position};
use crate::privacy::KeyStore;

/// A command the module accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted<E> {
    /// The events it produced, with their positions on the log. Empty for a duplicate, and for
    /// a caller in another process when the module's events carry personal data, which stays
    /// on the module's own topics, where it can be erased (its reply says only "accepted").
    pub events: Vec<Envelope<E>>,
    /// The command id had been applied before; nothing was applied again.
    pub duplicate: bool,
}

impl<E> Accepted<E> {
    /// The positions of the events, for "wait until caught up" on a projection.
    pub fn positions(&self) -> Vec<crate::model::Position> {
        self.events.iter().filter_map(|e| e.position.clone()).collect()
    }
}

/// Why a command did not lead to an accepted outcome.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E> {
    /// The module rejected the command; nothing was applied.
    #[error("rejected: {0}")]
    Rejected(E),
    /// The command could not be written to the log.
    #[error("command {id} to the `{module}` module not sent: {error}")]
    Log {
        /// The command id.
        id: Uuid,
        /// The module.
        module: &'static str,
        /// Why the log refused it.
        #[source]
        error: LogError,
    },
    /// The app that sends the command has not been started ([`App::start`](super::App::start)):
    /// nothing there would hear its outcome. Nothing was sent.
    #[error("command {id} to the `{module}` module not sent: its app has not been started (App::start)")]
    NotStarted {
        /// The command id.
        id: Uuid,
        /// The module.
        module: &'static str,
    },
    /// No outcome arrived in time.
    #[error("no outcome for command {id} on `{topic}` within {timeout:?}: is the `{module}` module running?")]
    Timeout {
        /// The command id.
        id: Uuid,
        /// The commands topic.
        topic: &'static str,
        /// The module.
        module: &'static str,
        /// How long the caller waited.
        timeout: Duration,
    },
    /// The module's processor stopped before answering.
    #[error("the `{module}` module stopped before answering command {id}")]
    Stopped {
        /// The command id.
        id: Uuid,
        /// The module.
        module: &'static str,
    },
    /// The module's projections had not read the positions the command named
    /// ([`CommandGateway::send_after`]) in time: it was not decided, so that it is not decided
    /// on what they showed before. Sending the same envelope again may succeed.
    #[error("command {id} was not decided: {reason}; send it again")]
    NotCaughtUp {
        /// The command id.
        id: Uuid,
        /// What the module waited for.
        reason: String,
    },
    /// The command could not be processed (it is in the module's dead-letter topic).
    #[error("command {id} failed: {reason}; it was dead-lettered")]
    Failed {
        /// The command id.
        id: Uuid,
        /// Why.
        reason: String,
    },
}

impl<E> CommandError<E> {
    /// The module's error, when the command was rejected.
    pub fn rejection(&self) -> Option<&E> {
        match self {
            CommandError::Rejected(error) => Some(error),
            _ => None,
        }
    }

    /// Whether sending the same envelope again may succeed: the outcome did not arrive (the log
    /// or the module was away). The module recognises the repeat by the envelope's id. Not when
    /// the log refused the command for good (too large, its topic gone).
    pub fn is_transient(&self) -> bool {
        match self {
            CommandError::Log { error, .. } => !super::processor::permanent(error),
            CommandError::Timeout { .. } | CommandError::Stopped { .. } | CommandError::NotCaughtUp { .. } => true,
            _ => false,
        }
    }
}

/// The outcome of one command.
pub type Outcome<A> = Result<Accepted<<A as Aggregate>::Event>, CommandError<<A as Aggregate>::Error>>;

/// Callers waiting for outcomes, by command id. Shared by the gateways and the processor.
///
/// Several callers may wait on one id (the same envelope sent twice): each record of the
/// command answers the oldest caller still waiting, so the first hears the outcome and the
/// repeat hears that it was a duplicate.
pub(crate) struct Replies<A: Aggregate> {
    waiting: Mutex<Waiting<A>>,
}

struct Waiting<A: Aggregate> {
    /// The module's processor has stopped: nobody will answer.
    closed: bool,
    next_ticket: u64,
    by_command: HashMap<Uuid, VecDeque<Caller<A>>>,
}

/// A caller's ticket and where its outcome goes.
type Caller<A> = (u64, oneshot::Sender<Outcome<A>>);

impl<A: Aggregate> Replies<A> {
    pub(crate) fn new() -> Self {
        Replies { waiting: Mutex::new(Waiting { closed: false, next_ticket: 0, by_command: HashMap::new() }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting<A>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The module's processor stopped: every caller waiting hears it now, and later ones at once.
    pub(crate) fn close(&self) {
        let mut waiting = self.lock();
        waiting.closed = true;
        waiting.by_command.clear();
    }

    /// Registers a caller; the ticket identifies it for [`Replies::forget`]. `None` when the
    /// module's processor has stopped.
    fn expect(&self, id: Uuid) -> Option<(u64, oneshot::Receiver<Outcome<A>>)> {
        let (sender, receiver) = oneshot::channel();
        let mut waiting = self.lock();
        if waiting.closed {
            return None;
        }
        let ticket = waiting.next_ticket;
        waiting.next_ticket += 1;
        waiting.by_command.entry(id).or_default().push_back((ticket, sender));
        Some((ticket, receiver))
    }

    /// Removes one caller that gave up, and no other.
    fn forget(&self, id: &Uuid, ticket: u64) {
        let mut waiting = self.lock();
        if let Some(callers) = waiting.by_command.get_mut(id) {
            callers.retain(|(t, _)| *t != ticket);
            if callers.is_empty() {
                waiting.by_command.remove(id);
            }
        }
    }

    /// Takes the oldest caller still waiting for this command in this process, if there is one.
    pub(crate) fn caller(&self, id: &Uuid) -> Option<oneshot::Sender<Outcome<A>>> {
        let mut waiting = self.lock();
        let callers = waiting.by_command.get_mut(id)?;
        let caller = std::iter::from_fn(|| callers.pop_front()).find(|(_, sender)| !sender.is_closed());
        if callers.is_empty() {
            waiting.by_command.remove(id);
        }
        caller.map(|(_, sender)| sender)
    }

    /// Hands an outcome to the oldest caller still waiting for this command in this process.
    /// Returns whether there was one.
    pub(crate) fn reply(&self, id: &Uuid, outcome: impl FnOnce() -> Outcome<A>) -> bool {
        self.caller(id).map(|sender| sender.send(outcome())).is_some()
    }
}

impl<A: Aggregate> CommandGateway<A> {
    /// The command's record, and before it the keys its personal data needs that are not on
    /// the log yet (with their ids).
    async fn records(&self, envelope: &Envelope<A::Command>) -> Result<(Vec<OutRecord>, Vec<Uuid>), LogError> {
        if !<A::Command as Message>::PERSONAL {
            return Ok((vec![codec::encode(envelope)], Vec::new()));
        }
        // A subject this process has not met may have keys on the log, or be forgotten.
        let subject = envelope.payload.key().to_string();
        if !self.keys.knows(&subject) {
            self.keys.catch_up().await?;
        }
        let record = self.keys.encode(envelope, Arc::from(<A::Command as Message>::TOPIC));
        let (mut records, ids) = self.keys.pending_of(&subject).unwrap_or_default();
        records.push(record);
        Ok((records, ids))
    }
}

/// Sends commands to one data module. Cheap to clone.
pub struct CommandGateway<A: Aggregate> {
    pub(super) replies: Arc<Replies<A>>,
    pub(super) log: Arc<dyn EventLog>,
    pub(super) keys: KeyStore,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) timeout: Duration,
    /// Where an instance of the module in another process publishes the outcomes of this
    /// gateway's commands (one in this process answers in memory).
    pub(super) reply_to: &'static str,
    /// The module runs only in other processes.
    pub(super) remote: bool,
    /// Whether the app was started: the outcomes are heard by its processors.
    pub(super) board: Arc<ProgressBoard>,
}

impl<A: Aggregate> Clone for CommandGateway<A> {
    fn clone(&self) -> Self {
        CommandGateway {
            replies: self.replies.clone(),
            log: self.log.clone(),
            keys: self.keys.clone(),
            clock: self.clock.clone(),
            timeout: self.timeout,
            reply_to: self.reply_to,
            remote: self.remote,
            board: self.board.clone(),
        }
    }
}

impl<A: Aggregate> std::fmt::Debug for CommandGateway<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandGateway").field("topic", &<A::Command as Message>::TOPIC).finish()
    }
}

impl<A: Aggregate> CommandGateway<A> {
    /// Whether the module runs only in other processes (every outcome comes back on the log).
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// Sends a command that starts a new flow and waits for its outcome.
    pub async fn send(&self, command: A::Command) -> Outcome<A> {
        self.send_envelope(self.envelope(command)).await
    }

    /// Sends a command caused by another message (same correlation id) and waits for its outcome.
    pub async fn send_caused_by<C>(&self, command: A::Command, cause: &Envelope<C>) -> Outcome<A> {
        self.send_envelope(self.envelope(command).in_flow_of(cause)).await
    }

    /// A new envelope for a command, stamped with the app's clock, to adjust
    /// ([`Envelope::with_id`], [`Envelope::in_flow_of`]) and send with
    /// [`CommandGateway::send_envelope`].
    pub fn envelope(&self, command: A::Command) -> Envelope<A::Command> {
        Envelope::new(command, self.clock.now())
    }

    /// Sends a command in its envelope (its id is the deduplication key) and waits for its
    /// outcome. Sending the same envelope twice applies it once.
    pub async fn send_envelope(&self, envelope: Envelope<A::Command>) -> Outcome<A> {
        self.send_after(envelope, &[]).await
    }

    /// The positions of the last records on `topic` now, to send a command after everything on
    /// it with [`CommandGateway::send_after`] (when the positions of its cause are not known).
    pub async fn last_positions(&self, topic: &str) -> Result<Vec<Position>, LogError> {
        let mut positions = Vec::new();
        for partition in 0..self.log.partition_count(topic).await?.unwrap_or(0) {
            let tp = crate::log::TopicPartition::new(topic, partition);
            if let Some(last) = self.log.end_offset(&tp).await?.checked_sub(1) {
                positions.push(tp.at(last));
            }
        }
        Ok(positions)
    }

    /// Sends a command that the module decides only once its own projections have read these
    /// positions (typically another module's events that caused the command: pass
    /// [`Accepted::positions`]), and waits for its outcome. Read-your-writes across modules,
    /// in one process or several: the module waits, not the caller. If they have not read them
    /// within half the command timeout, the command is not decided and the outcome is
    /// [`CommandError::NotCaughtUp`]: send the same envelope again.
    pub async fn send_after(&self, envelope: Envelope<A::Command>, after: &[Position]) -> Outcome<A> {
        let id = envelope.id;
        let module = <A::Command as Message>::MODULE;
        // The module here, or this app's reply listener, hears the outcome: neither runs yet.
        if !self.board.is_started() {
            return Err(CommandError::NotStarted { id, module });
        }
        let Some((ticket, outcome)) = self.replies.expect(id) else {
            return Err(CommandError::Stopped { id, module });
        };
        let written = match self.records(&envelope).await {
            Ok((mut records, new_keys)) => {
                // The command is the last record; the others carry new keys of its subject. It
                // names the reply topic even when the module runs here: another instance of the
                // module, in another process, may own its partition.
                if let Some(command) = records.pop() {
                    records.push(remote::mark(command, self.reply_to, after));
                }
                self.log.append(records).await.map(|_| new_keys)
            }
            Err(error) => Err(error),
        };
        match written {
            Ok(new_keys) => self.keys.written(&new_keys),
            Err(error) => {
                self.replies.forget(&id, ticket);
                return Err(CommandError::Log { id, module, error });
            }
        }
        match tokio::time::timeout(self.timeout, outcome).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(CommandError::Stopped { id, module }),
            Err(_) => {
                self.replies.forget(&id, ticket);
                Err(CommandError::Timeout {
                    id,
                    topic: <A::Command as Message>::TOPIC,
                    module: <A::Command as Message>::MODULE,
                    timeout: self.timeout,
                })
            }
        }
    }
}
