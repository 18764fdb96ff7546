//! The reference ticketing platform on tramline: every module of the case study wired into one
//! [`App`] on any log, plus a seeded [`Simulation`] of customers buying tickets.

mod catalog;
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
pub use simulation::{CountingMailer, Invariant, SimulatedProvider, Simulation, Summary};
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
}

impl Platform {
    /// Registers every module (accounting aside: it joins later, see [`Platform::add_accounting`]).
    pub async fn register(
        log: Arc<dyn EventLog>,
        settings: Settings,
        services: Services,
    ) -> Result<Self, RuntimeError> {
        let mut app = App::new(log).with_settings(settings);
        let customers = customer::register(&mut app).await?;
        let products = product::register(&mut app).await?;
        let orders = order::register(&mut app).await?;
        let payments = payment::register(&mut app, services.provider).await?;
        let tickets = ticket::register(&mut app, services.mailer).await?;
        let history = order_history::register(&mut app).await?;
        let reserve = reserve::register(&mut app, orders.clone(), payments.clone()).await?;
        let statistics = app.projection(Statistics::default()).await?;
        partner_feed::register(&mut app, None).await?;
        Ok(Platform { app, customers, products, orders, payments, tickets, history, reserve, statistics })
    }

    /// Registers and starts every module.
    pub async fn start(log: Arc<dyn EventLog>, settings: Settings, services: Services) -> Result<Self, RuntimeError> {
        let mut platform = Self::register(log, settings, services).await?;
        platform.app.start().await?;
        Ok(platform)
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
