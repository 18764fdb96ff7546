//! Exactly-once across processes, proven by killing them: the platform's data modules run as
//! child processes of `ticketing` on Kafka; during a 5,000-order run one of them is killed with
//! SIGKILL five times (each time restarted at once, under the same instance id); afterwards
//! tickets = confirmed orders = completed payments, no ticket twice, no order lost.

mod common;

use std::time::Duration;

use common::{Process, check_summary, run_dir, shared_args, start};

const ORDERS: u64 = 5_000;
const KILLS: usize = 5;

fn with_modules(shared: &[String], modules: &str) -> Vec<String> {
    let mut args = shared.to_vec();
    args.extend(["--modules".into(), modules.into()]);
    args
}

fn serve(name: &str, modules: &str, dir: &std::path::Path, shared: &[String]) -> Process {
    let mut process = start(name, dir, &with_modules(shared, modules));
    process.wait_ready(Duration::from_secs(120));
    process
}

#[test]
fn killed_module_processes_lose_nothing_and_double_nothing() {
    let bootstrap = tramline::testing::kafka::bootstrap();
    let dir = run_dir("kill");
    let shared = shared_args(&bootstrap, &dir.join("mail"), 31);
    let modules = [("orders", "customer,product,order"), ("payments", "payment"), ("tickets", "ticket")];
    let mut running: Vec<Process> = modules.iter().map(|(name, m)| serve(name, m, &dir, &shared)).collect();

    let mut args = shared.clone();
    args.extend(["--modules", "simulation", "--json", "--customers", "400", "--concurrency", "64"].map(String::from));
    args.extend(["--orders".into(), ORDERS.to_string()]);
    let mut driver = start("driver", &dir, &args);

    for kill in 0..KILLS {
        std::thread::sleep(Duration::from_millis(if kill == 0 { 4000 } else { 2000 }));
        assert!(driver.running(), "the run ended before kill {kill}: {}", driver.log_tail());
        let victim = kill % modules.len();
        running[victim].kill();
        let (name, modules) = modules[victim];
        // Restarted at once, and not waited for: the next kill may hit a process that is still
        // taking its partitions up.
        running[victim] = start(name, &dir, &with_modules(&shared, modules));
    }

    let (status, last_line) = driver.finish(Duration::from_secs(900));
    eprintln!("logs of the run: {}", dir.display());
    assert!(status.success(), "the driver failed ({status}); summary: {last_line:?}; log:\n{}", driver.log_tail());
    let summary = check_summary(last_line, ORDERS);
    eprintln!("summary after {KILLS} kills: {summary}");
}

/// SIGTERM to a module process that is still taking its partitions up (its groups rebalancing
/// around a frozen instance of the module) stops it cleanly: its processors leave their groups
/// and it exits with 0, instead of ending at once with its partitions held until the group
/// times it out (a supervisor's rolling update stalled the module's partitions that way).
#[test]
fn a_module_process_told_to_stop_while_it_starts_leaves_cleanly() {
    let bootstrap = tramline::testing::kafka::bootstrap();
    let dir = run_dir("stop-while-starting");
    let shared = shared_args(&bootstrap, &dir.join("mail"), 5);
    let first = serve("order-a", "order", &dir, &shared);
    first.pause();
    // A second instance: its groups wait for the frozen one to rejoin or time out.
    let mut second = start("order-b", &dir, &with_modules(&shared, "order"));
    second.wait_log("starting: ", 1, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(1));
    second.terminate();
    let (status, _) = second.finish(Duration::from_secs(120));
    first.resume();
    assert!(status.success(), "not a clean stop ({status}); log:\n{}", second.log_tail());
    assert_eq!(second.log_lines("stopped while starting"), 1, "stopped during its start; log:\n{}", second.log_tail());
}
