//! SOQL's relative date literals (`TODAY`, `LAST_N_DAYS:7`, `THIS_MONTH`, …): each names a
//! range of days relative to the org's today, in UTC (the mock's users all live in UTC), with
//! weeks starting on Sunday as in Salesforce's default locale.
//!
//! A comparison with a range follows Salesforce: `= R` is inside it, `!= R` outside, `< R`
//! before its first day, `<= R` before its end, `> R` after its last day, `>= R` from its
//! first day on.

use chrono::{Datelike, Duration, Months, NaiveDate};

/// The literals with no number.
const FIXED: &[&str] = &[
    "YESTERDAY",
    "TODAY",
    "TOMORROW",
    "LAST_WEEK",
    "THIS_WEEK",
    "NEXT_WEEK",
    "LAST_MONTH",
    "THIS_MONTH",
    "NEXT_MONTH",
    "LAST_90_DAYS",
    "NEXT_90_DAYS",
    "THIS_QUARTER",
    "LAST_QUARTER",
    "NEXT_QUARTER",
    "THIS_YEAR",
    "LAST_YEAR",
    "NEXT_YEAR",
];

/// The literals that take `:n`.
const WITH_N: &[&str] = &[
    "LAST_N_DAYS",
    "NEXT_N_DAYS",
    "N_DAYS_AGO",
    "LAST_N_WEEKS",
    "NEXT_N_WEEKS",
    "N_WEEKS_AGO",
    "LAST_N_MONTHS",
    "NEXT_N_MONTHS",
    "N_MONTHS_AGO",
    "LAST_N_YEARS",
    "NEXT_N_YEARS",
    "N_YEARS_AGO",
];

/// The largest `n` a literal takes (Salesforce's documented range for days is 0 to 1000,
/// more for years; the mock bounds them all so no range overflows a date).
pub const MAX_N: u32 = 4000;

/// A relative date literal as written: its name (upper case) and `n`, if it takes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelativeDate {
    /// `TODAY`, `LAST_N_DAYS`, …
    pub name: String,
    /// The `:n` of the `N` forms.
    pub n: Option<u32>,
}

/// Whether `word` is a literal name, and whether it needs `:n`.
pub fn kind(word: &str) -> Option<bool> {
    let upper = word.to_ascii_uppercase();
    if FIXED.contains(&upper.as_str()) {
        Some(false)
    } else if WITH_N.contains(&upper.as_str()) {
        Some(true)
    } else {
        None
    }
}

fn week_start(d: NaiveDate) -> NaiveDate {
    d - Duration::days(i64::from(d.weekday().num_days_from_sunday()))
}

fn month_start(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

fn quarter_start(d: NaiveDate) -> NaiveDate {
    let m = (d.month0() / 3) * 3 + 1;
    NaiveDate::from_ymd_opt(d.year(), m, 1).unwrap_or(d)
}

fn year_start(d: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year(), 1, 1).unwrap_or(d)
}

fn months(d: NaiveDate, n: i64) -> NaiveDate {
    let m = Months::new(n.unsigned_abs() as u32);
    if n >= 0 {
        d.checked_add_months(m)
    } else {
        d.checked_sub_months(m)
    }
    .unwrap_or(d)
}

fn days(d: NaiveDate, n: i64) -> NaiveDate {
    d.checked_add_signed(Duration::days(n)).unwrap_or(d)
}

impl RelativeDate {
    /// The days it covers: from the first, up to (not including) the second.
    pub fn range(&self, today: NaiveDate) -> (NaiveDate, NaiveDate) {
        let n = i64::from(self.n.unwrap_or(0));
        let (w, m, q, y) = (
            week_start(today),
            month_start(today),
            quarter_start(today),
            year_start(today),
        );
        let span = |start: NaiveDate, step: fn(NaiveDate, i64) -> NaiveDate, k: i64| {
            (step(start, k), step(start, k + 1))
        };
        match self.name.as_str() {
            "YESTERDAY" => span(today, days, -1),
            "TODAY" => span(today, days, 0),
            "TOMORROW" => span(today, days, 1),
            "LAST_WEEK" => (days(w, -7), w),
            "THIS_WEEK" => (w, days(w, 7)),
            "NEXT_WEEK" => (days(w, 7), days(w, 14)),
            "LAST_MONTH" => span(m, months, -1),
            "THIS_MONTH" => span(m, months, 0),
            "NEXT_MONTH" => span(m, months, 1),
            "LAST_90_DAYS" => (days(today, -90), days(today, 1)),
            "NEXT_90_DAYS" => (days(today, 1), days(today, 91)),
            "LAST_QUARTER" => (months(q, -3), q),
            "THIS_QUARTER" => (q, months(q, 3)),
            "NEXT_QUARTER" => (months(q, 3), months(q, 6)),
            "LAST_YEAR" => (months(y, -12), y),
            "THIS_YEAR" => (y, months(y, 12)),
            "NEXT_YEAR" => (months(y, 12), months(y, 24)),
            "LAST_N_DAYS" => (days(today, -n), days(today, 1)),
            "NEXT_N_DAYS" => (days(today, 1), days(today, 1 + n)),
            "N_DAYS_AGO" => span(today, days, -n),
            "LAST_N_WEEKS" => (days(w, -7 * n), w),
            "NEXT_N_WEEKS" => (days(w, 7), days(w, 7 + 7 * n)),
            "N_WEEKS_AGO" => (days(w, -7 * n), days(w, 7 - 7 * n)),
            "LAST_N_MONTHS" => (months(m, -n), m),
            "NEXT_N_MONTHS" => (months(m, 1), months(m, 1 + n)),
            "N_MONTHS_AGO" => span(m, months, -n),
            "LAST_N_YEARS" => (months(y, -12 * n), y),
            "NEXT_N_YEARS" => (months(y, 12), months(y, 12 + 12 * n)),
            "N_YEARS_AGO" => (months(y, -12 * n), months(y, 12 - 12 * n)),
            _ => (today, today),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(name: &str, n: Option<u32>, today: &str) -> (String, String) {
        let today = NaiveDate::parse_from_str(today, "%Y-%m-%d").unwrap();
        let (a, b) = RelativeDate {
            name: name.into(),
            n,
        }
        .range(today);
        (a.to_string(), b.to_string())
    }

    #[test]
    fn ranges_follow_salesforce() {
        // 2026-12-02 is a Wednesday.
        let d = "2026-12-02";
        let r = |name, n| range(name, n, d);
        assert_eq!(r("TODAY", None), ("2026-12-02".into(), "2026-12-03".into()));
        assert_eq!(r("YESTERDAY", None).0, "2026-12-01");
        assert_eq!(
            r("LAST_N_DAYS", Some(7)),
            ("2026-11-25".into(), "2026-12-03".into())
        );
        assert_eq!(
            r("NEXT_N_DAYS", Some(2)),
            ("2026-12-03".into(), "2026-12-05".into())
        );
        assert_eq!(
            r("N_DAYS_AGO", Some(3)),
            ("2026-11-29".into(), "2026-11-30".into())
        );
        assert_eq!(
            r("THIS_WEEK", None),
            ("2026-11-29".into(), "2026-12-06".into())
        );
        assert_eq!(
            r("LAST_WEEK", None),
            ("2026-11-22".into(), "2026-11-29".into())
        );
        assert_eq!(
            r("THIS_MONTH", None),
            ("2026-12-01".into(), "2027-01-01".into())
        );
        assert_eq!(
            r("LAST_MONTH", None),
            ("2026-11-01".into(), "2026-12-01".into())
        );
        assert_eq!(
            r("LAST_N_MONTHS", Some(2)),
            ("2026-10-01".into(), "2026-12-01".into())
        );
        assert_eq!(
            r("THIS_QUARTER", None),
            ("2026-10-01".into(), "2027-01-01".into())
        );
        assert_eq!(
            r("NEXT_YEAR", None),
            ("2027-01-01".into(), "2028-01-01".into())
        );
        assert_eq!(kind("last_n_days"), Some(true));
        assert_eq!(kind("today"), Some(false));
        assert_eq!(kind("Name"), None);
    }
}
