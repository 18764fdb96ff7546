//! The shape of a simulated run in time: orders fall into rounds an hour of simulated time
//! apart, each placed and settled at one instant. Ordinary customers place at most four orders
//! a round; a few bulk buyers place a burst of eight in one round, within minutes: what the
//! fraud module's query flags. The ground truth counts the confirmed orders per customer and
//! round.

use std::collections::{BTreeSet, HashMap};

use customer_contract::CustomerId;
use jiff::{SignedDuration, Timestamp};
use order_contract::OrderId;
use product_contract::ProductId;
use rand::Rng;
use rand::rngs::StdRng;
use reserve::Request;

use super::simulation::seeded_id;

/// Where simulated time starts: later than any wall-clock data of a durable log, so that a
/// run never lands in windows of earlier, real-time ones.
const EPOCH: Timestamp = Timestamp::constant(1_893_456_000, 0); // 2030-01-01T00:00:00Z

/// The round of the orders whose payments a run starts for an earlier one ([`resume_time`]).
pub(crate) const RESUMED: usize = usize::MAX;

/// The hours of simulated time earlier runs may have used: one for each order they placed (a
/// round has at least one) and each payment they created (a run that resumed payments used a
/// slot before its rounds, and created at least one if any order was confirmed there). It only
/// grows, so that a run's rounds and its resume slot never share a window with earlier ones,
/// even with a run killed while resuming.
pub(crate) fn hours_before(orders_placed: u64, payments_created: u64) -> u64 {
    orders_placed.saturating_add(payments_created)
}

/// When a run starts the payments an earlier run left unstarted: half an hour before its first
/// round, half an hour after the earlier runs' last (in a ten-minute window of its own).
pub(crate) fn resume_time(hours_before: u64) -> Timestamp {
    let first_round = i64::try_from(hours_before).unwrap_or(i64::MAX);
    EPOCH + SignedDuration::from_hours(first_round) - SignedDuration::from_mins(30)
}

/// Orders of one bulk buyer's burst.
pub(crate) const BURST: usize = 8;

/// An ordinary customer's most orders in one round: never more than the query's threshold.
const ORDINARY_MOST: usize = 4;

/// The orders of one instant of simulated time.
pub(crate) struct Round {
    /// When they happen.
    pub time: Timestamp,
    /// What is ordered.
    pub requests: Vec<Request>,
}

/// Splits `orders` into rounds, continuing simulated time after the [`hours_before`] of
/// earlier runs (an hour a round, a round per order of them: time only goes forward).
pub(crate) fn rounds(
    orders: usize,
    customers: &[CustomerId],
    products: &[ProductId],
    hours_before: u64,
    rng: &mut StdRng,
) -> Vec<Round> {
    let request = |rng: &mut StdRng, customer_id: CustomerId| Request {
        order_id: seeded_id::<OrderId>(rng),
        customer_id,
        product_id: products[rng.random_range(0..products.len())],
        quantity: rng.random_range(1..=4),
    };
    // A bulk buyer per forty customers, while the orders allow.
    let bulk = (customers.len() / 40).max(1).min(orders / (BURST * 4)).min(customers.len());
    let ordinary = orders - bulk * BURST;
    // Three orders a customer on average: few rounds (each ends with the platform settling),
    // and room under the cap of four.
    let size = customers.len().max(1) * 3;
    let count = ordinary.div_ceil(size).max(usize::from(bulk > 0));
    let mut rounds: Vec<Round> = (0..count)
        .map(|r| Round {
            time: EPOCH + SignedDuration::from_hours(i64::try_from(hours_before as usize + r).unwrap_or(i64::MAX)),
            requests: Vec::new(),
        })
        .collect();
    for (r, round) in rounds.iter_mut().enumerate() {
        let mut placed: HashMap<CustomerId, usize> = HashMap::new();
        for _ in (r * size)..((r + 1) * size).min(ordinary) {
            let customer = loop {
                let pick = customers[rng.random_range(0..customers.len())];
                if placed.get(&pick).copied().unwrap_or(0) < ORDINARY_MOST {
                    break pick;
                }
            };
            *placed.entry(customer).or_default() += 1;
            round.requests.push(request(rng, customer));
        }
    }
    for buyer in &customers[..bulk] {
        let round = rng.random_range(0..rounds.len());
        rounds[round].requests.extend((0..BURST).map(|_| request(rng, *buyer)));
    }
    rounds
}

/// Confirmed orders per customer and round, as the simulation saw them.
#[derive(Debug, Default)]
pub(crate) struct SuspicionTruth {
    confirmed: HashMap<(usize, CustomerId), u64>,
}

impl SuspicionTruth {
    /// An order of `round` that was placed and whose payment goes through.
    pub fn confirmed(&mut self, round: usize, customer: CustomerId) {
        *self.confirmed.entry((round, customer)).or_default() += 1;
    }

    /// The customers with more than four confirmed orders in one round, hence in one
    /// ten-minute window.
    pub fn suspicious(&self) -> BTreeSet<CustomerId> {
        self.confirmed.iter().filter(|(_, n)| **n > 4).map(|((_, customer), _)| *customer).collect()
    }
}
