//! The aggregate harness decides as the runtime does: each entity on its own state, its events
//! through the codec, its state as its snapshot restores it. The export harness maps as the
//! runtime does, with its tables folded first.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tramline::export::{Export, PublicEvent};
use tramline::prelude::*;
use tramline::testing::{AggregateTest, ExportTest};

#[derive(ReferenceId, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reference(prefix = "lmp")]
pub struct LampId(uuid::Uuid);

#[derive(Command, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[command(module = "lamp", key = id)]
pub enum LampCommand {
    SwitchOn {
        id: LampId,
    },
    /// Counts a pair in a map whose keys are not text: the state no longer serialises.
    Tally {
        id: LampId,
        a: u8,
        b: u8,
    },
    /// Names the lamp with personal data that is not marked `#[pii]`.
    Name {
        id: LampId,
    },
    /// Measures the lamp's brightness: NaN, which JSON cannot hold.
    Measure {
        id: LampId,
    },
}

#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(module = "lamp", key = id)]
pub enum LampEvent {
    SwitchedOn { id: LampId },
    Tallied { id: LampId, a: u8, b: u8 },
    Named { id: LampId, name: LampName },
    Measured { id: LampId, lux: f64 },
}

/// Personal data behind an alias, which the derive cannot see through: without `#[pii]` the
/// codec refuses to write it.
pub type LampName = tramline::privacy::Personal<String>;

#[derive(Debug, thiserror::Error, PartialEq, Serialize, Deserialize)]
#[error("already on")]
pub struct AlreadyOn;

#[derive(Default, Clone, Serialize, Deserialize)]
pub struct Lamp {
    on: bool,
    /// Not in the snapshot: gone after a restart.
    #[serde(skip)]
    switched_on_here: bool,
    tallies: HashMap<(u8, u8), u32>,
}

impl Aggregate for Lamp {
    type Command = LampCommand;
    type Event = LampEvent;
    type Error = AlreadyOn;
    type Services = ();

    fn decide(&self, command: &LampCommand, _: &()) -> Result<Vec<LampEvent>, AlreadyOn> {
        match *command {
            LampCommand::SwitchOn { .. } if self.on => Err(AlreadyOn),
            LampCommand::SwitchOn { id } => Ok(vec![LampEvent::SwitchedOn { id }]),
            LampCommand::Tally { id, a, b } => Ok(vec![LampEvent::Tallied { id, a, b }]),
            LampCommand::Name { id } => Ok(vec![LampEvent::Named { id, name: "hall".to_owned().into() }]),
            LampCommand::Measure { id } => Ok(vec![LampEvent::Measured { id, lux: f64::NAN }]),
        }
    }

    fn evolve(&mut self, event: &LampEvent) {
        match *event {
            LampEvent::SwitchedOn { .. } => (self.on, self.switched_on_here) = (true, true),
            LampEvent::Tallied { a, b, .. } => *self.tallies.entry((a, b)).or_default() += 1,
            LampEvent::Named { .. } | LampEvent::Measured { .. } => {}
        }
    }
}

#[test]
fn each_entity_is_decided_on_its_own_history() {
    let (lamp, other) = (LampId::generate(), LampId::generate());
    AggregateTest::<Lamp>::new()
        .given([LampEvent::SwitchedOn { id: other }])
        .when(LampCommand::SwitchOn { id: lamp })
        .then_events([LampEvent::SwitchedOn { id: lamp }])
        .and_when(LampCommand::SwitchOn { id: other })
        .then_rejected_with(AlreadyOn);
}

#[test]
fn the_state_is_the_one_its_snapshot_restores() {
    let lamp = LampId::generate();
    AggregateTest::<Lamp>::new()
        .when(LampCommand::SwitchOn { id: lamp })
        .then_state(|state| assert!(state.on && !state.switched_on_here, "a skipped field is not restored"));
}

#[test]
#[should_panic(expected = "cannot be snapshotted as JSON (the runtime dead-letters a command that leaves it so)")]
fn a_state_that_cannot_be_snapshotted_fails_the_test() {
    AggregateTest::<Lamp>::new().when(LampCommand::Tally { id: LampId::generate(), a: 1, b: 2 });
}

#[test]
#[should_panic(expected = "the codec cannot encode the event")]
fn an_event_the_codec_cannot_encode_fails_the_test() {
    AggregateTest::<Lamp>::new().when(LampCommand::Name { id: LampId::generate() });
}

#[test]
#[should_panic(expected = "Measured of LampEvent does not read back from the JSON it is written as")]
fn an_event_that_would_not_read_back_fails_the_test() {
    AggregateTest::<Lamp>::new().when(LampCommand::Measure { id: LampId::generate() });
}

/// Events of another module than the lamp's commands.
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(module = "bulb", key = id)]
pub enum BulbEvent {
    SwitchedOn { id: LampId },
}

/// An aggregate whose commands and events name different modules.
#[derive(Default, Clone, Serialize, Deserialize)]
pub struct Mismatched;

impl Aggregate for Mismatched {
    type Command = LampCommand;
    type Event = BulbEvent;
    type Error = AlreadyOn;
    type Services = ();

    fn decide(&self, _: &LampCommand, _: &()) -> Result<Vec<BulbEvent>, AlreadyOn> {
        Ok(Vec::new())
    }

    fn evolve(&mut self, _: &BulbEvent) {}
}

#[test]
#[should_panic(expected = "commands belong to module `lamp` but events to `bulb`")]
fn an_aggregate_of_two_modules_is_refused_as_the_app_refuses_it() {
    AggregateTest::<Mismatched>::new();
}

#[tokio::test]
async fn the_app_refuses_an_aggregate_of_two_modules() {
    let mut app = App::new(MemoryLog::shared());
    let refused = app.aggregate::<Mismatched>(()).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("commands belong to module `lamp` but events to `bulb`"), "{refused}");
}

/// A lamp switched on, as partners see it: with its room, which the export looks up.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct LampLit {
    id: LampId,
    room: String,
}

impl PublicEvent for LampLit {
    const NAME: &'static str = "LampLit";
    const VERSION: u32 = 1;
    type Key = LampId;
    fn key(&self) -> &LampId {
        &self.id
    }
}

/// Rooms of bulbs (the other module's events, read as a table).
fn lamps_export() -> Export<HashMap<LampId, String>> {
    Export::with_state("lamp", "lit", "Lamps switched on.", HashMap::new())
        .table(|rooms, event: &Envelope<BulbEvent>| {
            let BulbEvent::SwitchedOn { id } = event.payload;
            rooms.insert(id, "hall".to_owned());
        })
        .publish(
            |_, event: &Envelope<LampEvent>| matches!(event.payload, LampEvent::SwitchedOn { .. }),
            |rooms, event| match &event.payload {
                LampEvent::SwitchedOn { id } => match rooms.get(id) {
                    Some(room) => Ok(LampLit { id: *id, room: room.clone() }),
                    None => Err(format!("no room for lamp {id}")),
                },
                _ => unreachable!("filtered"),
            },
        )
}

#[test]
fn an_export_publishes_what_its_mapping_makes_with_its_tables() {
    let (lamp, other) = (LampId::generate(), LampId::generate());
    let mut test = ExportTest::new(lamps_export()).given(BulbEvent::SwitchedOn { id: lamp });
    let published = test.when(LampEvent::SwitchedOn { id: lamp });
    let record = &published.records()[0];
    assert_eq!(record.topic.as_ref(), "public.lit");
    assert_eq!(record.key.as_deref(), Some(lamp.to_string().as_bytes()));
    published.then_published([LampLit { id: lamp, room: "hall".into() }]);
    test.when(LampEvent::Tallied { id: lamp, a: 1, b: 2 }).then_nothing();
    test.when(LampEvent::SwitchedOn { id: other })
        .then_dead_lettered_saying(&format!("no room for lamp {other}"));
}

/// An event two routes publish, one of which refuses it: nothing of it is published, as the
/// runtime does, so that the event, dead-lettered and taken again, publishes each record once.
#[test]
fn an_event_one_of_whose_routes_refuses_it_publishes_nothing() {
    let everywhere = lamps_export().publish(
        |_, event: &Envelope<LampEvent>| matches!(event.payload, LampEvent::SwitchedOn { .. }),
        |_, event| match &event.payload {
            LampEvent::SwitchedOn { id } => Ok(LampLit { id: *id, room: "anywhere".into() }),
            _ => unreachable!("filtered"),
        },
    );
    let (lamp, other) = (LampId::generate(), LampId::generate());
    let mut test = ExportTest::new(everywhere).given(BulbEvent::SwitchedOn { id: lamp });
    test.when(LampEvent::SwitchedOn { id: lamp })
        .then_published([LampLit { id: lamp, room: "hall".into() }, LampLit { id: lamp, room: "anywhere".into() }]);
    let refused = test.when(LampEvent::SwitchedOn { id: other });
    assert!(refused.records().is_empty(), "the second route's record is not published either");
    refused.then_dead_lettered_saying(&format!("no room for lamp {other}"));
}

#[test]
#[should_panic(expected = "no table of the export reads")]
fn an_export_test_given_an_event_no_table_reads_fails() {
    let _ = ExportTest::new(lamps_export()).given(LampEvent::SwitchedOn { id: LampId::generate() });
}

#[test]
#[should_panic(expected = "export feed `Lamps Lit` is not a valid name")]
fn an_export_test_refuses_a_name_the_app_refuses() {
    let _ = ExportTest::new(Export::new("lamp", "Lamps Lit", "Lamps switched on."));
}

#[test]
#[should_panic(expected = "the export publishes nothing of")]
fn an_export_test_when_an_event_no_mapping_reads_fails() {
    let _ = ExportTest::new(lamps_export()).when(BulbEvent::SwitchedOn { id: LampId::generate() });
}

/// Readings of a gauge; a level that is not a number is written as JSON `null`, which does not
/// read back as a number.
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(module = "gauge", key = id)]
pub enum GaugeEvent {
    Read { id: LampId, level: f64 },
}

/// A gauge's reading, as partners see it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct GaugeRead {
    id: LampId,
    level: f64,
}

impl PublicEvent for GaugeRead {
    const NAME: &'static str = "GaugeRead";
    const VERSION: u32 = 1;
    type Key = LampId;
    fn key(&self) -> &LampId {
        &self.id
    }
}

/// An event that a table of the export reads too and that does not decode: the runtime skips
/// it in the table (a warning) and dead-letters it, as the harness must say.
#[test]
fn an_event_a_table_cannot_read_is_dead_lettered_as_the_runtime_does() {
    let export = Export::with_state("gauge", "levels", "Gauge levels.", 0_usize)
        .table(|readings, _: &Envelope<GaugeEvent>| *readings += 1)
        .publish(
            |_, _: &Envelope<GaugeEvent>| true,
            |_, event| match event.payload {
                GaugeEvent::Read { id, level } => Ok(GaugeRead { id, level }),
            },
        );
    let mut test = ExportTest::new(export);
    test.when(GaugeEvent::Read { id: LampId::generate(), level: f64::NAN })
        .then_dead_lettered_saying("f64");
}
