//! `concord jobs list|show|cancel|retry` and `concord schedules list|pause|resume|trigger`:
//! the durable engine's runs and schedules for a person (text) or a script (`--json`).
//! Thin: every decision is the engine's; this only parses and prints.

use crate::print_json;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Subcommand;
use concord_core::Concord;
use concord_core::ops::JOBS_LIMIT_DEFAULT;
use concord_durable::{Engine, RunDetail, RunFilter, RunId, RunInfo, RunState, ScheduleInfo};

/// Prints a line; a closed pipe (`concord jobs list | head`) is not worth a panic.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List recent runs, newest first
    List {
        /// Only runs in this state (pending, running, sleeping, completed, failed, cancelled)
        #[arg(long, value_parser = parse_state)]
        state: Option<RunState>,
        /// Only runs of this workflow kind
        #[arg(long)]
        kind: Option<String>,
        /// At most this many (up to 500)
        #[arg(long, default_value_t = JOBS_LIMIT_DEFAULT)]
        limit: usize,
    },
    /// Show one run with its steps, attempts and errors
    Show { id: i64 },
    /// Cancel a run (a running one stops at its next step)
    Cancel { id: i64 },
    /// Retry a failed or cancelled run, or start a waiting one now
    Retry { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// List schedules with their next time and state
    List,
    /// Stop a schedule from starting runs
    Pause { name: String },
    /// Start a paused schedule again (also after it needed attention)
    Resume { name: String },
    /// Start a run of the schedule now
    Trigger { name: String },
}

fn parse_state(s: &str) -> Result<RunState, String> {
    RunState::parse(s).ok_or_else(|| {
        let all: Vec<&str> = RunState::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown state {s:?}; one of {}", all.join(", "))
    })
}

pub fn run_jobs(concord: &Concord, cmd: JobsCommand, json: bool) -> Result<(), String> {
    let engine = concord.engine();
    let err = |e: concord_durable::Error| e.to_string();
    match cmd {
        JobsCommand::List { state, kind, limit } => {
            let filter = RunFilter { state, kind, limit };
            let runs = concord.runs(filter).map_err(|e| e.to_string())?;
            if json {
                return print_json(&runs);
            }
            if runs.is_empty() {
                say!("No runs.");
            }
            for r in &runs {
                say!("{}", run_line(r));
            }
            Ok(())
        }
        JobsCommand::Show { id } => {
            let detail = engine.show(RunId(id)).map_err(err)?;
            if json {
                return print_json(&detail);
            }
            print_detail(&detail);
            Ok(())
        }
        JobsCommand::Cancel { id } => {
            let info = engine.cancel(RunId(id)).map_err(err)?;
            if json {
                return print_json(&info);
            }
            match info.state {
                RunState::Cancelled => say!("Run {id} cancelled."),
                _ => say!("Run {id} will stop at its next step."),
            }
            Ok(())
        }
        JobsCommand::Retry { id } => {
            let info = engine.retry(RunId(id)).map_err(err)?;
            if json {
                return print_json(&info);
            }
            say!("Run {id} will start now.");
            Ok(())
        }
    }
}

pub fn run_schedules(engine: &Engine, cmd: SchedulesCommand, json: bool) -> Result<(), String> {
    let err = |e: concord_durable::Error| e.to_string();
    let done = |what: &str, name: &str| -> Result<(), String> {
        if json {
            print_json(&serde_json::json!({ "schedule": name, "done": what }))
        } else {
            say!("Schedule {name} {what}.");
            Ok(())
        }
    };
    match cmd {
        SchedulesCommand::List => {
            let schedules = engine.schedules().map_err(err)?;
            if json {
                return print_json(&schedules);
            }
            if schedules.is_empty() {
                say!("No schedules.");
            }
            for s in &schedules {
                say!("{}", schedule_line(s));
            }
            Ok(())
        }
        SchedulesCommand::Pause { name } => {
            engine.pause_schedule(&name).map_err(err)?;
            done("paused", &name)
        }
        SchedulesCommand::Resume { name } => {
            engine.resume_schedule(&name).map_err(err)?;
            done("resumed", &name)
        }
        SchedulesCommand::Trigger { name } => {
            let id = engine.trigger_schedule(&name).map_err(err)?;
            if json {
                return print_json(&serde_json::json!({ "schedule": name, "run": id }));
            }
            say!("Schedule {name}: run {id} started.");
            Ok(())
        }
    }
}

fn run_line(r: &RunInfo) -> String {
    let mut line = format!(
        "{:>6}  {:<9}  {:<16}  {}",
        r.id, r.state, r.kind, r.idempotency_key
    );
    match r.state {
        RunState::Sleeping | RunState::Pending => {
            if let Some(next) = r.next_at_ms {
                line.push_str(&format!("  (starts {})", when(next)));
            }
        }
        _ => {
            if let Some(end) = r.finished_at_ms.or(r.started_at_ms) {
                line.push_str(&format!("  ({})", when(end)));
            }
        }
    }
    if let Some(e) = &r.error {
        line.push_str(&format!("\n        error: {e}"));
    }
    line
}

fn print_detail(d: &RunDetail) {
    let r = &d.run;
    say!("Run {} ({}), key {}", r.id, r.kind, r.idempotency_key);
    say!("  state:    {}", r.state);
    if let Some(s) = &r.schedule {
        say!("  schedule: {s}");
    }
    if let Some(g) = &r.group {
        say!("  group:    {g}");
    }
    say!("  created:  {}", when(r.created_at_ms));
    if let Some(next) = r.next_at_ms {
        say!("  next try: {}", when(next));
    }
    if let Some(e) = &r.error {
        let class = r.error_class.map_or("", |c| c.as_str());
        say!("  error:    {e} [{class}]");
    }
    say!("  input:    {}", d.input);
    if let Some(result) = &d.result {
        say!("  result:   {result}");
    }
    say!("Steps:");
    for s in &d.steps {
        let state = s
            .completed_at_ms
            .map_or_else(|| "not done".to_owned(), when);
        say!(
            "  {:>3}. {:<24} {} ({} attempts)",
            s.seq + 1,
            s.name,
            state,
            s.attempts
        );
    }
    say!("Attempts:");
    for a in &d.attempts {
        let outcome = a.outcome.as_deref().unwrap_or("running");
        let mut line = format!(
            "  #{:<3} {:<11} by {} from {}",
            a.attempt,
            outcome,
            a.worker,
            when(a.started_at_ms)
        );
        if let Some(step) = &a.step {
            line.push_str(&format!(" at step {step}"));
        }
        if let Some(e) = &a.error {
            line.push_str(&format!(": {e}"));
        }
        if let Some(next) = a.next_retry_at_ms {
            line.push_str(&format!(" (retry {})", when(next)));
        }
        say!("{line}");
    }
}

fn schedule_line(s: &ScheduleInfo) -> String {
    let state = match (&s.attention, s.paused) {
        (Some(_), _) => "needs attention",
        (None, true) => "paused",
        (None, false) => "active",
    };
    let cadence = match &s.schedule.cadence {
        concord_durable::Cadence::Every { every_ms } => format!("every {}", span(*every_ms)),
        concord_durable::Cadence::Cron { expr, tz } => format!("cron \"{expr}\" {tz}"),
    };
    let mut line = format!(
        "{:<24} {:<15} {:<16} {}",
        s.schedule.name, state, s.schedule.kind, cadence
    );
    if state == "active" {
        line.push_str(&format!(", next {}", when(s.next_fire_at_ms)));
    }
    if let Some(a) = &s.attention {
        line.push_str(&format!("\n        {a}"));
    }
    line
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// "in 5 min", "3 h ago": relative to now, which is what a person wants from a list.
fn when(at_ms: i64) -> String {
    let delta = at_ms - now_ms();
    if delta.abs() < 1000 {
        return "now".to_owned();
    }
    if delta > 0 {
        format!("in {}", span(delta))
    } else {
        format!("{} ago", span(-delta))
    }
}

fn span(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}
