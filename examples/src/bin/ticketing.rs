//! The whole ticketing platform in one process: simulated customers buy tickets, every module
//! reacts, accounting joins at the end and replays the log; a summary checks the invariants.
//!
//! ```text
//! cargo run --release --bin ticketing -- --orders 2000 --seed 7        # durable, ./tramline-data
//! cargo run --release --bin ticketing -- --json --orders 2000 --seed 7 --memory
//! cargo run --release --bin ticketing -- topology
//! cargo run --release --bin ticketing -- catalog --asyncapi
//! ```
//!
//! Spread over processes on Kafka, each module in its own (the driver last):
//!
//! ```text
//! ticketing --brokers 127.0.0.1:9092 --modules customer,product,order &
//! ticketing --brokers 127.0.0.1:9092 --modules payment &
//! ticketing --brokers 127.0.0.1:9092 --modules ticket &
//! ticketing --brokers 127.0.0.1:9092 --modules simulation --orders 5000
//! ```

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};
use comfy_table::{Cell, Color, Table};
use indicatif::{ProgressBar, ProgressStyle};
use product_contract::Money;
use ticketing_platform::{FolderMailer, MODULES, Platform, Services, Simulation, Summary};
use tramline::runtime::Settings;
use tramline::{App, MemoryLog};
use tramline_examples::{LogArgs, init_logging, register_platform, usage_error};

/// Runs the reference ticketing platform with simulated customers. Ctrl-C or SIGTERM stops
/// placing orders: those in flight finish, every module settles and the summary is printed.
#[derive(Debug, Parser)]
#[command(name = "ticketing", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Seed of the simulation: the same seed makes the same customers, orders and declines.
    /// Spread over processes, give the payment module's process and the driver the same seed
    /// and `--decline-percent`: the provider declines by them, and the driver expects it.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How many orders to place (planned up front, so at most ten million).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    orders: u64,
    /// How many customers register.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    customers: u64,
    /// How many reservations are in flight at once.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    concurrency: u64,
    /// The share of payments the simulated provider declines, in percent.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=100))]
    decline_percent: u64,
    /// Print the summary as one JSON object on the last line of stdout.
    #[arg(long)]
    json: bool,
    /// Run only these modules in this process (comma-separated); the others run in other
    /// processes on the same Kafka cluster. `simulation` is the driver: it places the orders,
    /// waits until every module is quiet and prints the summary, running reserve, order-history,
    /// platform, accounting and fraud with it. Without `simulation`, the process serves its modules
    /// until Ctrl-C or SIGTERM.
    #[arg(long, value_delimiter = ',', requires = "brokers", value_parser = module_name)]
    modules: Option<Vec<String>>,
    /// Where the ticket module writes its mails, one file each, when the platform is spread
    /// over processes (the driver counts them there).
    #[arg(long, value_name = "DIR", default_value = "./tramline-mail")]
    mail_dir: PathBuf,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the modules and the event flows between them as a Mermaid diagram.
    Topology,
    /// Print the JSON Schema of every event and public event, or the AsyncAPI document of the
    /// public feeds (`--asyncapi`); `--out DIR` writes them as files.
    Catalog(tramline_examples::catalog::CatalogArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    if let Err(message) = cli.log.check() {
        usage_error::<Cli>(message);
    }
    if cli.modules.is_some() && cli.log.brokers.is_none() {
        usage_error::<Cli>("`--modules` runs modules in processes that meet on Kafka: it needs `--brokers`");
    }
    let result = match (&cli.command, &cli.modules) {
        (Some(Command::Topology), _) => topology().await,
        (Some(Command::Catalog(args)), _) => tramline_examples::catalog::run(args).map(|()| ExitCode::SUCCESS),
        (None, None) => run(&cli).await,
        (None, Some(modules)) => run_some(&cli, modules).await,
    };
    result.unwrap_or_else(|error| {
        eprintln!("error: {error}");
        ExitCode::FAILURE
    })
}

async fn topology() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let simulation = Simulation::default();
    let services = Services {
        provider: Arc::new(simulation.provider()),
        mailer: Arc::new(ticketing_platform::CountingMailer::default()),
    };
    let mut platform = Platform::register(MemoryLog::shared(), Settings::default(), services).await?;
    platform.add_accounting().await?;
    print!("{}", platform.topology());
    Ok(ExitCode::SUCCESS)
}

/// The driver's pseudo-module in `--modules`.
const DRIVER: &str = "simulation";

fn module_name(name: &str) -> Result<String, String> {
    match MODULES.contains(&name) || name == "accounting" || name == DRIVER {
        true => Ok(name.to_owned()),
        false => Err(format!("unknown module `{name}`; known: {}, accounting, {DRIVER}", MODULES.join(", "))),
    }
}

fn simulation_of(cli: &Cli) -> Simulation {
    Simulation {
        seed: cli.seed,
        // The ranges of the flags fit any usize of 32 bits or more.
        customers: cli.customers as usize,
        orders: cli.orders as usize,
        concurrency: cli.concurrency as usize,
        decline_percent: cli.decline_percent,
    }
}

/// Runs some modules of the platform, the others running in other processes.
async fn run_some(cli: &Cli, modules: &[String]) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let simulation = simulation_of(cli);
    let drives = modules.iter().any(|m| m == DRIVER);
    let mut local: BTreeSet<&str> = modules.iter().map(String::as_str).filter(|m| *m != DRIVER).collect();
    if drives {
        local.extend(["reserve", "order-history", "platform", "accounting", "fraud", "partner-feed"]);
    }
    if local.contains("fraud") {
        // The fraud module's processors are those of its query.
        local.insert(fraud::QUERY);
    }
    let log = cli.log.open().await?;
    // The mail folder is the ticket module's (it writes) and the driver's (it counts).
    let mailer = (drives || local.contains("ticket"))
        .then(|| FolderMailer::new(&cli.mail_dir))
        .transpose()
        .map_err(|error| format!("cannot use {} for mails: {error}", cli.mail_dir.display()))?;
    let provider = Arc::new(simulation.provider());
    let services = match &mailer {
        Some(mailer) => Services { provider, mailer: Arc::new(mailer.clone()) },
        None => Services { provider, mailer: Arc::new(ticketing_platform::CountingMailer::default()) },
    };
    let app = App::new(log).with_settings(Settings::default()).run_only(local.iter().copied());
    let mut platform = Platform::register_in(app, services).await?;
    let mut signals = StopSignals::listen()?;
    let names = local.iter().copied().collect::<Vec<_>>().join(",");
    if !drives {
        eprintln!("starting: {names} on {}", cli.log.describe());
    }
    if !start_unless_stopped(&mut platform.app, &mut signals).await? {
        platform.app.shutdown().await?;
        eprintln!("stopped while starting: {names}");
        return Ok(if drives { ExitCode::from(STOPPED) } else { ExitCode::SUCCESS });
    }
    if !drives {
        if local.contains("accounting") {
            platform.add_accounting().await?;
        }
        // The line a supervisor (or a test) waits for.
        println!("ready: {names} on {}", cli.log.describe());
        signals.next().await;
        platform.app.shutdown().await?;
        return Ok(ExitCode::SUCCESS);
    }
    if !cli.json {
        eprintln!("tramline ticketing: {} orders, seed {}, {names} here, {}", cli.orders, cli.seed, cli.log.describe());
    }
    let bar = progress_bar(cli);
    let mails = mailer.as_ref().expect("the driver has the mail folder");
    let summary = drive(&simulation, &mut platform, mails, signals, |done| bar.set_position(done)).await?;
    bar.finish_and_clear();
    platform.app.shutdown().await?;
    report(cli, &summary)
}

/// The exit status of a run stopped before its summary (as a shell reports Ctrl-C).
const STOPPED: u8 = 130;

/// Runs the simulation until it is done or Ctrl-C / SIGTERM stops it (a second one aborts).
async fn drive(
    simulation: &Simulation,
    platform: &mut Platform,
    mails: &dyn ticketing_platform::MailCount,
    mut signals: StopSignals,
    progress: impl Fn(u64),
) -> Result<Summary, Box<dyn std::error::Error>> {
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn({
        let stop = stop.clone();
        async move {
            signals.next().await;
            eprintln!("stopping: finishing the orders in flight (again to abort)");
            stop.store(true, Ordering::Relaxed);
            signals.next().await;
            std::process::exit(STOPPED.into());
        }
    });
    let summary = simulation.run_until(platform, mails, None, progress, &stop).await;
    watcher.abort();
    Ok(summary?)
}

/// Ctrl-C and SIGTERM, listened for from before the app starts: a stop while it starts (a
/// supervisor's rolling update during a rebalance) stops its processors, which leave their
/// groups, instead of ending the process with its partitions held until the group times it out.
struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(StopSignals { interrupt: signal(SignalKind::interrupt())?, terminate: signal(SignalKind::terminate())? })
        }
        #[cfg(not(unix))]
        Ok(StopSignals {})
    }

    /// Waits for the next Ctrl-C or SIGTERM (one that came since the last is not lost).
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Starts `app` unless a stop comes first; `false` when one did (what started is left to
/// [`App::shutdown`]).
async fn start_unless_stopped(
    app: &mut App,
    signals: &mut StopSignals,
) -> Result<bool, tramline::runtime::RuntimeError> {
    tokio::select! {
        started = app.start() => started.map(|()| true),
        () = signals.next() => Ok(false),
    }
}

fn progress_bar(cli: &Cli) -> ProgressBar {
    let bar = if cli.json { ProgressBar::hidden() } else { ProgressBar::new(cli.orders) };
    bar.set_style(
        ProgressStyle::with_template("{spinner} orders {bar:40} {pos}/{len} {per_sec} eta {eta}")
            .expect("a valid template"),
    );
    bar
}

fn report(cli: &Cli, summary: &Summary) -> Result<ExitCode, Box<dyn std::error::Error>> {
    if cli.json {
        let mut json = serde_json::to_value(summary)?;
        json["invariants"] = serde_json::to_value(summary.invariants())?;
        json["holds"] = summary.holds().into();
        println!("{json}");
    } else {
        print_summary(summary);
    }
    Ok(if summary.holds() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn run(cli: &Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let simulation = simulation_of(cli);
    let log = cli.log.open().await?;
    if !cli.json {
        eprintln!("tramline ticketing: {} orders, seed {}, {}", cli.orders, cli.seed, cli.log.describe());
    }
    let (mut platform, mailer) = register_platform(log, &simulation).await?;
    let mut signals = StopSignals::listen()?;
    if !start_unless_stopped(&mut platform.app, &mut signals).await? {
        platform.app.shutdown().await?;
        eprintln!("stopped while starting");
        return Ok(ExitCode::from(STOPPED));
    }
    let bar = progress_bar(cli);
    let summary = drive(&simulation, &mut platform, &*mailer, signals, |done| bar.set_position(done)).await?;
    bar.finish_and_clear();
    platform.app.shutdown().await?;
    report(cli, &summary)
}

fn print_summary(summary: &Summary) {
    let mut figures = Table::new();
    figures.set_header(["figure", "value"]);
    let money = |cents: i64| Money::cents(cents).to_string();
    let rows: [(&str, String); 16] = [
        ("orders placed (whole log)", summary.orders_placed.to_string()),
        (
            "of which this run",
            match summary.stopped_early {
                true => format!("{} (stopped early)", summary.reservations),
                false => summary.reservations.to_string(),
            },
        ),
        ("reservations refused", summary.reservations_rejected.to_string()),
        ("orders an earlier run left unpaid, paid now", summary.orders_resumed.to_string()),
        ("payments completed", summary.payments_completed.to_string()),
        ("payments cancelled", summary.payments_cancelled.to_string()),
        ("orders confirmed", summary.orders_confirmed.to_string()),
        ("orders cancelled", summary.orders_cancelled.to_string()),
        ("tickets issued", summary.tickets_issued.to_string()),
        ("tickets mailed", summary.tickets_mailed.to_string()),
        ("confirmed revenue", money(summary.confirmed_revenue)),
        ("accounting revenue (joined late)", money(summary.accounting_revenue)),
        ("suspicious customers flagged (fraud)", summary.suspicious_customers.to_string()),
        ("dead letters", summary.dead_letters.to_string()),
        ("elapsed", format!("{:.3} s", summary.elapsed_s)),
        ("orders per second", format!("{:.0}", summary.orders_per_s)),
    ];
    for (name, value) in rows {
        figures.add_row([name.to_owned(), value]);
    }
    println!("{figures}");

    let mut checks = Table::new();
    checks.set_header(["invariant", "figures", "holds"]);
    for invariant in summary.invariants() {
        let (text, color) = match (invariant.checked, invariant.holds) {
            (false, _) => ("n/a", Color::Grey),
            (true, true) => ("yes", Color::Green),
            (true, false) => ("NO", Color::Red),
        };
        checks.add_row(vec![Cell::new(invariant.name), Cell::new(invariant.detail), Cell::new(text).fg(color)]);
    }
    println!("{checks}");
}
