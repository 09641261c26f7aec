//! Rates and quantiles between two scrapes of one process, as Prometheus's
//! `rate` and `histogram_quantile` compute them: a counter that went down
//! restarted from zero; a quantile comes from the buckets' increase.

use super::samples::Buckets;

/// Per-second increase of a counter read `prev` then `cur`, `secs` apart.
/// A counter missing from the earlier scrape had not been touched yet
/// (the metrics appear on first use): it counts from zero.
pub fn rate(prev: Option<f64>, cur: Option<f64>, secs: f64) -> Option<f64> {
    let cur = cur?;
    if secs <= 0.0 || !cur.is_finite() {
        return None;
    }
    Some(increase(prev.unwrap_or(0.0), cur) / secs)
}

/// The increase of a counter; one that went down restarted from zero.
fn increase(prev: f64, cur: f64) -> f64 {
    if cur < prev { cur } else { cur - prev }
}

/// How much each bucket grew from `prev` to `cur`. When any went down
/// (the process restarted), `cur` alone.
pub fn deltas(prev: Option<&Buckets>, cur: &Buckets) -> Buckets {
    let Some(prev) = prev else {
        return cur.clone();
    };
    let before = |le: f64| prev.0.iter().find(|(l, _)| *l == le).map_or(0.0, |(_, c)| *c);
    if cur.0.iter().any(|&(le, count)| count < before(le)) {
        return cur.clone();
    }
    Buckets(
        cur.0
            .iter()
            .map(|&(le, count)| (le, count - before(le)))
            .collect(),
    )
}

/// The `q`-quantile (0..=1) of the observations in cumulative `buckets`,
/// interpolated linearly inside the bucket it falls in. `None` without
/// observations or without the `+Inf` bucket; a quantile in the `+Inf`
/// bucket is the highest finite bound.
pub fn quantile(q: f64, buckets: &Buckets) -> Option<f64> {
    let buckets = &buckets.0;
    let &(last_le, total) = buckets.last()?;
    if last_le != f64::INFINITY || total <= 0.0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    // Counts read a moment apart may dip; cumulative counts never do.
    let mut cumulative = Vec::with_capacity(buckets.len());
    let mut most = 0.0_f64;
    for &(le, count) in buckets {
        most = most.max(count);
        cumulative.push((le, most));
    }
    let rank = q * total;
    let i = cumulative.iter().position(|&(_, count)| count >= rank)?;
    let (upper, count) = cumulative[i];
    if upper == f64::INFINITY {
        return i.checked_sub(1).map(|j| cumulative[j].0);
    }
    let (lower, below) = match i.checked_sub(1) {
        Some(j) => cumulative[j],
        None if upper > 0.0 => (0.0, 0.0),
        None => return Some(upper),
    };
    if count <= below {
        return Some(upper);
    }
    Some(lower + (upper - lower) * (rank - below) / (count - below))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    #[test]
    fn rate_is_the_increase_per_second() {
        assert_eq!(rate(Some(10.0), Some(30.0), 2.0), Some(10.0));
        assert_eq!(
            rate(None, Some(4.0), 2.0),
            Some(2.0),
            "first use between the scrapes"
        );
        assert_eq!(
            rate(Some(50.0), Some(6.0), 2.0),
            Some(3.0),
            "restarted: counts from zero"
        );
        assert_eq!(rate(Some(1.0), None, 2.0), None);
        assert_eq!(rate(Some(1.0), Some(2.0), 0.0), None);
        assert_eq!(rate(Some(1.0), Some(f64::NAN), 1.0), None);
    }

    #[test]
    fn deltas_subtract_each_bucket() {
        let prev = Buckets(vec![(0.1, 2.0), (0.2, 5.0), (INF, 5.0)]);
        let cur = Buckets(vec![(0.1, 4.0), (0.2, 9.0), (0.4, 1.0), (INF, 10.0)]);
        assert_eq!(
            deltas(Some(&prev), &cur),
            Buckets(vec![(0.1, 2.0), (0.2, 4.0), (0.4, 1.0), (INF, 5.0)])
        );
        let restarted = Buckets(vec![(0.1, 1.0), (0.2, 1.0), (INF, 1.0)]);
        assert_eq!(deltas(Some(&prev), &restarted), restarted);
        assert_eq!(deltas(None, &cur), cur);
    }

    #[test]
    fn quantile_interpolates_within_the_bucket() {
        // 100 observations: 50 up to 0.1 s, 40 in (0.1, 0.2], 10 in (0.2, 0.4].
        let b = Buckets(vec![(0.1, 50.0), (0.2, 90.0), (0.4, 100.0), (INF, 100.0)]);
        assert_eq!(quantile(0.5, &b), Some(0.1));
        assert!((quantile(0.7, &b).expect("p70") - 0.15).abs() < 1e-9);
        assert!((quantile(0.99, &b).expect("p99") - 0.38).abs() < 1e-9);
        // In the first bucket: from zero.
        assert!((quantile(0.25, &b).expect("p25") - 0.05).abs() < 1e-9);
    }

    #[test]
    fn quantile_in_the_inf_bucket_is_the_highest_bound() {
        let b = Buckets(vec![(0.1, 1.0), (0.2, 2.0), (INF, 10.0)]);
        assert_eq!(quantile(0.99, &b), Some(0.2));
        assert_eq!(quantile(0.99, &Buckets(vec![(INF, 3.0)])), None);
    }

    #[test]
    fn no_quantile_without_observations_or_inf() {
        assert_eq!(quantile(0.99, &Buckets(vec![(0.1, 0.0), (INF, 0.0)])), None);
        assert_eq!(quantile(0.99, &Buckets(vec![(0.1, 3.0), (0.2, 5.0)])), None);
        assert_eq!(quantile(0.99, &Buckets(vec![])), None);
        assert_eq!(quantile(1.5, &Buckets(vec![(0.1, 1.0), (INF, 1.0)])), None);
    }

    #[test]
    fn quantile_of_the_increase_between_two_scrapes() {
        // Before: 1000 fast observations; in the interval: 10 slow ones.
        let prev = Buckets(vec![(0.001, 1000.0), (0.1, 1000.0), (1.0, 1000.0), (INF, 1000.0)]);
        let cur = Buckets(vec![(0.001, 1000.0), (0.1, 1000.0), (1.0, 1010.0), (INF, 1010.0)]);
        let p99 = quantile(0.99, &deltas(Some(&prev), &cur)).expect("p99");
        assert!(p99 > 0.9 && p99 <= 1.0, "{p99}");
        // Over all time it would look fast.
        assert!(quantile(0.99, &cur).expect("all time") <= 0.001);
    }
}
