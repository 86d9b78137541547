//! Retention's one rule, shared by `SqliteStore::retain` and `PgStore::retain`: which numbers of
//! days it takes and where the cutoff falls, so that both stores refuse and delete alike.

use ace_core::Timestamp;

/// One day in the engine clock's microseconds.
pub(crate) const DAY_MICROS: i64 = 86_400_000_000;

/// The most days `retain` takes: 100 years. More is a typo (a cutoff before 1970 deletes
/// nothing, and past about 292,000 years the cutoff no longer fits in the clock's integer).
pub const MAX_RETAIN_DAYS: u32 = 36_500;

/// The cutoff, in engine-clock microseconds, of keeping `days` days back from `now`: records
/// created strictly before it go.
///
/// Errors with [`ace_core::Error::InvalidInput`] (field `days`) for 0, which would delete every
/// record, and for more than [`MAX_RETAIN_DAYS`].
pub(crate) fn cutoff(days: u32, now: Timestamp) -> ace_core::Result<i64> {
    if days == 0 {
        return Err(ace_core::Error::InvalidInput {
            field: "days",
            reason: "retaining 0 days would delete every record; give 1 or more \
                     (to drop every ace table, use `ace migrate down --to 0`)"
                .into(),
        });
    }
    if days > MAX_RETAIN_DAYS {
        return Err(ace_core::Error::InvalidInput {
            field: "days",
            reason: format!("{days} days is more than {MAX_RETAIN_DAYS} (100 years)"),
        });
    }
    Ok(now.as_micros() - i64::from(days) * DAY_MICROS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_become_a_cutoff_and_zero_or_absurd_days_are_refused() {
        let now = Timestamp::from_micros(100 * DAY_MICROS);
        assert_eq!(cutoff(30, now).unwrap(), 70 * DAY_MICROS);
        assert_eq!(cutoff(MAX_RETAIN_DAYS, now).unwrap(), (100 - i64::from(MAX_RETAIN_DAYS)) * DAY_MICROS);
        for days in [0, MAX_RETAIN_DAYS + 1, u32::MAX] {
            let err = cutoff(days, now).unwrap_err();
            assert_eq!(err.code(), "invalid_input", "{days}: {err}");
            assert!(err.to_string().contains("days"), "{err}");
        }
    }
}
