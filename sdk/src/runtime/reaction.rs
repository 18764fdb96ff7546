//! The reaction processor: events in, commands out, written atomically with the input
//! positions. A handler that keeps failing, or a record that cannot be decoded, is
//! dead-lettered and the loop goes on.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use uuid::Uuid;

use super::processor::Processor;
use super::{Settings, dead_letter};
use crate::codec;
use crate::log::{OutRecord, Record, StartFrom};
use crate::model::{Clock, DispatchError, Envelope, Message, Reaction};

pub(crate) fn group_of<R: Reaction>() -> String {
    format!("{}.{}", R::MODULE, R::NAME)
}

pub(crate) struct ReactionProcessor<R: Reaction> {
    reaction: R,
    group: String,
    commands: Arc<str>,
    dead_letters: Arc<str>,
    clock: Arc<dyn Clock>,
    settings: Settings,
}

impl<R: Reaction> ReactionProcessor<R> {
    pub(crate) fn new(reaction: R, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        let group = group_of::<R>();
        ReactionProcessor {
            reaction,
            commands: Arc::from(<R::Command as Message>::TOPIC),
            dead_letters: Arc::from(dead_letter::topic_of(&group)),
            group,
            clock,
            settings,
        }
    }

    /// Runs the handler with bounded retries; returns its commands or why it gave up.
    async fn react(&self, record: &Record) -> Result<Vec<R::Command>, String> {
        let mut attempt = 1;
        loop {
            // A panicking handler is dead-lettered at once: a retry would panic again.
            let dispatched = AssertUnwindSafe(self.reaction.dispatch(record)).catch_unwind().await;
            let dispatched = match dispatched {
                Ok(dispatched) => dispatched,
                Err(panic) => {
                    return Err(format!("the handler panicked: {}", super::aggregate::panic_message(&*panic)));
                }
            };
            match dispatched {
                Ok(commands) => return Ok(commands),
                Err(DispatchError::Decode(error)) => return Err(error.to_string()),
                Err(DispatchError::Handler(error)) if attempt >= self.settings.handler_attempts => {
                    return Err(format!("handler failed {attempt} times; last error: {error}"));
                }
                Err(DispatchError::Handler(error)) => {
                    tracing::debug!(group = self.group, attempt, %error, "handler failed; retrying");
                    tokio::time::sleep(self.settings.retry_backoff * attempt).await;
                    attempt += 1;
                }
            }
        }
    }
}

impl<R: Reaction> Processor for ReactionProcessor<R> {
    fn group(&self) -> &str {
        &self.group
    }

    fn dead_letters(&self) -> Option<&Arc<str>> {
        Some(&self.dead_letters)
    }

    fn topics(&self) -> Vec<&'static str> {
        R::subscriptions().iter().map(|s| s.topic).collect()
    }

    fn start(&self) -> StartFrom {
        R::START
    }

    async fn process(&mut self, records: &[Record], outputs: &mut Vec<OutRecord>) {
        let now = self.clock.now();
        for record in records {
            let commands = match self.react(record).await {
                Ok(commands) => commands,
                Err(reason) => {
                    outputs.push(dead_letter::letter(&self.dead_letters, &self.group, record, &reason));
                    continue;
                }
            };
            let Some(cause) = codec::lineage(record) else { continue };
            for (index, command) in commands.into_iter().enumerate() {
                // The id derives from the event and the reaction: if the batch is processed
                // again after a failed write, the module sees the same command id.
                let name = format!("{}/{index}", self.group);
                let envelope = Envelope {
                    correlation_id: cause.correlation_id,
                    causation_id: Some(cause.id),
                    ..Envelope::new(command, now).with_id(Uuid::new_v5(&cause.id, name.as_bytes()))
                };
                outputs.push(codec::encode_to(&envelope, self.commands.clone()));
            }
        }
    }
}
