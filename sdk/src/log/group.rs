//! Consumer-group coordination for the adapters that run a whole group inside one process (memory,
//! embedded): membership, generations, an eager round-robin assignment, fencing, and each
//! member's read positions. Where committed positions live is the adapter's business (memory: under
//! its one lock; embedded: in the database); this module only asks for them.
//!
//! Rebalances are eager: when a member joins or leaves, the group's generation goes up, every
//! member's partitions are revoked on its next poll and the new assignment is handed out; a write
//! by a member of an older generation is fenced.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{LogError, Polled, Record, StartFrom, TopicPartition};

/// The members and generation of every group of one log.
#[derive(Debug, Default)]
pub(crate) struct Coordinator {
    groups: HashMap<String, Membership>,
    next_member: u64,
}

#[derive(Debug, Default)]
struct Membership {
    /// Goes up on every join and leave.
    generation: u64,
    /// Member id -> the topics it subscribes to.
    members: BTreeMap<u64, Vec<Arc<str>>>,
}

impl Coordinator {
    /// Adds a member subscribed to `topics` to `group` (a rebalance) and returns its id.
    pub(crate) fn join(&mut self, group: &str, topics: Vec<Arc<str>>) -> u64 {
        self.next_member += 1;
        let id = self.next_member;
        let entry = self.groups.entry(group.to_owned()).or_default();
        entry.members.insert(id, topics);
        entry.generation += 1;
        id
    }

    /// Refuses to delete a group that has members, as Kafka's `DeleteGroups` does: their next
    /// rebalance would read from `start` again.
    pub(crate) fn check_deletable(&self, group: &str) -> Result<(), LogError> {
        match self.groups.get(group).map_or(0, |g| g.members.len()) {
            0 => Ok(()),
            members => Err(LogError::Backend(format!(
                "cannot delete group `{group}`: it has {members} member(s); a group is deleted once its members left"
            ))),
        }
    }

    /// How many groups ever had a member.
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }

    /// Removes a member (a rebalance, when it was a member). Returns whether it was one.
    pub(crate) fn leave(&mut self, group: &str, member: u64) -> bool {
        let Some(entry) = self.groups.get_mut(group) else {
            return false;
        };
        let was_member = entry.members.remove(&member).is_some();
        if was_member {
            entry.generation += 1;
        }
        was_member
    }

    /// The group's current generation, or `None` when `member` is not (or no longer) in it.
    pub(crate) fn generation(&self, group: &str, member: u64) -> Option<u64> {
        self.groups.get(group).filter(|g| g.members.contains_key(&member)).map(|g| g.generation)
    }

    /// Round-robin assignment of every partition of the subscribed topics to the members that
    /// subscribe to its topic. `partitions` gives a topic's partition count (0 when unknown).
    pub(crate) fn assignment(&self, group: &str, member: u64, partitions: impl Fn(&str) -> u32) -> Vec<TopicPartition> {
        let Some(group) = self.groups.get(group) else {
            return Vec::new();
        };
        let mut topics: Vec<&Arc<str>> = group.members.values().flatten().collect();
        topics.sort();
        topics.dedup();
        let mut turn = 0usize;
        let mut mine = Vec::new();
        for topic in topics {
            let subscribers: Vec<u64> =
                group.members.iter().filter(|(_, t)| t.contains(topic)).map(|(id, _)| *id).collect();
            for partition in 0..partitions(topic) {
                if subscribers[turn % subscribers.len()] == member {
                    mine.push(TopicPartition { topic: topic.clone(), partition });
                }
                turn += 1;
            }
        }
        mine
    }

    /// Checks that `cursor` may commit `positions` now: its generation is the group's, and every
    /// partition is assigned to it. Call it in the same critical section as the write.
    pub(crate) fn check_commit(&self, cursor: &Cursor, positions: &[(TopicPartition, u64)]) -> Result<(), LogError> {
        self.check(&cursor.group, cursor.generation, &cursor.assigned, positions)
    }

    /// [`check_commit`](Self::check_commit) with a [`Fence`] taken from a cursor earlier.
    #[cfg_attr(not(feature = "embedded"), allow(dead_code))]
    pub(crate) fn check_fence(&self, fence: &Fence, positions: &[(TopicPartition, u64)]) -> Result<(), LogError> {
        self.check(&fence.group, fence.generation, &fence.assigned, positions)
    }

    fn check(
        &self,
        group: &str,
        mine: u64,
        assigned: &[TopicPartition],
        positions: &[(TopicPartition, u64)],
    ) -> Result<(), LogError> {
        let fenced = |reason: String| LogError::Fenced { group: group.to_owned(), reason };
        let generation = self.groups.get(group).map(|g| g.generation);
        if generation != Some(mine) {
            return Err(fenced(format!("the group rebalanced (generation {generation:?}, this member has {mine})")));
        }
        if let Some((tp, _)) = positions.iter().find(|(tp, _)| !assigned.contains(tp)) {
            return Err(fenced(format!("partition {tp} is not assigned to this member")));
        }
        Ok(())
    }
}

/// What a write is checked against, owned, for a write that runs on another thread.
#[derive(Debug, Clone)]
pub(crate) struct Fence {
    group: String,
    generation: u64,
    assigned: Vec<TopicPartition>,
}

#[cfg_attr(not(feature = "embedded"), allow(dead_code))]
impl Fence {
    /// The group.
    pub(crate) fn group(&self) -> &str {
        &self.group
    }
}

/// One member's side of a group: its assignment and where it reads next.
#[derive(Debug)]
pub(crate) struct Cursor {
    /// The member id given by [`Coordinator::join`].
    pub(crate) id: u64,
    /// The group.
    pub(crate) group: String,
    start: StartFrom,
    /// The generation of the current assignment (0: none yet).
    generation: u64,
    assigned: Vec<TopicPartition>,
    /// The next offset to hand out per assigned partition.
    positions: HashMap<TopicPartition, u64>,
    /// Where each assigned partition started, for a rewind when nothing was committed yet.
    origins: HashMap<TopicPartition, u64>,
    /// Which partition the next read starts with, so that no partition starves.
    turn: usize,
}

impl Cursor {
    /// A member that has no assignment yet.
    pub(crate) fn new(id: u64, group: &str, start: StartFrom) -> Self {
        Cursor {
            id,
            group: group.to_owned(),
            start,
            generation: 0,
            assigned: Vec::new(),
            positions: HashMap::new(),
            origins: HashMap::new(),
            turn: 0,
        }
    }

    /// The error for a write or poll this member may not do.
    pub(crate) fn fenced(&self, reason: impl Into<String>) -> LogError {
        LogError::Fenced { group: self.group.clone(), reason: reason.into() }
    }

    /// What a write by this member is checked against.
    #[cfg_attr(not(feature = "embedded"), allow(dead_code))]
    pub(crate) fn fence(&self) -> Fence {
        Fence { group: self.group.clone(), generation: self.generation, assigned: self.assigned.clone() }
    }

    /// The generation of the current assignment (0: none yet).
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// The assigned partitions.
    pub(crate) fn assigned(&self) -> &[TopicPartition] {
        &self.assigned
    }

    /// Whether the group has handed out an assignment (possibly empty) to this member.
    pub(crate) fn has_assignment(&self) -> bool {
        self.generation != 0
    }

    /// The next offset this member reads from an assigned partition.
    pub(crate) fn position(&self, tp: &TopicPartition) -> Option<u64> {
        self.positions.get(tp).copied()
    }

    /// Takes a new generation's assignment (eager: revoke all, assign all). Each partition starts
    /// at the group's `committed` position, or per [`StartFrom`]; `bounds` gives a partition's
    /// first offset kept and its end. A position below the first kept starts there, as Kafka's
    /// `auto.offset.reset=earliest` does.
    pub(crate) fn rebalance(
        &mut self,
        generation: u64,
        assignment: Vec<TopicPartition>,
        committed: impl Fn(&TopicPartition) -> Option<u64>,
        bounds: impl Fn(&TopicPartition) -> (u64, u64),
    ) -> Polled {
        let revoked = std::mem::replace(&mut self.assigned, assignment);
        self.generation = generation;
        self.positions.clear();
        for tp in &self.assigned {
            let (first, end) = bounds(tp);
            let position = match (committed(tp), self.start) {
                (Some(offset), _) => offset.max(first),
                (None, StartFrom::Beginning) => first,
                (None, StartFrom::End) => end,
            };
            self.positions.insert(tp.clone(), position);
        }
        self.origins = self.positions.clone();
        Polled { revoked, assigned: self.assigned.clone(), records: Vec::new() }
    }

    /// The assigned partitions with their next offsets, starting with another partition on every
    /// call so that no partition starves when a poll fills up.
    pub(crate) fn reads(&mut self) -> Vec<(TopicPartition, u64)> {
        let count = self.assigned.len();
        let reads = (0..count)
            .map(|i| {
                let tp = &self.assigned[(self.turn + i) % count];
                (tp.clone(), self.positions[tp])
            })
            .collect();
        self.turn = self.turn.wrapping_add(1);
        reads
    }

    /// Records were handed out: the next read of their partitions starts after them.
    pub(crate) fn consumed(&mut self, records: &[Record]) {
        // A partition's records come together: one look-up per run of them.
        for run in records.chunk_by(|a, b| a.partition == b.partition && a.topic == b.topic) {
            let next = run.iter().map(|r| r.offset + 1).max().expect("a run is not empty");
            let tp = TopicPartition { topic: run[0].topic.clone(), partition: run[0].partition };
            if let Some(position) = self.positions.get_mut(&tp) {
                *position = (*position).max(next);
            }
        }
    }

    /// Moves a partition's position up to `offset`, the first record kept: the records below
    /// were deleted meanwhile (Kafka's `auto.offset.reset=earliest` does the same).
    pub(crate) fn skip_to(&mut self, tp: &TopicPartition, offset: u64) {
        if let Some(position) = self.positions.get_mut(tp) {
            *position = (*position).max(offset);
        }
    }

    /// Moves every assigned partition back to the group's `committed` position, or to where it
    /// started when nothing was committed (not below the `first` offset kept).
    pub(crate) fn rewind(
        &mut self,
        committed: impl Fn(&TopicPartition) -> Option<u64>,
        first: impl Fn(&TopicPartition) -> u64,
    ) {
        for tp in &self.assigned {
            let position = committed(tp).or_else(|| self.origins.get(tp).copied()).unwrap_or(0);
            self.positions.insert(tp.clone(), position.max(first(tp)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tps(assigned: &[TopicPartition]) -> Vec<u32> {
        assigned.iter().map(|tp| tp.partition).collect()
    }

    #[test]
    fn round_robin_and_generations() {
        let mut groups = Coordinator::default();
        let topic: Arc<str> = Arc::from("t");
        let a = groups.join("g", vec![topic.clone()]);
        assert_eq!(groups.generation("g", a), Some(1));
        let b = groups.join("g", vec![topic.clone()]);
        assert_eq!(groups.generation("g", a), Some(2));
        assert_eq!(tps(&groups.assignment("g", a, |_| 4)), [0, 2]);
        assert_eq!(tps(&groups.assignment("g", b, |_| 4)), [1, 3]);
        assert!(groups.leave("g", b));
        assert!(!groups.leave("g", b));
        assert_eq!(groups.generation("g", b), None);
        assert_eq!(tps(&groups.assignment("g", a, |_| 4)), [0, 1, 2, 3]);
    }

    #[test]
    fn stale_generation_is_fenced() {
        let mut groups = Coordinator::default();
        let topic: Arc<str> = Arc::from("t");
        let a = groups.join("g", vec![topic.clone()]);
        let mut cursor = Cursor::new(a, "g", StartFrom::Beginning);
        let generation = groups.generation("g", a).unwrap();
        cursor.rebalance(generation, groups.assignment("g", a, |_| 2), |_| None, |_| (0, 0));
        let position = vec![(TopicPartition::new(topic.clone(), 1), 3)];
        assert!(groups.check_commit(&cursor, &position).is_ok());
        let stranger = vec![(TopicPartition::new("other", 0), 3)];
        assert!(matches!(groups.check_commit(&cursor, &stranger), Err(LogError::Fenced { .. })));
        groups.join("g", vec![topic]);
        assert!(matches!(groups.check_commit(&cursor, &position), Err(LogError::Fenced { .. })));
    }
}
