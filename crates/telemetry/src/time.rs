//! Wall-clock timestamps as access logs print them, in UTC.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Year, month (1–12) and day of a count of days since 1970-01-01 (the
/// proleptic Gregorian calendar, by eras of 400 years).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
}

fn parts(t: SystemTime) -> Parts {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil((secs / 86_400) as i64);
    let rem = secs % 86_400;
    Parts {
        year,
        month,
        day,
        hour: rem / 3_600,
        minute: rem % 3_600 / 60,
        second: rem % 60,
    }
}

/// `2026-11-27T01:02:03`, without fractions or zone.
pub(crate) fn rfc3339_seconds(t: SystemTime, out: &mut String) {
    let p = parts(t);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        p.year, p.month, p.day, p.hour, p.minute, p.second
    );
}

/// `27/Nov/2026:01:02:03 +0000`, the Common Log Format's date.
pub(crate) fn common_log(t: SystemTime, out: &mut String) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let p = parts(t);
    let _ = write!(
        out,
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
        p.day,
        MONTHS[(p.month - 1) as usize],
        p.year,
        p.hour,
        p.minute,
        p.second
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[test]
    fn known_instants() {
        let cases = [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_795_741_323, "2026-11-27T01:02:03"),
            (4_107_542_399, "2100-02-28T23:59:59"),
        ];
        for (secs, want) in cases {
            let mut s = String::new();
            rfc3339_seconds(at(secs, 0), &mut s);
            assert_eq!(s, want, "{secs}");
        }
        let mut s = String::new();
        common_log(at(971_186_136, 0), &mut s);
        assert_eq!(s, "10/Oct/2000:13:55:36 +0000");
    }

    #[test]
    fn every_day_follows_the_previous_one() {
        let mut prev = civil(-1);
        for d in 0..200_000 {
            let (y, m, day) = civil(d);
            let next_day = (y, m, day) > prev;
            assert!(next_day, "{d}: {prev:?} then {:?}", (y, m, day));
            assert!((1..=12).contains(&m) && (1..=31).contains(&day));
            prev = (y, m, day);
        }
    }
}
