//! Errors a step returns, classified once (transient / needs attention / permanent), and the
//! retry policy that turns a failed attempt into a delay or a final failure.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// A server's Retry-After is obeyed, but never beyond this: a typo in a header must not park a
/// run for a year.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(24 * 3600);

/// What a failure means for the person and for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Likely to pass on its own (timeouts, 503): retried by the policy.
    Transient,
    /// Only the person can fix it (401, a full disk): the run fails and its schedule pauses
    /// until the person resumes it or a retried run succeeds.
    NeedsAttention,
    /// Retrying cannot help (400, a malformed item): the run fails, the others go on.
    Permanent,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::NeedsAttention => "needs_attention",
            Self::Permanent => "permanent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "transient" => Some(Self::Transient),
            "needs_attention" => Some(Self::NeedsAttention),
            "permanent" => Some(Self::Permanent),
            _ => None,
        }
    }
}

/// The error of a step or a workflow: a message for a person, a class, an optional machine
/// kind (matched against [`RetryPolicy::non_retryable`]) and an optional retry-after.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    pub class: ErrorClass,
    pub kind: Option<String>,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl StepError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            kind: None,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Transient, message)
    }

    pub fn needs_attention(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::NeedsAttention, message)
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Permanent, message)
    }

    /// A stable machine name for the error ("http_404"), for non-retryable lists.
    pub fn with_kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// Overrides the policy's delay for the next attempt (HTTP 429/503 Retry-After).
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }
}

/// How a failed step is retried. Delays grow as `initial × coefficient^(n-1)` up to `max`,
/// then jitter spreads them by ±`jitter` (a fraction) so many clients do not retry in step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub initial_interval: Duration,
    pub backoff_coefficient: f64,
    pub max_interval: Duration,
    /// Attempts in all, the first included; 1 means never retry.
    pub max_attempts: u32,
    /// Error kinds that fail the run at once whatever their class.
    pub non_retryable: Vec<String>,
    /// Fraction in 0..=1: the delay is multiplied by a uniform factor in [1 - jitter, 1 + jitter].
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_interval: Duration::from_secs(1),
            backoff_coefficient: 2.0,
            max_interval: Duration::from_secs(300),
            max_attempts: 10,
            non_retryable: Vec::new(),
            jitter: 0.1,
        }
    }
}

/// What happens after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    RetryAfter(Duration),
    Fail,
}

impl RetryPolicy {
    /// The delay before attempt `failed + 1`, before jitter; `failed` counts from 1.
    pub fn base_delay(&self, failed: u32) -> Duration {
        let exponent = i32::try_from(failed.max(1) - 1).unwrap_or(i32::MAX);
        let coefficient = self.backoff_coefficient.max(1.0);
        let secs = self.initial_interval.as_secs_f64() * coefficient.powi(exponent);
        // Compare in f64 first: the power overflows to infinity long before the cap matters.
        let capped = secs.min(self.max_interval.as_secs_f64());
        Duration::try_from_secs_f64(capped).unwrap_or(self.max_interval)
    }

    /// The base delay spread by the jitter fraction.
    pub fn jittered(&self, base: Duration, rng: &mut impl Rng) -> Duration {
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return base;
        }
        let factor = rng.random_range((1.0 - jitter)..=(1.0 + jitter));
        base.mul_f64(factor)
    }

    /// Retry or give up after the `failed`-th failed attempt of a step.
    pub fn decide(&self, error: &StepError, failed: u32, rng: &mut impl Rng) -> Decision {
        let non_retryable = error
            .kind
            .as_ref()
            .is_some_and(|k| self.non_retryable.iter().any(|n| n == k));
        if error.class != ErrorClass::Transient || non_retryable || failed >= self.max_attempts {
            return Decision::Fail;
        }
        match error.retry_after {
            Some(after) => Decision::RetryAfter(after.min(RETRY_AFTER_MAX)),
            None => Decision::RetryAfter(self.jittered(self.base_delay(failed), rng)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn policy(initial_ms: u64, coefficient: f64, max_ms: u64, jitter: f64) -> RetryPolicy {
        RetryPolicy {
            initial_interval: Duration::from_millis(initial_ms),
            backoff_coefficient: coefficient,
            max_interval: Duration::from_millis(max_ms),
            max_attempts: 100,
            non_retryable: vec!["http_400".into()],
            jitter,
        }
    }

    proptest! {
        #[test]
        fn base_delay_follows_the_formula(
            initial_ms in 1u64..60_000, coefficient in 1.0f64..4.0,
            max_ms in 1u64..3_600_000, n in 1u32..60,
        ) {
            let p = policy(initial_ms, coefficient, max_ms, 0.0);
            let expected = (initial_ms as f64 * coefficient.powi(n as i32 - 1)).min(max_ms as f64);
            let got = p.base_delay(n).as_secs_f64() * 1000.0;
            prop_assert!((got - expected).abs() <= expected * 0.01, "n={n} got={got} expected={expected}");
        }

        #[test]
        fn jitter_stays_within_its_bound(
            initial_ms in 1u64..60_000, jitter in 0.0f64..1.0, n in 1u32..20, seed in any::<u64>(),
        ) {
            let p = policy(initial_ms, 2.0, 600_000, jitter);
            let mut rng = StdRng::seed_from_u64(seed);
            let base = p.base_delay(n).as_secs_f64();
            let Decision::RetryAfter(d) = p.decide(&StepError::transient("x"), n, &mut rng) else {
                return Err(TestCaseError::fail("a transient error below max attempts retries"));
            };
            let d = d.as_secs_f64();
            prop_assert!(d >= base * (1.0 - jitter) - 1e-9 && d <= base * (1.0 + jitter) + 1e-9);
        }

        #[test]
        fn retry_after_overrides_the_computed_delay(after_ms in 0u64..100_000, n in 1u32..20) {
            let p = policy(1000, 2.0, 60_000, 0.5);
            let e = StepError::transient("busy").with_retry_after(Duration::from_millis(after_ms));
            let d = p.decide(&e, n, &mut StdRng::seed_from_u64(1));
            prop_assert_eq!(d, Decision::RetryAfter(Duration::from_millis(after_ms)));
        }

        #[test]
        fn non_retryable_and_final_errors_never_retry(n in 1u32..100) {
            let p = policy(1000, 2.0, 60_000, 0.1);
            let mut rng = StdRng::seed_from_u64(n.into());
            let bad_request = StepError::transient("bad").with_kind("http_400");
            prop_assert_eq!(p.decide(&bad_request, n, &mut rng), Decision::Fail);
            prop_assert_eq!(p.decide(&StepError::permanent("x"), n, &mut rng), Decision::Fail);
            prop_assert_eq!(p.decide(&StepError::needs_attention("401"), n, &mut rng), Decision::Fail);
        }
    }

    #[test]
    fn max_attempts_bounds_the_attempts() {
        let p = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let mut rng = StdRng::seed_from_u64(7);
        let e = StepError::transient("x");
        assert!(matches!(p.decide(&e, 1, &mut rng), Decision::RetryAfter(_)));
        assert!(matches!(p.decide(&e, 2, &mut rng), Decision::RetryAfter(_)));
        assert_eq!(p.decide(&e, 3, &mut rng), Decision::Fail);
    }
}
