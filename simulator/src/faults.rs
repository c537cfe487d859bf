//! Deciding, per call, whether a fault strikes and how long to wait first.

use super::config::{Faults, RateLimit, StsFaults};
use std::time::{Duration, Instant};

/// What the faults decided for one call.
#[derive(Debug, PartialEq)]
pub(crate) enum Verdict {
    Throttle,
    ServiceError,
    Proceed,
}

/// What the STS faults decided for one STS call.
#[derive(Debug, PartialEq)]
pub(crate) enum StsVerdict {
    Unavailable,
    Throttle,
    ServiceError,
    Proceed,
}

/// The faults in force and the rate limiter's bucket.
pub(crate) struct FaultState {
    faults: Faults,
    bucket: Option<TokenBucket>,
}

struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    fn full(limit: RateLimit) -> Self {
        Self {
            tokens: f64::from(limit.burst),
            limit,
            refilled_at: Instant::now(),
        }
    }

    fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.refilled_at = now;
        self.tokens = (self.tokens + elapsed * self.limit.requests_per_second)
            .min(f64::from(self.limit.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl FaultState {
    /// Faults must already be validated.
    pub(crate) fn new(faults: Faults) -> Self {
        let bucket = faults.rate_limit.clone().map(TokenBucket::full);
        Self { faults, bucket }
    }

    pub(crate) fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Replaces the faults; a new rate limit starts with a full bucket.
    pub(crate) fn replace(&mut self, faults: Faults) {
        *self = Self::new(faults);
    }

    /// Replaces the STS faults only; the Lightsail faults and the bucket stay as they are.
    pub(crate) fn replace_sts(&mut self, sts: StsFaults) {
        self.faults.sts = sts;
    }

    /// Decides one STS call's fate: down, then throttled, then failing.
    pub(crate) fn judge_sts(&self) -> StsVerdict {
        let sts = &self.faults.sts;
        if sts.unavailable {
            StsVerdict::Unavailable
        } else if sts.throttle_rate > 0.0 && rand::random_bool(sts.throttle_rate) {
            StsVerdict::Throttle
        } else if sts.service_error_rate > 0.0 && rand::random_bool(sts.service_error_rate) {
            StsVerdict::ServiceError
        } else {
            StsVerdict::Proceed
        }
    }

    /// Refills the bucket, as after a quiet spell.
    pub(crate) fn refill(&mut self) {
        if let Some(limit) = self.faults.rate_limit.clone() {
            self.bucket = Some(TokenBucket::full(limit));
        }
    }

    /// Decides one call's fate and its extra latency. The rate limit is checked first: a call
    /// that AWS throttles never reaches the service.
    pub(crate) fn judge(&mut self, now: Instant) -> (Verdict, Duration) {
        if let Some(bucket) = &mut self.bucket
            && !bucket.try_take(now)
        {
            return (Verdict::Throttle, Duration::ZERO);
        }
        let faults = &self.faults;
        if faults.throttle_rate > 0.0 && rand::random_bool(faults.throttle_rate) {
            return (Verdict::Throttle, Duration::ZERO);
        }
        let latency = faults.latency + random_up_to(faults.latency_jitter);
        if faults.service_error_rate > 0.0 && rand::random_bool(faults.service_error_rate) {
            return (Verdict::ServiceError, latency);
        }
        (Verdict::Proceed, latency)
    }
}

fn random_up_to(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::random_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let mut state = FaultState::new(Faults {
            rate_limit: Some(RateLimit::new(10.0, 3)),
            ..Faults::default()
        });
        let start = Instant::now();
        let verdicts: Vec<Verdict> = (0..4).map(|_| state.judge(start).0).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Proceed,
                Verdict::Proceed,
                Verdict::Proceed,
                Verdict::Throttle
            ]
        );
        // 100 ms at 10/s is one token.
        let later = start + Duration::from_millis(100);
        assert_eq!(state.judge(later).0, Verdict::Proceed);
        assert_eq!(state.judge(later).0, Verdict::Throttle);
    }

    #[test]
    fn certain_faults_always_strike() {
        let mut throttling = FaultState::new(Faults {
            throttle_rate: 1.0,
            ..Faults::default()
        });
        assert_eq!(throttling.judge(Instant::now()).0, Verdict::Throttle);
        let mut failing = FaultState::new(Faults {
            service_error_rate: 1.0,
            latency: Duration::from_millis(7),
            ..Faults::default()
        });
        assert_eq!(
            failing.judge(Instant::now()),
            (Verdict::ServiceError, Duration::from_millis(7))
        );
    }

    #[test]
    fn sts_faults_strike_sts_calls_only_and_leave_the_bucket_alone() {
        let mut state = FaultState::new(Faults {
            rate_limit: Some(RateLimit::new(1.0, 1)),
            ..Faults::default()
        });
        let start = Instant::now();
        assert_eq!(state.judge_sts(), StsVerdict::Proceed);
        assert_eq!(state.judge(start).0, Verdict::Proceed);
        state.replace_sts(StsFaults::unavailable());
        assert_eq!(state.judge_sts(), StsVerdict::Unavailable);
        // The bucket was not refilled, and STS faults do not touch Lightsail calls.
        assert_eq!(state.judge(start).0, Verdict::Throttle);
        let later = start + Duration::from_secs(1);
        assert_eq!(state.judge(later), (Verdict::Proceed, Duration::ZERO));
        for (sts, verdict) in [
            (
                StsFaults {
                    throttle_rate: 1.0,
                    service_error_rate: 1.0,
                    ..StsFaults::default()
                },
                StsVerdict::Throttle,
            ),
            (
                StsFaults {
                    service_error_rate: 1.0,
                    ..StsFaults::default()
                },
                StsVerdict::ServiceError,
            ),
            (
                StsFaults {
                    unavailable: true,
                    throttle_rate: 1.0,
                    service_error_rate: 1.0,
                },
                StsVerdict::Unavailable,
            ),
            (StsFaults::default(), StsVerdict::Proceed),
        ] {
            state.replace_sts(sts.clone());
            assert_eq!(state.judge_sts(), verdict, "{sts:?}");
        }
        assert_eq!(state.faults().rate_limit, Some(RateLimit::new(1.0, 1)));
    }
}
