//! A seeded simulation of the ticket shop: customers, products, and orders whose payments the
//! simulated payment service provider approves or declines. The same seed makes the same
//! customers, orders and decisions, so the ground truth is known and the summary checks it.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use customer::CustomerError;
use customer_contract::{CustomerCommand, CustomerId};
use futures::{FutureExt, StreamExt};
use order_contract::OrderEvent;
use payment::{Charge, ChargeDecision, PaymentProvider, ProviderError};
use payment_contract::PaymentId;
use product::ProductError;
use product_contract::{Money, ProductCommand, ProductId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reserve::ReserveError;
use serde::Serialize;
use ticket::{MailError, MailSender, TicketMail};
use tramline::runtime::{CommandError, CommandGateway, Outcome, RuntimeError};
use tramline::{Aggregate, Envelope, ReferenceId};
use uuid::Uuid;

use crate::{MailCount, Platform, shopping};

/// How long a reservation or a command whose outcome did not arrive is tried again (a module
/// restarting, a broker away, a full disk), pausing twice as long each time up to [`MAX_PAUSE`]:
/// the driver waits out what its modules wait out. A module that is not running at all is
/// given up after it, and counted as refusing.
const PATIENCE: Duration = Duration::from_secs(300);

/// The longest pause between two attempts.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// The shape of a simulated run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simulation {
    /// Everything random derives from it.
    pub seed: u64,
    /// How many customers register.
    pub customers: usize,
    /// How many orders they place.
    pub orders: usize,
    /// How many reservations are in flight at once.
    pub concurrency: usize,
    /// The share of payments the provider declines, in percent.
    pub decline_percent: u64,
}

impl Default for Simulation {
    fn default() -> Self {
        Simulation { seed: 1, customers: 100, orders: 1000, concurrency: 256, decline_percent: 10 }
    }
}

/// The range on sale: name and price in cents.
const PRODUCTS: [(&str, i64); 5] =
    [("Single ride", 250), ("Day pass", 800), ("Airport shuttle", 1_200), ("Week pass", 2_900), ("Month pass", 9_900)];

/// A payment service provider that declines a fixed, seeded share of payments, decided by the
/// payment ID alone: the simulation knows in advance which ones.
#[derive(Debug, Clone, Copy)]
pub struct SimulatedProvider {
    seed: u64,
    decline_percent: u64,
}

impl SimulatedProvider {
    /// Whether this payment will be declined.
    pub fn declines(&self, payment_id: &PaymentId) -> bool {
        let id = payment_id.as_uuid().as_u128();
        splitmix64((id as u64) ^ ((id >> 64) as u64) ^ self.seed) % 100 < self.decline_percent
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[async_trait]
impl PaymentProvider for SimulatedProvider {
    async fn charge(&self, charge: &Charge) -> Result<ChargeDecision, ProviderError> {
        Ok(match self.declines(&charge.payment_id) {
            true => ChargeDecision::Declined { reason: "card declined (simulated)".into() },
            false => ChargeDecision::Approved,
        })
    }
}

/// A mail service that counts distinct mails by idempotency key.
#[derive(Debug, Default)]
pub struct CountingMailer {
    keys: Mutex<HashSet<Uuid>>,
    attempts: AtomicU64,
}

impl CountingMailer {
    /// Distinct mails sent.
    pub fn sent(&self) -> u64 {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).len() as u64
    }

    /// Calls, repeats included.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl MailSender for CountingMailer {
    async fn send(&self, mail: &TicketMail) -> Result<(), MailError> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).insert(mail.idempotency_key);
        Ok(())
    }
}

/// What the log held before a run.
#[derive(Debug, Clone, Copy, Default)]
struct Before {
    orders_placed: u64,
    payments_created: u64,
    tickets_issued: u64,
    payments_cancelled: u64,
}

impl Before {
    fn of(statistics: &crate::Statistics) -> Self {
        Before {
            orders_placed: statistics.orders_placed,
            payments_created: statistics.payments_created,
            tickets_issued: statistics.tickets_issued,
            payments_cancelled: statistics.payments_cancelled,
        }
    }
}

/// What a run produced, with the ground truth it is checked against. Counts of events are over
/// the whole log (a durable log keeps earlier runs); reservations, mails and speed are this run's.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Orders the simulation placed successfully.
    pub reservations: u64,
    /// Whether the run was stopped before placing every order (Ctrl-C): the orders in flight
    /// were finished, and the figures are checked as for a whole run.
    pub stopped_early: bool,
    /// Reservations refused by a module.
    pub reservations_rejected: u64,
    /// OrderPlaced events on the log before this run.
    pub orders_placed_before: u64,
    /// Orders an earlier run placed but left without a payment (its process was killed between
    /// the two steps of a reservation), whose payments this run started.
    pub orders_resumed: u64,
    /// TicketIssued events on the log before this run.
    pub tickets_issued_before: u64,
    /// OrderPlaced events.
    pub orders_placed: u64,
    /// PaymentCompleted events.
    pub payments_completed: u64,
    /// PaymentCancelled events.
    pub payments_cancelled: u64,
    /// Payments the provider was set to decline (ground truth).
    pub payments_declined_expected: u64,
    /// OrderConfirmed events.
    pub orders_confirmed: u64,
    /// OrderCancelled events.
    pub orders_cancelled: u64,
    /// TicketIssued events.
    pub tickets_issued: u64,
    /// Orders with more than one ticket (must be 0).
    pub orders_with_several_tickets: u64,
    /// Distinct ticket mails.
    pub tickets_mailed: u64,
    /// Revenue in accounting, which joined after the run (cents).
    pub accounting_revenue: i64,
    /// The sum of the totals of confirmed orders, from order history (cents).
    pub confirmed_revenue: i64,
    /// Customers the fraud module flagged for suspicious sales (whole log).
    pub suspicious_customers: u64,
    /// Customers with more than four confirmed orders in one ten-minute window (ground truth).
    /// `None` when the order module runs in another process: it stamps confirmations with its
    /// own clock, not the simulation's, so the windows they fall in are not known here.
    pub suspicious_customers_expected: Option<u64>,
    /// Records in dead-letter topics (must be 0).
    pub dead_letters: u64,
    /// Seconds from the first order until every module was quiet.
    pub elapsed_s: f64,
    /// Reservations (placed or refused) through the whole chain per second.
    pub orders_per_s: f64,
}

/// One checked property of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invariant {
    /// What must hold.
    pub name: &'static str,
    /// Whether it held (true when it was not checked).
    pub holds: bool,
    /// Whether it could be checked in this run.
    pub checked: bool,
    /// The figures compared.
    pub detail: String,
}

impl Summary {
    /// The invariants of a run.
    pub fn invariants(&self) -> Vec<Invariant> {
        let check = |name, holds, detail: String| Invariant { name, holds, checked: true, detail };
        vec![
            check(
                "tickets issued = orders confirmed = payments completed",
                self.tickets_issued == self.orders_confirmed && self.orders_confirmed == self.payments_completed,
                format!("{} = {} = {}", self.tickets_issued, self.orders_confirmed, self.payments_completed),
            ),
            check(
                "accounting revenue = sum of confirmed orders",
                self.accounting_revenue == self.confirmed_revenue,
                format!("{} = {}", Money::cents(self.accounting_revenue), Money::cents(self.confirmed_revenue)),
            ),
            check(
                "orders placed = orders before + reservations",
                self.orders_placed == self.orders_placed_before + self.reservations,
                format!("{} = {} + {}", self.orders_placed, self.orders_placed_before, self.reservations),
            ),
            check(
                "payments cancelled = orders cancelled = declines expected",
                self.payments_cancelled == self.orders_cancelled
                    && self.orders_cancelled == self.payments_declined_expected,
                format!(
                    "{} = {} = {}",
                    self.payments_cancelled, self.orders_cancelled, self.payments_declined_expected
                ),
            ),
            check(
                "every order settled (confirmed + cancelled = placed)",
                self.orders_confirmed + self.orders_cancelled == self.orders_placed,
                format!("{} + {} = {}", self.orders_confirmed, self.orders_cancelled, self.orders_placed),
            ),
            check(
                "no order has two tickets",
                self.orders_with_several_tickets == 0,
                format!("{}", self.orders_with_several_tickets),
            ),
            check(
                "one mail per new ticket",
                self.tickets_mailed == self.tickets_issued - self.tickets_issued_before,
                format!("{} = {} - {}", self.tickets_mailed, self.tickets_issued, self.tickets_issued_before),
            ),
            match self.suspicious_customers_expected {
                Some(expected) => check(
                    "suspicious customers flagged = ground truth",
                    self.suspicious_customers == expected,
                    format!("{} = {expected}", self.suspicious_customers),
                ),
                None => Invariant {
                    name: "suspicious customers flagged = ground truth",
                    holds: true,
                    checked: false,
                    detail: "not checked: the order module runs in another process, on its own clock".to_owned(),
                },
            },
            check("no dead letters", self.dead_letters == 0, format!("{}", self.dead_letters)),
            // Every simulated request is valid: a refusal is a fault (a module or the log away
            // for longer than the retries).
            check("no reservation refused", self.reservations_rejected == 0, format!("{}", self.reservations_rejected)),
        ]
    }

    /// Whether every invariant holds.
    pub fn holds(&self) -> bool {
        self.invariants().iter().all(|i| i.holds)
    }

    /// Counts a payment started for `customer`'s order of `round`: a decline expected, or an
    /// order confirmed in the suspicious-sales ground truth.
    fn expect_payment(
        &mut self,
        truth: &mut shopping::SuspicionTruth,
        round: usize,
        customer: CustomerId,
        declined: bool,
    ) {
        self.payments_declined_expected += u64::from(declined);
        if !declined {
            truth.confirmed(round, customer);
        }
    }
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Setting up customers or products failed.
    #[error("setting up the simulation failed: {0}")]
    Setup(String),
}

/// Sends a command, and the same envelope again while its outcome does not arrive (a module
/// restarting): the module applies it once.
async fn send_with_retries<A: Aggregate>(
    gateway: &CommandGateway<A>,
    command: A::Command,
    stop: &AtomicBool,
) -> Outcome<A> {
    let envelope = gateway.envelope(command);
    retrying(|| gateway.send_envelope(envelope.clone()), CommandError::is_transient, stop).await
}

/// The output of `work`, or `None` once `stop` is set (checked every 100 ms).
async fn until_stopped<T>(stop: &AtomicBool, work: impl std::future::Future<Output = T>) -> Option<T> {
    let stopped = async {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        output = work => Some(output),
        () = stopped => None,
    }
}

/// Tries `attempt` again, after a pause, while it fails in a way that may pass: for at most
/// [`PATIENCE`], and not once `stop` is set (Ctrl-C: what is in flight ends).
async fn retrying<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    mut attempt: impl FnMut() -> F,
    transient: impl Fn(&E) -> bool,
    stop: &AtomicBool,
) -> Result<T, E> {
    let started = Instant::now();
    let mut attempts = 1;
    let mut pause = Duration::from_millis(500);
    loop {
        match attempt().await {
            Err(error) if transient(&error) && started.elapsed() < PATIENCE && !stop.load(Ordering::Relaxed) => {
                tracing::warn!(%error, attempts, "no outcome; trying again");
                attempts += 1;
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            outcome => return outcome,
        }
    }
}

pub(crate) fn seeded_id<I: ReferenceId>(rng: &mut StdRng) -> I {
    I::from_uuid(uuid::Builder::from_random_bytes(rng.random()).into_uuid())
}

impl Simulation {
    /// The IDs of the customers this seed registers, in order.
    pub fn customer_ids(&self) -> Vec<CustomerId> {
        self.seeded().0
    }

    /// The customers and products of this seed.
    fn seeded(&self) -> (Vec<CustomerId>, Vec<ProductId>) {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let customers = (0..self.customers.max(1)).map(|_| seeded_id(&mut rng)).collect();
        let products = PRODUCTS.iter().map(|_| seeded_id(&mut rng)).collect();
        (customers, products)
    }

    /// The payment service provider of this simulation.
    pub fn provider(&self) -> SimulatedProvider {
        SimulatedProvider { seed: self.seed, decline_percent: self.decline_percent }
    }

    /// Runs the simulation on a started platform: registers customers and products, places the
    /// orders, waits until every module is quiet (in this process and, for modules that run
    /// elsewhere, on the log), then adds accounting (which replays the log from the beginning)
    /// and summarises. `mails` counts the ticket mails sent; `progress` is called with each
    /// finished reservation.
    pub async fn run(
        &self,
        platform: &mut Platform,
        mails: &dyn MailCount,
        progress: impl Fn(u64),
    ) -> Result<Summary, SimulationError> {
        self.run_paced(platform, mails, None, progress).await
    }

    /// [`Simulation::run`], placing at most `rate` orders per second when given (for latency
    /// measured below the maximum rate).
    pub async fn run_paced(
        &self,
        platform: &mut Platform,
        mails: &dyn MailCount,
        rate: Option<f64>,
        progress: impl Fn(u64),
    ) -> Result<Summary, SimulationError> {
        self.run_until(platform, mails, rate, progress, &AtomicBool::new(false)).await
    }

    /// [`Simulation::run_paced`] that places no more orders once `stop` turns true (Ctrl-C):
    /// the reservations in flight finish, every module settles, and the summary checks what was
    /// done, so that a stopped run leaves no order half-placed on a durable log.
    pub async fn run_until(
        &self,
        platform: &mut Platform,
        mails: &dyn MailCount,
        rate: Option<f64>,
        progress: impl Fn(u64),
        stop: &AtomicBool,
    ) -> Result<Summary, SimulationError> {
        let (customers, products) = self.seeded();
        let forgotten = self.set_up(platform, &customers, &products, stop).await?;
        // Forgotten customers place no more orders: the others shop as planned.
        if !forgotten.is_empty() {
            tracing::info!(forgotten = forgotten.len(), "customers of this seed were forgotten: they place no orders");
        }
        let customers: Vec<CustomerId> = customers.into_iter().filter(|c| !forgotten.contains(c)).collect();
        if customers.is_empty() {
            return Err(SimulationError::Setup(
                "every customer of this seed was forgotten: run with another --seed".into(),
            ));
        }
        // On a log that has seen runs before (a durable one), continue: new orders, and figures
        // checked over the whole log, once what an earlier run left is done (its last commands
        // applied, the mails of its last tickets sent).
        platform.app.settle().await?;
        let before = platform.statistics.read(Before::of);
        let mails_before = mails.sent();
        let mut rng = StdRng::seed_from_u64(splitmix64(self.seed ^ splitmix64(before.orders_placed)));

        // Suspicious sales flagged before this run: the same seeded customers may be again.
        let flagged_before = platform.fraud.flagged_customers().await?;
        let mut truth = shopping::SuspicionTruth::default();
        let mut summary = Summary::default();
        let started = Instant::now();
        let hours_before = shopping::hours_before(before.orders_placed, before.payments_created);
        self.resume_unpaid(platform, hours_before, &mut summary, &mut truth, stop).await?;
        let rounds = shopping::rounds(self.orders, &customers, &products, hours_before, &mut rng);
        let provider = self.provider();
        let reserve = &platform.reserve;
        let mut done = 0;
        // Each round happens at one instant of simulated time, and is settled before the next.
        let mut placed = 0;
        // Stopped while setting up: no round starts (there may be none to notice it).
        summary.stopped_early = stop.load(Ordering::Relaxed);
        for (round, shopping::Round { time, requests }) in rounds.into_iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                summary.stopped_early = true;
                break;
            }
            platform.clock.pin(time);
            tracing::info!(round, orders = requests.len(), "a round of orders starts");
            let first = placed;
            placed += requests.len();
            let mut results = futures::stream::iter(requests.into_iter().enumerate())
                // Stopped: no new reservation starts; those in flight finish.
                .take_while(|_| std::future::ready(!stop.load(Ordering::Relaxed)))
                .map(|(i, request)| async move {
                    if let Some(rate) = rate.filter(|r| *r > 0.0) {
                        let due = started + Duration::from_secs_f64((first + i) as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let (customer, declined) = (request.customer_id, provider.declines(&request.payment_id()));
                    // A module was away (restarting, say): the same request again is recognised
                    // by its commands' ids and applied once.
                    let result = retrying(|| reserve.reserve(request.clone()), ReserveError::is_transient, stop).await;
                    (result, customer, declined)
                })
                .buffer_unordered(self.concurrency.max(1));
            while let Some((result, customer, declined)) = results.next().await {
                match result {
                    Ok(_) => {
                        summary.reservations += 1;
                        summary.expect_payment(&mut truth, round, customer, declined);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "reservation refused");
                        summary.reservations_rejected += 1;
                    }
                }
                done += 1;
                progress(done);
            }
            drop(results);
            platform.app.settle().await?;
        }
        platform.clock.release();
        let elapsed = started.elapsed();

        let accounting = platform.add_accounting().await?;
        accounting.caught_up().await?;
        summary.accounting_revenue = accounting.read(|books| books.total().revenue.as_cents());
        summary.confirmed_revenue = platform.history.read(|history| history.confirmed_revenue().as_cents());
        platform.statistics.read(|stats| {
            summary.orders_placed = stats.orders_placed;
            summary.payments_completed = stats.payments_completed;
            summary.payments_cancelled = stats.payments_cancelled;
            summary.orders_confirmed = stats.orders_confirmed;
            summary.orders_cancelled = stats.orders_cancelled;
            summary.tickets_issued = stats.tickets_issued;
            summary.orders_with_several_tickets = stats.orders_with_several_tickets() as u64;
        });
        // (A shared mail folder emptied meanwhile counts as no mail, not as a wrapped count.)
        summary.tickets_mailed = mails.sent().saturating_sub(mails_before);
        summary.orders_placed_before = before.orders_placed;
        summary.tickets_issued_before = before.tickets_issued;
        summary.payments_declined_expected += before.payments_cancelled;
        summary.suspicious_customers = platform.fraud.flagged_customers().await?.len() as u64;
        summary.suspicious_customers_expected = platform
            .app
            .runs_here(<order_contract::OrderEvent as tramline::Message>::MODULE)
            .then(|| flagged_before.union(&truth.suspicious()).count() as u64);
        summary.dead_letters = platform.app.dead_letters().await?;
        summary.elapsed_s = elapsed.as_secs_f64();
        summary.stopped_early |= done < self.orders as u64;
        summary.orders_per_s = done as f64 / elapsed.max(Duration::from_micros(1)).as_secs_f64();
        Ok(summary)
    }

    /// Pays for the orders an earlier run placed and left without a payment (killed between
    /// the two steps of a reservation), as their customers would on coming back: each payment
    /// starts in the flow of its order's placement, at one instant of simulated time between the
    /// earlier runs' rounds and this run's, and the platform settles. A payment's ID derives
    /// from its order's, so that a run killed while doing this and the next one start the same
    /// payment of each order, which the payment module applies once.
    async fn resume_unpaid(
        &self,
        platform: &mut Platform,
        hours_before: u64,
        summary: &mut Summary,
        truth: &mut shopping::SuspicionTruth,
        stop: &AtomicBool,
    ) -> Result<(), SimulationError> {
        let mut unpaid: Vec<Envelope<OrderEvent>> =
            platform.statistics.read(|stats| stats.awaiting_payment.values().cloned().collect());
        if unpaid.is_empty() {
            return Ok(());
        }
        tracing::info!(orders = unpaid.len(), "paying for the orders an earlier run left without a payment");
        unpaid.sort_by_key(|placed| match placed.payload {
            OrderEvent::Placed { order_id, .. } => Some(order_id),
            _ => None,
        });
        platform.clock.pin(shopping::resume_time(hours_before));
        let (payments, provider) = (&platform.payments, self.provider());
        let mut results = futures::stream::iter(unpaid)
            .map(|placed| async move {
                let OrderEvent::Placed { order_id, customer_id, total, .. } = placed.payload else {
                    unreachable!("only placements await a payment")
                };
                let started =
                    retrying(|| payments.start(order_id, total, &placed, &[]), CommandError::is_transient, stop).await;
                (started, customer_id, provider.declines(&PaymentId::of_order(order_id)))
            })
            .buffer_unordered(self.concurrency.max(1));
        while let Some((started, customer, declined)) = results.next().await {
            match started {
                Ok(_) => {
                    summary.orders_resumed += 1;
                    summary.expect_payment(truth, shopping::RESUMED, customer, declined);
                }
                Err(error) => {
                    tracing::warn!(%error, "the payment of an order left unpaid was refused");
                    summary.reservations_rejected += 1;
                }
            }
        }
        drop(results);
        platform.app.settle().await?;
        Ok(())
    }

    async fn set_up(
        &self,
        platform: &Platform,
        customers: &[CustomerId],
        products: &[ProductId],
        stop: &AtomicBool,
    ) -> Result<HashSet<CustomerId>, SimulationError> {
        tracing::info!(customers = customers.len(), "registering the customers");
        let registrations = customers.iter().enumerate().map(|(i, customer_id)| {
            let register = CustomerCommand::Register {
                customer_id: *customer_id,
                name: format!("Customer {i}").into(),
                email: format!("customer{i}@example.org").into(),
            };
            send_with_retries(&platform.customers, register, stop).map(|result| (*customer_id, result))
        });
        // Registered by an earlier run: the same seed makes the same customers and products.
        let registering = futures::stream::iter(registrations)
            // Stopped: no new registration starts (nor any round of orders after them).
            .take_while(|_| std::future::ready(!stop.load(Ordering::Relaxed)))
            .buffer_unordered(self.concurrency.max(1))
            .collect::<Vec<_>>();
        // Nor does the set-up wait for those in flight, which may be retried for minutes when
        // the customer module is away: they are on the log, and applied once it runs.
        let Some(results) = until_stopped(stop, registering).await else { return Ok(HashSet::new()) };
        // A customer forgotten since an earlier run (the right to erasure) stays forgotten.
        let mut forgotten = HashSet::new();
        for (customer_id, result) in results {
            match result {
                Ok(_) | Err(CommandError::Rejected(CustomerError::AlreadyRegistered(_))) => {}
                Err(CommandError::Rejected(CustomerError::Forgotten(_))) => _ = forgotten.insert(customer_id),
                Err(error) => return Err(SimulationError::Setup(error.to_string())),
            }
        }
        for ((name, cents), product_id) in PRODUCTS.iter().zip(products) {
            let create =
                ProductCommand::Create { product_id: *product_id, name: (*name).into(), price: Money::cents(*cents) };
            match until_stopped(stop, send_with_retries(&platform.products, create, stop)).await {
                None => return Ok(forgotten),
                Some(Ok(_) | Err(CommandError::Rejected(ProductError::AlreadyExists(_)))) => {}
                Some(Err(error)) => return Err(SimulationError::Setup(error.to_string())),
            }
        }
        platform.reserve.catalog().caught_up().await?;
        Ok(forgotten)
    }
}
