//! The reference ticketing platform on tramline: every module of the case study wired into one
//! [`App`] on any log, plus a seeded [`Simulation`] of customers buying tickets.

mod catalog;
mod clock;
mod mailbox;
mod shopping;
mod simulation;
mod statistics;

use std::sync::Arc;

use accounting::Accounting;
use customer::Customer;
use order::Order;
use order_history::OrderHistory;
use payment::{PaymentProvider, Payments};
use product::Product;
use reserve::Reserve;
use ticket::{MailSender, Ticket};
use tramline::App;
use tramline::log::EventLog;
use tramline::runtime::{CommandGateway, ProjectionHandle, RuntimeError, Settings};

pub use catalog::{asyncapi, catalog};
pub use clock::ShopClock;
pub use mailbox::{FolderMailer, MailCount};
pub use simulation::{CountingMailer, Invariant, SimulatedProvider, Simulation, SimulationError, Summary};
pub use statistics::Statistics;

/// The outside services the platform talks to.
#[derive(Clone)]
pub struct Services {
    /// The payment service provider.
    pub provider: Arc<dyn PaymentProvider>,
    /// The mail service.
    pub mailer: Arc<dyn MailSender>,
}

/// Every module of the platform, registered in one app.
pub struct Platform {
    /// The app that runs them.
    pub app: App,
    /// The customer module.
    pub customers: CommandGateway<Customer>,
    /// The product module.
    pub products: CommandGateway<Product>,
    /// The order module.
    pub orders: CommandGateway<Order>,
    /// The payment module.
    pub payments: Payments,
    /// The ticket module.
    pub tickets: CommandGateway<Ticket>,
    /// Order history.
    pub history: ProjectionHandle<OrderHistory>,
    /// Reserve.
    pub reserve: Reserve,
    /// Counts of what happened, for the summary.
    pub statistics: ProjectionHandle<Statistics>,
    /// Suspicious sales.
    pub fraud: fraud::SuspiciousSales,
    /// The clock every module stamps its messages with; a simulation pins it (and
    /// [`Platform::resume_timeline`]).
    pub clock: Arc<ShopClock>,
}

/// The modules of the platform, as `--modules` names them.
pub const MODULES: [&str; 10] = [
    "customer",
    "product",
    "order",
    "payment",
    "ticket",
    "order-history",
    "reserve",
    "platform",
    "fraud",
    "partner-feed",
];

impl Platform {
    /// Registers every module (accounting aside: it joins later, see [`Platform::add_accounting`]).
    pub async fn register(
        log: Arc<dyn EventLog>,
        settings: Settings,
        services: Services,
    ) -> Result<Self, RuntimeError> {
        Self::register_in(App::new(log).with_settings(settings), services).await
    }

    /// Registers every module in `app`, which may run only some of them
    /// ([`App::run_only`]): the others run in other processes on the same log. The app's
    /// clock becomes the platform's [`ShopClock`].
    pub async fn register_in(app: App, services: Services) -> Result<Self, RuntimeError> {
        let clock = Arc::new(ShopClock::default());
        let mut app = app.with_clock(clock.clone());
        let customers = customer::register(&mut app).await?;
        let products = product::register(&mut app).await?;
        let orders = order::register(&mut app).await?;
        let payments = payment::register(&mut app, services.provider).await?;
        let tickets = ticket::register(&mut app, services.mailer).await?;
        let history = order_history::register(&mut app).await?;
        let reserve = reserve::register(&mut app, orders.clone(), payments.clone()).await?;
        let statistics = app.projection(Statistics::default()).await?;
        let fraud = fraud::register(&mut app).await?;
        partner_feed::register(&mut app, None).await?;
        Ok(Platform { app, customers, products, orders, payments, tickets, history, reserve, statistics, fraud, clock })
    }

    /// Registers and starts every module.
    pub async fn start(log: Arc<dyn EventLog>, settings: Settings, services: Services) -> Result<Self, RuntimeError> {
        let mut platform = Self::register(log, settings, services).await?;
        platform.app.start().await?;
        Ok(platform)
    }

    /// Pins the clock to the latest time of a command or event on the log, if it holds any:
    /// what a simulation killed outright left behind (commands that waited on the log for their
    /// module, and what follows from them) is then done at the simulated time that run had
    /// reached, not at the machine's, and falls in the stream queries' windows with the rest of
    /// its round. For a simulation's process that runs the data modules: call it before
    /// `app.start()`; the clock stays pinned until the simulation pins it for its rounds, or
    /// [`ShopClock::release`].
    pub async fn resume_timeline(&self) -> Result<(), RuntimeError> {
        use tramline::Message;
        let log = self.app.log();
        let mut latest: Option<i64> = None;
        for topic in [
            customer_contract::CustomerCommand::TOPIC,
            customer_contract::CustomerEvent::TOPIC,
            product_contract::ProductCommand::TOPIC,
            product_contract::ProductEvent::TOPIC,
            order_contract::OrderCommand::TOPIC,
            order_contract::OrderEvent::TOPIC,
            payment_contract::PaymentCommand::TOPIC,
            payment_contract::PaymentEvent::TOPIC,
            ticket_contract::TicketCommand::TOPIC,
            ticket_contract::TicketEvent::TOPIC,
        ] {
            for partition in 0..log.partition_count(topic).await?.unwrap_or(0) {
                let tp = tramline::log::TopicPartition::new(topic, partition);
                latest = last_time(log.as_ref(), &tp).await?.into_iter().chain(latest).max();
            }
        }
        if let Some(time) = latest.and_then(|millis| jiff::Timestamp::from_millisecond(millis).ok()) {
            self.clock.pin(time);
        }
        Ok(())
    }

    /// Adds the accounting module. On a running platform it starts at once and replays the log
    /// from the beginning; nothing else changes.
    pub async fn add_accounting(&mut self) -> Result<ProjectionHandle<Accounting>, RuntimeError> {
        accounting::register(&mut self.app).await
    }

    /// The modules and event flows as a Mermaid diagram, derived from the declarations.
    pub fn topology(&self) -> String {
        self.app.topology().to_mermaid()
    }
}

/// The time of the last record of a partition, if it has one. Its last offsets may hold no
/// record to read (transaction markers; on Kafka, the records of a transaction a killed process
/// left open, aborted), so the look goes back in growing steps.
async fn last_time(log: &dyn EventLog, tp: &tramline::log::TopicPartition) -> Result<Option<i64>, RuntimeError> {
    let end = log.end_offset(tp).await?;
    let mut span: u64 = 16;
    loop {
        let from = end.saturating_sub(span);
        let records = log.read(tp, from, usize::try_from(end - from).unwrap_or(usize::MAX)).await?;
        if let Some(time) = records.iter().map(|record| record.timestamp).max() {
            return Ok(Some(time));
        }
        if from == 0 {
            return Ok(None);
        }
        span = span.saturating_mul(4);
    }
}
