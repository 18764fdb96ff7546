//! Shared set-up of the example binaries.

/// The binaries allocate through jemalloc: the runtime allocates and frees many small records,
/// which glibc's allocator handles with much more CPU (measured in the README).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::sync::Arc;

use ticketing_platform::{CountingMailer, Platform, Services, Simulation};
use tramline::MemoryLog;
use tramline::runtime::{RuntimeError, Settings};

/// Starts the whole platform on a fresh in-memory log with the simulation's services.
pub async fn start_platform(simulation: &Simulation) -> Result<(Platform, Arc<CountingMailer>), RuntimeError> {
    let mailer = Arc::new(CountingMailer::default());
    let services = Services { provider: Arc::new(simulation.provider()), mailer: mailer.clone() };
    let platform = Platform::start(MemoryLog::shared(), Settings::default(), services).await?;
    Ok((platform, mailer))
}

/// Logs to stderr, filtered by `RUST_LOG` (warnings by default).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// The README's code blocks, compiled and run as doctests so that the walkthrough stays true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
