//! emuwatch: what an app collects while it is open, and what it keeps doing after it is closed.
mod analysis;
#[cfg(test)]
mod architecture_tests;
mod baseline;
mod capability;
mod capture;
mod control;
mod decode;
mod doctor;
mod enrich;
mod escape;
mod event;
mod export;
mod fleet;
#[cfg(test)]
mod fuzz;
mod geo;
mod kernel;
mod live;
mod phase;
#[cfg(test)]
mod reader_bench;
mod record;
mod report;
mod safefs;
mod scenario;
mod session;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::{live::printable, session::TargetSpec};

/// Exit status when the recording worked but the kernel could not deliver every event.
const EXIT_LOST: u8 = 3;
const EXIT_ERROR: u8 = 2;

#[derive(Parser)]
#[command(
    name = "emuwatch",
    version,
    about = "Watch what an app collects while open, and after it is closed (eBPF)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check what this kernel supports and whether every probe attaches.
    Doctor(kernel::ProbeChoice),
    /// Record a session: connects, file opens and reads, camera/microphone, app state.
    Record(Box<RecordArgs>),
    /// Report on a recorded session: background collection first, destinations, devices, files.
    Report(report::ReportArgs),
    /// Add a marker (and optionally a phase change) to a running recording.
    Mark(MarkArgs),
    /// Run a scenario: record while its steps run, check its expectations (and a baseline),
    /// write the session, reports and JUnit XML. Exit 0 pass, 1 violation, 2 error.
    Run(scenario::run::RunArgs),
    /// What is new, gone or changed per app and phase between a baseline and a session (each a
    /// baseline file or a session directory). Exit 0 no regression, 1 regressions, 2 error.
    Diff(baseline::DiffArgs),
    /// Baselines: `emuwatch baseline save SESSION FILE`.
    #[command(subcommand)]
    Baseline(baseline::BaselineCmd),
    /// Export sessions as Parquet tables (events, findings, sessions) for DuckDB, Spark, Trino
    /// ...: `emuwatch export SESSION... --format parquet --out DIR` (docs/export.md).
    Export(export::ExportArgs),
    /// Many sessions side by side: per app, label, phase and kind, with what is new or gone in
    /// each scenario's newest run; a fleet gate (`--fail-on new`). Exit 0 pass, 1 fail, 2 error.
    Sessions(fleet::SessionsArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff), e.g. `emuwatch man > /usr/local/share/man/man1/emuwatch.1`.
    Man,
}

#[derive(Args)]
struct MarkArgs {
    /// Text of the marker, e.g. "pressed home".
    label: String,
    /// Also move the app(s) to this phase.
    #[arg(long, value_enum)]
    phase: Option<PhaseArg>,
    /// The app whose phase changes (default: every app seen so far).
    #[arg(long)]
    app: Option<String>,
    /// Session directory of the running recording (default: $EMUWATCH_SESSION, else the newest
    /// recording under ./sessions).
    #[arg(long, short)]
    session: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PhaseArg {
    Foreground,
    Background,
    Closed,
}

impl From<PhaseArg> for event::Phase {
    fn from(p: PhaseArg) -> Self {
        match p {
            PhaseArg::Foreground => event::Phase::Foreground,
            PhaseArg::Background => event::Phase::Background,
            PhaseArg::Closed => event::Phase::Closed,
        }
    }
}

#[derive(Args)]
struct RecordArgs {
    /// Target a running process (and its descendants, present and future). Repeatable.
    #[arg(long, value_name = "PID")]
    pid: Vec<u32>,
    /// Target processes by name (kernel comm, first 15 bytes). Repeatable.
    #[arg(long, value_name = "NAME")]
    comm: Vec<String>,
    /// Target processes of a user id. Repeatable.
    #[arg(long, value_name = "UID")]
    uid: Vec<u32>,
    /// Target an Android package (its uid from packages.list). Repeatable.
    #[arg(long, value_name = "NAME")]
    package: Vec<String>,
    /// Target a cgroup v2 (path under the cgroup2 mount, or absolute). Repeatable.
    #[arg(long, value_name = "PATH")]
    cgroup: Vec<String>,
    /// Target every process (except emuwatch itself).
    #[arg(long)]
    all: bool,
    /// Android's packages.list, for --package and app names.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/data/system/packages.list"
    )]
    packages_list: PathBuf,
    /// Session directory to create (default: sessions/<UTC timestamp>).
    #[arg(long, short, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Stop after this long (e.g. 30s, 2m).
    #[arg(long, short, value_parser = record::parse_record_duration)]
    duration: Option<Duration>,
    /// Kernel ring buffer size (power of two, e.g. 4M).
    #[arg(long, default_value = "8M", value_parser = record::parse_size)]
    ring_buffer: u32,
    /// Pending bytes in the ring buffer that make the kernel wake emuwatch (default: a quarter
    /// of the ring); below that emuwatch polls every --poll.
    #[arg(long, value_name = "BYTES")]
    wakeup_bytes: Option<u64>,
    /// How often to poll the ring buffer.
    #[arg(long, default_value = "5ms", value_parser = record::parse_poll)]
    poll: Duration,
    /// Extra camera/microphone device patterns (camera=GLOB, microphone=GLOB) or Android camera
    /// service process names (camera-service=NAME). Repeatable.
    #[arg(long, value_name = "CLASS=GLOB")]
    device: Vec<String>,
    /// GeoIP country database (.mmdb) for destinations (default: $EMUWATCH_GEOIP_COUNTRY or
    /// the installed data, see scripts/install-geo-data.sh).
    #[arg(long, value_name = "FILE")]
    geoip_country: Option<PathBuf>,
    /// ASN database (.mmdb or ip-location-db .csv) for destinations.
    #[arg(long, value_name = "FILE")]
    geoip_asn: Option<PathBuf>,
    /// No live view and no summary.
    #[arg(long, short)]
    quiet: bool,
    /// Leave the command (-- CMD) running when the recording ends. By default its whole
    /// process tree is stopped: SIGTERM, then SIGKILL after 2 s. --pid targets are never
    /// touched.
    #[arg(long)]
    leave_running: bool,
    /// Stop the recording when events.jsonl reaches this size (e.g. 500M, 2G); session.json
    /// then says stop_reason max_size. Checked after each drain of the ring buffer, so the file
    /// may pass the limit by what one drain writes.
    #[arg(long, value_name = "SIZE", value_parser = record::parse_max_size)]
    max_size: Option<u64>,
    #[command(flatten)]
    probes: kernel::ProbeChoice,
    #[command(flatten)]
    binder: enrich::binder::BinderChoice,
    /// A label for session.json's `labels` (app version, Android API level, device ...), e.g.
    /// `--label app_version=1.4.2 --label api=34`. Repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Command to run as the target; recording stops when its whole process tree has exited.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

/// A usage error as one line and a pointer to the help (clap prints several lines).
fn usage_error(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut first = lines
        .next()
        .unwrap_or("invalid usage")
        .trim_start_matches("error: ")
        .to_string();
    // "the following required arguments were not provided:" names them on the next line.
    if first.ends_with(':')
        && let Some(next) = lines.next()
    {
        first = format!("{first} {next}");
    }
    // The subcommand, if one was given, for its own --help.
    let sub = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .filter(|a| {
            Cli::command()
                .get_subcommands()
                .any(|s| s.get_name() == a.as_str())
        });
    let help = match sub {
        Some(s) => format!("emuwatch {s} --help"),
        None => "emuwatch --help".to_string(),
    };
    format!("emuwatch: error: {} (see {help})", printable(&first))
}

fn main() -> ExitCode {
    use clap::error::ErrorKind;
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            e.exit()
        }
        Err(e) => {
            eprintln!("{}", usage_error(&e));
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("emuwatch: error: {}", printable(&format!("{e:#}")));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Doctor(probes) => {
            let r = doctor::doctor(probes)?;
            for l in &r.lines {
                println!("{l}");
            }
            Ok(if r.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Report(a) => report::run(a),
        Cmd::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "emuwatch",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run(a) => scenario::run::run(a),
        Cmd::Diff(a) => baseline::run_diff(a),
        Cmd::Baseline(c) => baseline::run_baseline(c),
        Cmd::Mark(m) => mark(m),
        Cmd::Record(a) => record_command(*a),
        Cmd::Export(a) => export::run(a),
        Cmd::Sessions(a) => fleet::run(a),
    }
}

/// `emuwatch mark`: a marker (and optionally a phase) in the running recording, naming it.
fn mark(m: MarkArgs) -> anyhow::Result<ExitCode> {
    let session = control::find_session(m.session)?;
    let label = m.label.clone();
    control::mark(
        &session,
        &control::MarkRequest {
            label: m.label,
            phase: m.phase.map(Into::into),
            app: m.app,
            stop: false,
        },
    )?;
    println!(
        "marked {}: {:?}",
        printable(&session.display().to_string()),
        printable(&label)
    );
    Ok(ExitCode::SUCCESS)
}

/// `emuwatch record`.
fn record_command(a: RecordArgs) -> anyhow::Result<ExitCode> {
    let opts = record::RecordOptions {
        target: TargetSpec {
            all: a.all,
            command: a.command,
            pids: a.pid,
            comms: a.comm,
            uids: a.uid,
            cgroups: a.cgroup,
            packages: a.package,
        },
        packages_list: a.packages_list,
        out: a.out,
        duration: a.duration,
        ring_bytes: a.ring_buffer,
        wakeup_bytes: a.wakeup_bytes,
        poll: a.poll,
        quiet: a.quiet,
        device_patterns: a.device,
        geoip_country: a.geoip_country,
        geoip_asn: a.geoip_asn,
        stop_when_targets_exit: true,
        command_output: None,
        probes: a.probes,
        leave_running: a.leave_running,
        run_as: None,
        max_size: a.max_size,
        binder: a.binder,
        labels: session::parse_labels(&a.label)?,
    };
    let quiet = opts.quiet;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = rt.block_on(record::record(opts))?;
    Ok(record_outcome(&outcome, quiet))
}

/// What `record` prints at the end, and its exit status: 0 complete, 3 when something was
/// lost or cut short.
fn record_outcome(outcome: &record::RecordOutcome, quiet: bool) -> ExitCode {
    let info = &outcome.info;
    if !quiet {
        let kinds: Vec<String> = info
            .events
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        println!("session: {}", outcome.dir.display());
        println!(
            "events:  {} ({})",
            info.events_total,
            if kinds.is_empty() {
                "none".into()
            } else {
                kinds.join(", ")
            }
        );
    }
    if let Some(s) = &info.command_stopped
        && !quiet
    {
        println!(
            "stopped: the command's {} process(es) still running (SIGTERM{})",
            s.processes,
            if s.killed > 0 {
                format!("; {} needed SIGKILL", s.killed)
            } else {
                String::new()
            }
        );
    }
    if info.complete {
        if !quiet {
            println!("lost:    0 (complete)");
        }
        ExitCode::SUCCESS
    } else if info.lost.total + info.lost.undecodable == 0 {
        eprintln!(
            "emuwatch: {} file open(s) passed a path longer than the kernel copies (path_truncated); the session is marked incomplete",
            info.lost.truncated_paths
        );
        ExitCode::from(EXIT_LOST)
    } else {
        let why: Vec<String> = info
            .lost
            .by_reason
            .iter()
            .map(|(r, n)| format!("{}: {n}", r.as_str()))
            .chain(
                (info.lost.undecodable > 0)
                    .then(|| format!("undecodable: {}", info.lost.undecodable)),
            )
            .collect();
        eprintln!(
            "emuwatch: {} events were lost ({}); the session is marked incomplete",
            info.lost.total + info.lost.undecodable,
            why.join(", ")
        );
        ExitCode::from(EXIT_LOST)
    }
}
