//! Background jobs as both faces list them: the engine's recent runs within a limit. Every
//! other job operation (show, retry, cancel, the schedules) is one call of the engine itself.

use concord_durable::{RunFilter, RunInfo};

use super::OpError;
use crate::Concord;

/// How many runs a list gives when the person gives no number.
pub const JOBS_LIMIT_DEFAULT: usize = 50;
/// The most runs one list returns: recent activity, not the whole history.
pub const JOBS_LIMIT_MAX: usize = 500;

/// The number of runs a list gives for the `limit` asked (0: the default).
fn runs_limit(limit: usize) -> usize {
    match limit {
        0 => JOBS_LIMIT_DEFAULT,
        limit => limit.min(JOBS_LIMIT_MAX),
    }
}

impl Concord {
    /// Recent runs, newest first, as the filter asks: at least one and at most
    /// [`JOBS_LIMIT_MAX`] (0: [`JOBS_LIMIT_DEFAULT`]).
    pub fn runs(&self, filter: RunFilter) -> Result<Vec<RunInfo>, OpError> {
        let limit = runs_limit(filter.limit);
        Ok(self.engine().runs(&RunFilter { limit, ..filter })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_durable::Workflow;

    #[test]
    fn a_list_of_runs_stays_within_its_limits() {
        assert_eq!(runs_limit(0), JOBS_LIMIT_DEFAULT);
        assert_eq!(runs_limit(1), 1);
        assert_eq!(runs_limit(10_000), JOBS_LIMIT_MAX);
        let dir = tempfile::tempdir().unwrap();
        let concord = Concord::open(dir.path()).unwrap();
        concord
            .engine()
            .register(Workflow::new("noop", |_ctx| async {
                Ok(serde_json::Value::Null)
            }));
        for n in 0..3 {
            let key = format!("noop:{n}");
            concord
                .engine()
                .start("noop", &key, serde_json::Value::Null)
                .unwrap();
        }
        let count = |limit| {
            concord
                .runs(RunFilter {
                    limit,
                    ..RunFilter::default()
                })
                .unwrap()
                .len()
        };
        assert_eq!(count(2), 2);
        assert_eq!(count(0), 3);
    }
}
