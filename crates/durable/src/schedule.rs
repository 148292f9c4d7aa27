//! Schedules: when the next slot is (every N, or cron in a time zone) and what to do about the
//! slots missed while the machine slept: run the latest once if it is recent, record the rest.

use std::str::FromStr;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::duration_ms;

/// At most this many missed slots are enumerated and recorded per catch-up; beyond it one
/// summary row says how many more were skipped (a 1-second schedule after a week asleep).
pub const SKIPS_RECORDED_MAX: usize = 1000;

/// How often a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cadence {
    /// Every `every_ms` milliseconds, counted from when the schedule was created.
    Every { every_ms: i64 },
    /// A cron expression (5 fields, or 6 with seconds first) in an IANA time zone.
    Cron { expr: String, tz: String },
}

/// What to do when a slot comes while the previous run of the schedule is still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Drop the slot and record it as skipped.
    #[default]
    Skip,
    /// Remember one slot and start it when the open run ends; further slots are skipped.
    BufferOne,
}

/// A schedule as the app declares it. `put_schedule` keeps pause state across updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub name: String,
    pub kind: String,
    pub input: Value,
    pub cadence: Cadence,
    /// Each firing is delayed by a random amount up to this, so schedules do not align.
    pub jitter: Duration,
    pub overlap: Overlap,
    /// A missed slot older than this on wake is recorded as skipped instead of run.
    pub catchup_window: Duration,
    /// Concurrency group of the runs it starts (for example the server's host).
    pub group: Option<String>,
}

impl Schedule {
    /// Every `every`, no jitter, overlap skip, a one-hour catch-up window.
    pub fn every(name: &str, kind: &str, every: Duration, input: Value) -> Self {
        Self {
            name: name.to_owned(),
            kind: kind.to_owned(),
            input,
            cadence: Cadence::Every {
                every_ms: duration_ms(every),
            },
            jitter: Duration::ZERO,
            overlap: Overlap::Skip,
            catchup_window: Duration::from_secs(3600),
            group: None,
        }
    }

    /// A cron expression in a time zone ("0 9 * * MON-FRI", "Europe/Berlin").
    pub fn cron(name: &str, kind: &str, expr: &str, tz: &str, input: Value) -> Self {
        Self {
            cadence: Cadence::Cron {
                expr: expr.to_owned(),
                tz: tz.to_owned(),
            },
            ..Self::every(name, kind, Duration::from_secs(60), input)
        }
    }
}

/// The part of a schedule stored as JSON in `durable_schedules.spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredSpec {
    pub cadence: Cadence,
    pub jitter_ms: i64,
    pub overlap: Overlap,
    pub catchup_window_ms: i64,
    pub group: Option<String>,
}

impl StoredSpec {
    pub fn of(s: &Schedule) -> Self {
        Self {
            cadence: s.cadence.clone(),
            jitter_ms: duration_ms(s.jitter),
            overlap: s.overlap,
            catchup_window_ms: duration_ms(s.catchup_window),
            group: s.group.clone(),
        }
    }
}

/// A cadence checked once, ready to compute slots.
#[derive(Debug, Clone)]
pub(crate) enum Compiled {
    Every(i64),
    Cron(Box<cron::Schedule>, chrono_tz::Tz),
}

impl Compiled {
    pub fn new(cadence: &Cadence) -> Result<Self, String> {
        match cadence {
            Cadence::Every { every_ms } if *every_ms >= 1000 => Ok(Self::Every(*every_ms)),
            Cadence::Every { every_ms } => Err(format!(
                "an interval of {every_ms} ms is below the 1 s minimum"
            )),
            Cadence::Cron { expr, tz } => {
                // The cron crate wants seconds first; people write the classic five fields.
                let full = if expr.split_whitespace().count() == 5 {
                    format!("0 {expr}")
                } else {
                    expr.clone()
                };
                let schedule = cron::Schedule::from_str(&full)
                    .map_err(|e| format!("cron expression {expr:?}: {e}"))?;
                let tz =
                    chrono_tz::Tz::from_str(tz).map_err(|_| format!("unknown time zone {tz:?}"))?;
                Ok(Self::Cron(Box::new(schedule), tz))
            }
        }
    }

    /// The first slot strictly after `after_ms`, from a previous slot or from a start time.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match self {
            Self::Every(every) => after_ms.checked_add(*every),
            Self::Cron(schedule, tz) => {
                let after = Utc.timestamp_millis_opt(after_ms).single()?;
                schedule
                    .after(&after.with_timezone(tz))
                    .next()
                    .map(|t| t.timestamp_millis())
            }
        }
    }
}

/// Why a slot did not start a run.
pub mod skip_reason {
    pub const OUTSIDE_CATCHUP_WINDOW: &str = "outside_catchup_window";
    pub const COALESCED: &str = "coalesced";
    pub const OVERLAP: &str = "overlap";
    pub const MORE_NOT_LISTED: &str = "more_not_listed";
}

/// The outcome of a due schedule at `now`: at most one slot to run, the skipped ones, and the
/// next slot in the future.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CatchUp {
    pub fire: Option<i64>,
    pub skipped: Vec<(i64, &'static str)>,
    /// Slots skipped but not enumerated (past [`SKIPS_RECORDED_MAX`]).
    pub skipped_unlisted: u64,
    pub next_slot: i64,
}

/// Plans a due schedule whose stored next slot is `first_slot <= now`.
pub(crate) fn catch_up(compiled: &Compiled, first_slot: i64, now: i64, window_ms: i64) -> CatchUp {
    // Only the most recent slots are kept: the older ones are counted, not listed.
    let keep = SKIPS_RECORDED_MAX + 1;
    let mut slots = std::collections::VecDeque::with_capacity(keep);
    let mut unlisted = 0u64;
    let next_slot = match compiled {
        // Arithmetic for fixed intervals, so a week asleep costs nothing to skip over.
        Compiled::Every(every) => {
            let count = (now - first_slot).max(0) / every + 1;
            let listed = count.min(i64::try_from(keep).unwrap_or(i64::MAX));
            let start = first_slot + (count - listed) * every;
            slots.extend((0..listed).map(|i| start + i * every));
            unlisted = u64::try_from(count - listed).unwrap_or(0);
            first_slot + count * every
        }
        Compiled::Cron(..) => {
            let mut slot = first_slot;
            loop {
                if slot > now {
                    break slot;
                }
                if slots.len() == keep {
                    slots.pop_front();
                    unlisted += 1;
                }
                slots.push_back(slot);
                match compiled.next_after(slot) {
                    Some(next) if next > slot => slot = next,
                    // A cron with no later slot: park it for good.
                    _ => break i64::MAX,
                }
            }
        }
    };
    let fire = slots.back().copied().filter(|l| now - l <= window_ms);
    let skipped = slots
        .iter()
        .filter(|&&s| Some(s) != fire)
        .map(|&s| {
            let reason = if now - s <= window_ms {
                skip_reason::COALESCED
            } else {
                skip_reason::OUTSIDE_CATCHUP_WINDOW
            };
            (s, reason)
        })
        .collect();
    CatchUp {
        fire,
        skipped,
        skipped_unlisted: unlisted,
        next_slot,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn an_on_time_slot_fires_and_nothing_is_skipped() {
        let c = Compiled::new(&Cadence::Every { every_ms: 15 * MIN }).unwrap();
        let plan = catch_up(&c, 0, 100, 60 * MIN);
        assert_eq!(plan.fire, Some(0));
        assert!(plan.skipped.is_empty());
        assert_eq!(plan.next_slot, 15 * MIN);
    }

    #[test]
    fn eight_hours_asleep_fire_once_and_record_the_rest() {
        let c = Compiled::new(&Cadence::Every { every_ms: 15 * MIN }).unwrap();
        let now = 8 * 60 * MIN + MIN;
        let plan = catch_up(&c, 15 * MIN, now, 60 * MIN);
        assert_eq!(plan.fire, Some(8 * 60 * MIN));
        assert_eq!(plan.skipped.len(), 31);
        let coalesced = plan
            .skipped
            .iter()
            .filter(|s| s.1 == skip_reason::COALESCED)
            .count();
        assert_eq!(
            coalesced, 3,
            "slots within the hour before wake are coalesced"
        );
        assert_eq!(plan.next_slot, 8 * 60 * MIN + 15 * MIN);
    }

    #[test]
    fn a_slot_older_than_the_window_does_not_fire() {
        let c = Compiled::new(&Cadence::Every {
            every_ms: 24 * 60 * MIN,
        })
        .unwrap();
        let plan = catch_up(&c, 0, 3 * 60 * MIN, 60 * MIN);
        assert_eq!(plan.fire, None);
        assert_eq!(plan.skipped, vec![(0, skip_reason::OUTSIDE_CATCHUP_WINDOW)]);
    }

    #[test]
    fn a_week_of_one_second_slots_is_summarised() {
        let c = Compiled::new(&Cadence::Every { every_ms: 1000 }).unwrap();
        let now = 7 * 24 * 3600 * 1000;
        let plan = catch_up(&c, 1000, now, 60 * MIN);
        assert_eq!(plan.fire, Some(now));
        let total = plan.skipped.len() as u64 + plan.skipped_unlisted + 1;
        assert_eq!(total, (now / 1000) as u64);
        assert!(plan.skipped.len() <= SKIPS_RECORDED_MAX);
    }

    #[test]
    fn cron_follows_its_time_zone() {
        let c = Compiled::new(&Cadence::Cron {
            expr: "0 9 * * *".into(),
            tz: "Europe/Berlin".into(),
        })
        .unwrap();
        // 2026-07-01T00:00Z: the next 09:00 in Berlin (UTC+2 in summer) is 07:00Z.
        let start = Utc
            .with_ymd_and_hms(2026, 7, 1, 0, 0, 0)
            .unwrap()
            .timestamp_millis();
        let next = c.next_after(start).unwrap();
        assert_eq!(next, start + 7 * 60 * MIN);
    }

    #[test]
    fn bad_specs_are_refused_with_a_reason() {
        let e = Compiled::new(&Cadence::Cron {
            expr: "nope".into(),
            tz: "UTC".into(),
        })
        .unwrap_err();
        assert!(e.contains("cron"), "{e}");
        let e = Compiled::new(&Cadence::Cron {
            expr: "* * * * *".into(),
            tz: "Mars/Base".into(),
        })
        .unwrap_err();
        assert!(e.contains("time zone"), "{e}");
        assert!(Compiled::new(&Cadence::Every { every_ms: 5 }).is_err());
    }
}
