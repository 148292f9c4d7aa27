//! The health of each thing Concord keeps in sync (a pair, an account's "all collections", a
//! feed), derived from what is true now: its latest runs and their errors, its schedule, its
//! safety stop, pause. Never from the last success of something else.

use concord_durable::{ErrorClass, RunInfo, RunState, ScheduleInfo};
use serde::Serialize;

use super::words::{self, Cause};

/// A failure that has failed this many attempts in a row is an error, not a blip...
pub const FAILED_ATTEMPTS_ERROR_MIN: u32 = 3;
/// ...and so is one that has lasted this long, however few attempts it made.
pub const FAILING_ERROR_AFTER_MS: i64 = 10 * 60 * 1000;

/// What a thing Concord keeps in sync is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    Pair,
    /// Every collection of an account, each in its own pair (finding new ones is its job).
    Collections,
    Feed,
}

/// How it is doing, in the order the status line ranks them (the worst last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    NeverSynced,
    Ok,
    Syncing,
    Paused,
    /// Failed, and a retry comes soon: probably a blip.
    Retrying,
    /// Failed for longer than a blip ([`FAILED_ATTEMPTS_ERROR_MIN`] attempts or
    /// [`FAILING_ERROR_AFTER_MS`]); retries go on.
    Failing,
    /// Stopped until the person acts (a refused password, a collection gone, a safety stop).
    NeedsYou,
}

/// One thing's health, as the tray, the window and `concord status` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub kind: SubjectKind,
    /// The pair's or the mapping's name, or the feed's title.
    pub name: String,
    /// The "all collections" mapping a pair belongs to.
    pub part_of: Option<String>,
    pub state: HealthState,
    /// What went wrong, in plain words ("Can't reach dav.example.com").
    pub cause: Option<String>,
    /// What the person can do about it, when only they can.
    pub what_to_do: Option<String>,
    /// The last error as recorded, for the Activity page.
    pub error: Option<String>,
    /// Attempts failed in a row since the last success.
    pub failed_attempts: u32,
    pub failing_since_ms: Option<i64>,
    /// When the next attempt is due, if one is.
    pub next_attempt_at_ms: Option<i64>,
    /// No process runs the scheduler, so nothing makes that attempt on its own.
    pub waits_for_scheduler: bool,
    /// Syncing is paused (as a whole, or this one's schedule): no attempt comes on its own.
    pub paused: bool,
    /// The last success.
    pub synced_at_ms: Option<i64>,
    /// How it is doing in a few words, as the pair list and the window say it ("synced 3 min
    /// ago", "Can't reach dav.example.com: retrying at 14:05").
    pub said: String,
}

impl Health {
    pub(super) fn new(kind: SubjectKind, name: &str, state: HealthState) -> Self {
        Self {
            kind,
            name: name.to_owned(),
            part_of: None,
            state,
            cause: None,
            what_to_do: None,
            error: None,
            failed_attempts: 0,
            failing_since_ms: None,
            next_attempt_at_ms: None,
            waits_for_scheduler: false,
            paused: false,
            synced_at_ms: None,
            said: String::new(),
        }
    }

    /// Fills in [`Health::said`], seen from `now_ms`.
    fn say(mut self, now_ms: i64) -> Self {
        let synced = self
            .synced_at_ms
            .map(|at| format!("synced {}", words::ago(at, now_ms)));
        self.said = match self.state {
            HealthState::NeverSynced => "not synced yet".to_owned(),
            HealthState::Ok => synced.unwrap_or_else(|| "ok".to_owned()),
            HealthState::Syncing => "syncing now".to_owned(),
            HealthState::Paused => match synced {
                Some(synced) => format!("paused ({synced})"),
                None => "paused".to_owned(),
            },
            HealthState::Retrying | HealthState::Failing | HealthState::NeedsYou => {
                self.sentence(now_ms)
            }
        };
        self
    }

    /// Whether it stopped working for longer than a blip, or waits for the person: what
    /// raises one notification when it starts.
    pub fn is_broken(&self) -> bool {
        matches!(self.state, HealthState::Failing | HealthState::NeedsYou)
    }

    /// "Can't reach dav.example.com: retrying at 14:05", seen from `now_ms`.
    pub fn sentence(&self, now_ms: i64) -> String {
        let cause = self.cause.clone().unwrap_or_else(|| self.name.clone());
        match (self.state, self.next_attempt_at_ms) {
            (HealthState::NeedsYou, _) => match &self.what_to_do {
                Some(todo) => format!("{cause}: {}", lower_first(todo)),
                None => cause,
            },
            (HealthState::Retrying | HealthState::Failing, Some(_)) if self.waits_for_scheduler => {
                format!("{cause}: tried again by `concord sync`, `concord daemon` or the tray app")
            }
            (HealthState::Retrying | HealthState::Failing, Some(at)) if at <= now_ms => {
                format!("{cause}: retrying now")
            }
            (HealthState::Retrying | HealthState::Failing, Some(at)) => {
                format!("{cause}: retrying {}", words::at_clock(at, now_ms))
            }
            (HealthState::Retrying | HealthState::Failing, None) if self.paused => {
                format!("{cause}; syncing is paused")
            }
            (HealthState::Retrying | HealthState::Failing, None) => {
                format!("{cause}: tried again at the next sync")
            }
            _ => cause,
        }
    }
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// What is known of one pair or mapping, for [`judge_sync`].
#[derive(Debug)]
pub struct SyncFacts<'a> {
    pub kind: SubjectKind,
    pub name: &'a str,
    pub part_of: Option<&'a str>,
    /// Its runs, newest first.
    pub runs: Vec<&'a RunInfo>,
    pub schedule: Option<&'a ScheduleInfo>,
    /// Syncing is paused as a whole.
    pub paused: bool,
    /// Why a safety guard stopped it, if one did.
    pub stopped: Option<&'a str>,
    /// An error its last attempt recorded outside the job engine's runs (an "all
    /// collections" listing made by `concord sync` itself), until an attempt succeeds.
    pub recorded_error: Option<&'a str>,
    /// When it last synced whole (a mapping: when each of its collections had).
    pub last_success_ms: Option<i64>,
    /// The server it talks to, for causes that do not name one.
    pub host: Option<&'a str>,
    /// Some process runs the scheduler: a pending run will start.
    pub scheduler_running: bool,
    pub now_ms: i64,
}

/// A pair's or a mapping's health from its facts.
pub fn judge_sync(facts: &SyncFacts<'_>) -> Health {
    judged(facts).say(facts.now_ms)
}

fn judged(facts: &SyncFacts<'_>) -> Health {
    let mut health = Health::new(facts.kind, facts.name, HealthState::NeverSynced);
    health.part_of = facts.part_of.map(str::to_owned);
    health.synced_at_ms = facts.last_success_ms;
    if health.synced_at_ms.is_some() {
        health.state = HealthState::Ok;
    }
    // The failures since the last success, newest first.
    let streak: Vec<&RunInfo> = facts
        .runs
        .iter()
        .copied()
        .take_while(|r| r.state != RunState::Completed)
        .filter(|r| r.error.is_some())
        .collect();
    health.failed_attempts = streak.iter().map(|r| failed_attempts(r)).sum();
    health.failing_since_ms = streak.last().map(|r| r.created_at_ms);
    health.error = streak.first().and_then(|r| r.error.clone());
    let cause = health
        .error
        .as_deref()
        .map(|error| words::cause_of(error, facts.host));
    let long_failing = health.failed_attempts >= FAILED_ATTEMPTS_ERROR_MIN
        || health
            .failing_since_ms
            .is_some_and(|since| facts.now_ms - since >= FAILING_ERROR_AFTER_MS);
    let schedule_paused = facts.schedule.is_some_and(|s| s.paused);
    health.paused = facts.paused || schedule_paused;
    let next_slot = facts
        .schedule
        .filter(|s| !s.paused && s.attention.is_none() && !facts.paused)
        .map(|s| s.next_fire_at_ms);

    if let Some(reason) = facts.stopped {
        // The guard's reason says what to do (sync once allowing it, or restore).
        health.state = HealthState::NeedsYou;
        health.cause = Some(reason.to_owned());
        return health;
    }
    let latest = facts.runs.first();
    let needs_person = latest.is_some_and(|r| {
        r.state == RunState::Failed && r.error_class == Some(ErrorClass::NeedsAttention)
    }) || facts
        .schedule
        .is_some_and(|s| s.attention.is_some() && latest.is_none_or(|r| r.state.is_terminal()));
    if needs_person {
        let error = health
            .error
            .clone()
            .or_else(|| facts.schedule.and_then(|s| s.attention.clone()))
            .unwrap_or_default();
        let Cause { said, what_to_do } = words::cause_of(&error, facts.host);
        health.state = HealthState::NeedsYou;
        health.cause = Some(said);
        health.what_to_do =
            Some(what_to_do.unwrap_or_else(|| "see its last error, then sync again".to_owned()));
        health.error = Some(error);
        return health;
    }
    let failing = |health: &mut Health, next: Option<i64>| {
        health.state = if long_failing {
            HealthState::Failing
        } else {
            HealthState::Retrying
        };
        if let Some(cause) = &cause {
            health.cause = Some(cause.said.clone());
        }
        health.next_attempt_at_ms = next;
        health.waits_for_scheduler = next.is_some() && !facts.scheduler_running;
    };
    match latest.map(|r| (r.state, *r)) {
        // A retry of a long failure keeps saying so while it runs, so the line does not
        // flicker between "Syncing" and the failure on every attempt.
        Some((RunState::Running, _)) if long_failing => failing(&mut health, None),
        Some((RunState::Running, _)) => health.state = HealthState::Syncing,
        Some((RunState::Pending, run)) if run.error.is_some() => {
            failing(&mut health, run.next_at_ms)
        }
        Some((RunState::Pending, _)) if facts.scheduler_running => {
            health.state = HealthState::Syncing;
        }
        Some((RunState::Sleeping, run)) => failing(&mut health, run.next_at_ms),
        // A retry cancelled (by Pause, say) leaves the failure as it was.
        Some((RunState::Failed, _)) => failing(&mut health, next_slot),
        Some((RunState::Cancelled, run)) if run.error.is_some() => {
            failing(&mut health, next_slot);
        }
        _ => {}
    }
    if let Some(error) = facts.recorded_error
        && !matches!(
            health.state,
            HealthState::Syncing | HealthState::Retrying | HealthState::Failing
        )
    {
        health.state = HealthState::Failing;
        health.cause = Some(words::cause_of(error, facts.host).said);
        health.error = Some(error.to_owned());
        health.next_attempt_at_ms = next_slot;
        health.waits_for_scheduler = next_slot.is_some() && !facts.scheduler_running;
    }
    if (facts.paused || schedule_paused)
        && matches!(health.state, HealthState::Ok | HealthState::NeverSynced)
    {
        health.state = HealthState::Paused;
    }
    health
}

/// Attempts a run has failed so far (a running retry's own attempt has not failed yet).
fn failed_attempts(run: &RunInfo) -> u32 {
    match run.state {
        RunState::Running => run.attempts.saturating_sub(1),
        _ => run.attempts,
    }
}

/// A feed's health from what its store says ("new", "ok", "waiting", "failing", "dead",
/// "retired"); `None` for a retired feed, which is no longer checked.
pub fn judge_feed(
    title: &str,
    status: &str,
    last_error: Option<&str>,
    checked_at_ms: Option<i64>,
    now_ms: i64,
) -> Option<Health> {
    let state = match status {
        "new" => HealthState::NeverSynced,
        "failing" => HealthState::Retrying,
        "dead" => HealthState::Failing,
        "retired" => return None,
        _ => HealthState::Ok,
    };
    let mut health = Health::new(SubjectKind::Feed, title, state);
    health.synced_at_ms = checked_at_ms;
    if matches!(state, HealthState::Retrying | HealthState::Failing) {
        health.error = last_error.map(str::to_owned);
        health.cause = last_error.map(|e| words::cause_of(e, None).said);
    }
    Some(health.say(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_durable::RunId;

    const NOW: i64 = 1_800_000_000_000;

    fn run(id: i64, state: RunState, attempts: u32, error: Option<&str>) -> RunInfo {
        RunInfo {
            id: RunId(id),
            kind: "sync-pair".into(),
            idempotency_key: "sync-pair:work".into(),
            state,
            attempts,
            group: None,
            schedule: None,
            created_at_ms: NOW - 60_000 + id,
            started_at_ms: None,
            finished_at_ms: (state == RunState::Completed).then_some(NOW - 120_000),
            next_at_ms: (state == RunState::Sleeping).then_some(NOW + 8_000),
            error: error.map(str::to_owned),
            error_class: error.map(|_| ErrorClass::Transient),
            cancel_requested: false,
        }
    }

    fn facts<'a>(runs: &'a [RunInfo]) -> SyncFacts<'a> {
        SyncFacts {
            kind: SubjectKind::Pair,
            name: "work",
            part_of: None,
            runs: runs.iter().collect(),
            schedule: None,
            paused: false,
            stopped: None,
            recorded_error: None,
            last_success_ms: runs
                .iter()
                .find(|r| r.state == RunState::Completed)
                .and_then(|r| r.finished_at_ms),
            host: Some("dav.example.com"),
            scheduler_running: true,
            now_ms: NOW,
        }
    }

    const REFUSED: &str = "listing the collection at http://127.0.0.1:9/c/ failed: client \
                           error (Connect): tcp connect error: Connection refused";

    #[test]
    fn a_first_failure_is_retrying_and_the_third_is_failing() {
        let one = [
            run(2, RunState::Sleeping, 1, Some(REFUSED)),
            run(1, RunState::Completed, 1, None),
        ];
        let health = judge_sync(&facts(&one));
        assert_eq!(health.state, HealthState::Retrying);
        assert_eq!(health.cause.as_deref(), Some("Can't reach 127.0.0.1:9"));
        assert_eq!(health.next_attempt_at_ms, Some(NOW + 8_000));
        assert!(health.synced_at_ms.is_some());
        assert!(!health.is_broken());

        let three = [
            run(2, RunState::Sleeping, 3, Some(REFUSED)),
            run(1, RunState::Completed, 1, None),
        ];
        let health = judge_sync(&facts(&three));
        assert_eq!(health.state, HealthState::Failing);
        assert!(health.is_broken());
        assert!(
            health
                .sentence(NOW)
                .starts_with("Can't reach 127.0.0.1:9: retrying at ")
        );
    }

    #[test]
    fn failures_count_across_runs_until_a_success() {
        let runs = [
            run(4, RunState::Running, 1, None),
            run(3, RunState::Failed, 1, Some(REFUSED)),
            run(2, RunState::Failed, 1, Some(REFUSED)),
            run(1, RunState::Failed, 1, Some(REFUSED)),
            run(0, RunState::Completed, 1, None),
        ];
        let health = judge_sync(&facts(&runs));
        assert_eq!(health.failed_attempts, 3);
        assert_eq!(
            health.state,
            HealthState::Failing,
            "a retry of a long failure says so"
        );

        let recovered = [
            run(5, RunState::Completed, 1, None),
            run(3, RunState::Failed, 9, Some(REFUSED)),
        ];
        let health = judge_sync(&facts(&recovered));
        assert_eq!(health.state, HealthState::Ok);
        assert_eq!(health.failed_attempts, 0);
        assert_eq!(health.cause, None);
    }

    #[test]
    fn a_refused_password_needs_the_person() {
        let mut failed = run(
            1,
            RunState::Failed,
            1,
            Some(
                "the server at https://dav.example.com/c/ rejected the username or password (HTTP 401)",
            ),
        );
        failed.error_class = Some(ErrorClass::NeedsAttention);
        let health = judge_sync(&facts(std::slice::from_ref(&failed)));
        assert_eq!(health.state, HealthState::NeedsYou);
        assert_eq!(
            health.sentence(NOW),
            "dav.example.com refused the username or password: change the account's password, then sync again"
        );
    }

    #[test]
    fn a_retry_nobody_will_make_is_not_promised() {
        let one = [run(1, RunState::Sleeping, 1, Some(REFUSED))];
        let nobody = SyncFacts {
            scheduler_running: false,
            ..facts(&one)
        };
        let said = judge_sync(&nobody).said;
        assert!(!said.contains("retrying at"), "{said}");
        assert!(said.contains("`concord sync`"), "{said}");
    }

    #[test]
    fn a_listing_that_failed_outside_the_engine_is_failing_until_one_succeeds() {
        let ok = [run(1, RunState::Completed, 1, None)];
        let listed = SyncFacts {
            kind: SubjectKind::Collections,
            recorded_error: Some(REFUSED),
            ..facts(&ok)
        };
        let health = judge_sync(&listed);
        assert_eq!(health.state, HealthState::Failing);
        assert_eq!(health.cause.as_deref(), Some("Can't reach 127.0.0.1:9"));
    }

    #[test]
    fn a_failure_while_paused_says_nothing_retries_it() {
        let mut cancelled = run(2, RunState::Cancelled, 3, Some(REFUSED));
        cancelled.next_at_ms = None;
        let runs = [cancelled, run(1, RunState::Completed, 1, None)];
        let paused = SyncFacts {
            paused: true,
            ..facts(&runs)
        };
        let health = judge_sync(&paused);
        assert_eq!(health.state, HealthState::Failing);
        assert_eq!(health.said, "Can't reach 127.0.0.1:9; syncing is paused");
    }

    #[test]
    fn a_pending_run_is_syncing_only_while_a_scheduler_runs() {
        let pending = [run(1, RunState::Pending, 0, None)];
        assert_eq!(judge_sync(&facts(&pending)).state, HealthState::Syncing);
        let nobody = SyncFacts {
            scheduler_running: false,
            ..facts(&pending)
        };
        assert_eq!(judge_sync(&nobody).state, HealthState::NeverSynced);
    }

    #[test]
    fn paused_shows_unless_something_is_wrong() {
        let ok = [run(1, RunState::Completed, 1, None)];
        let paused = SyncFacts {
            paused: true,
            ..facts(&ok)
        };
        assert_eq!(judge_sync(&paused).state, HealthState::Paused);
        let stopped = SyncFacts {
            paused: true,
            stopped: Some("b is empty"),
            ..facts(&ok)
        };
        assert_eq!(judge_sync(&stopped).state, HealthState::NeedsYou);
    }

    #[test]
    fn a_long_failure_is_failing_after_ten_minutes_even_with_few_attempts() {
        let mut sleeping = run(1, RunState::Sleeping, 1, Some(REFUSED));
        sleeping.created_at_ms = NOW - FAILING_ERROR_AFTER_MS;
        assert_eq!(judge_sync(&facts(&[sleeping])).state, HealthState::Failing);
    }

    #[test]
    fn feeds_are_judged_from_their_store_status() {
        assert_eq!(
            judge_feed("Blog", "dead", Some("HTTP 404"), None, NOW)
                .unwrap()
                .state,
            HealthState::Failing
        );
        assert_eq!(
            judge_feed("Blog", "ok", None, Some(NOW), NOW)
                .unwrap()
                .state,
            HealthState::Ok
        );
        assert!(judge_feed("Blog", "retired", None, None, NOW).is_none());
    }
}
