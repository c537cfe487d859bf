//! The simulated AWS clock: this machine's wall clock shifted by an offset that can change at
//! run time.
//!
//! Sessions and operations are kept in wall-clock time, and only what AWS would show of its
//! clock is shifted: the `createdAt` / `statusChangedAt` it reports, the `Date` header, and the
//! SigV4 time window. Every age the simulator computes (settling, session expiry) is therefore
//! the same on either clock, and changing the offset at run time behaves like the node's clock
//! jumping: AWS's own history keeps its ages, only how far it is from the node changes.

use super::config::{ConfigError, validate_clock_offset};
use jiff::SignedDuration;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

/// The offset of the simulated AWS clock, in milliseconds (always validated).
pub(crate) struct SimClock {
    offset_millis: AtomicI64,
}

impl SimClock {
    /// `offset` must already be validated.
    pub(crate) fn new(offset: SignedDuration) -> Self {
        Self {
            offset_millis: AtomicI64::new(to_millis(offset)),
        }
    }

    pub(crate) fn offset(&self) -> SignedDuration {
        SignedDuration::from_millis(self.offset_millis())
    }

    pub(crate) fn offset_millis(&self) -> i64 {
        self.offset_millis.load(Ordering::Relaxed)
    }

    pub(crate) fn set_offset(&self, offset: SignedDuration) -> Result<(), ConfigError> {
        validate_clock_offset(offset)?;
        self.offset_millis
            .store(to_millis(offset), Ordering::Relaxed);
        Ok(())
    }

    /// AWS's "now".
    pub(crate) fn now(&self) -> SystemTime {
        shift(SystemTime::now(), self.offset_millis())
    }
}

/// A validated offset fits in i64 milliseconds with room to spare.
fn to_millis(offset: SignedDuration) -> i64 {
    i64::try_from(offset.as_millis()).unwrap_or(0)
}

fn shift(time: SystemTime, offset_millis: i64) -> SystemTime {
    let magnitude = Duration::from_millis(offset_millis.unsigned_abs());
    let shifted = if offset_millis < 0 {
        time.checked_sub(magnitude)
    } else {
        time.checked_add(magnitude)
    };
    shifted.unwrap_or(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `clock.now()` read between two wall-clock readings, moved back by `offset`.
    fn assert_now_is_offset_by(clock: &SimClock, offset: SignedDuration) {
        let before = SystemTime::now();
        let aws = clock.now();
        let after = SystemTime::now();
        let back = |t: SystemTime| shift(t, -to_millis(offset));
        // Millisecond offsets shift exactly; the readings bracket the clock's own.
        assert!(
            before <= back(aws) && back(aws) <= after,
            "{aws:?} vs {before:?}..{after:?}"
        );
    }

    #[test]
    fn now_is_shifted_by_the_offset_and_bad_offsets_are_refused() {
        let clock = SimClock::new(SignedDuration::from_hours(-2));
        assert_now_is_offset_by(&clock, SignedDuration::from_hours(-2));
        assert!(
            clock
                .set_offset(SignedDuration::from_hours(100_000))
                .is_err()
        );
        assert_eq!(clock.offset(), SignedDuration::from_hours(-2));
        assert!(clock.set_offset(SignedDuration::from_mins(30)).is_ok());
        assert_eq!(clock.offset(), SignedDuration::from_mins(30));
        assert_now_is_offset_by(&clock, SignedDuration::from_mins(30));
    }
}
