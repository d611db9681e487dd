//! Sampling the latency distributions of the fault model from a seeded RNG.

use std::time::Duration;

use rand::Rng;
use rand_distr::{Distribution, LogNormal, Normal, Pareto};

use super::model::Latency;

/// Longest delay a sample may give (a heavy Pareto tail must not stall a run for hours).
pub const MAX_SAMPLE: Duration = Duration::from_secs(600);

impl Latency {
    /// Check the parameters; the message names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        let longest = |name: &str, d: Duration| {
            if d > MAX_SAMPLE {
                Err(format!(
                    "{name} {} is out of range: at most {}",
                    humantime::format_duration(d),
                    humantime::format_duration(MAX_SAMPLE)
                ))
            } else {
                Ok(())
            }
        };
        match *self {
            Latency::Fixed { value } => longest("fixed: value", value)?,
            Latency::Uniform { max, .. } => longest("uniform: max", max)?,
            Latency::Normal { mean, std_dev } => {
                longest("normal: mean", mean)?;
                longest("normal: std_dev", std_dev)?
            }
            Latency::Lognormal { median, sigma } => {
                longest("lognormal: median", median)?;
                if sigma > 10.0 {
                    return Err(format!(
                        "lognormal: sigma {sigma} is out of range: at most 10"
                    ));
                }
            }
            Latency::Pareto { min, .. } => longest("pareto: min", min)?,
        }
        match *self {
            Latency::Uniform { min, max } if min > max => {
                Err(format!("uniform: min ({min:?}) is above max ({max:?})"))
            }
            Latency::Lognormal { sigma, .. } if !(sigma.is_finite() && sigma >= 0.0) => Err(
                format!("lognormal: sigma must be a number >= 0, got {sigma}"),
            ),
            Latency::Pareto { alpha, .. } if !(alpha.is_finite() && alpha > 0.0) => {
                Err(format!("pareto: alpha must be a number > 0, got {alpha}"))
            }
            Latency::Pareto { min, .. } if min.is_zero() => {
                Err("pareto: min must be above zero".to_string())
            }
            _ => Ok(()),
        }
    }

    /// Draw one delay.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        let secs = match *self {
            Latency::Fixed { value } => return value,
            Latency::Uniform { min, max } => {
                if min >= max {
                    return min;
                }
                rng.random_range(min.as_secs_f64()..=max.as_secs_f64())
            }
            Latency::Normal { mean, std_dev } => {
                Normal::new(mean.as_secs_f64(), std_dev.as_secs_f64())
                    .map(|d| d.sample(rng))
                    .unwrap_or(mean.as_secs_f64())
            }
            Latency::Lognormal { median, sigma } => {
                LogNormal::new(median.as_secs_f64().max(1e-9).ln(), sigma)
                    .map(|d| d.sample(rng))
                    .unwrap_or(median.as_secs_f64())
            }
            Latency::Pareto { min, alpha } => Pareto::new(min.as_secs_f64(), alpha)
                .map(|d| d.sample(rng))
                .unwrap_or(min.as_secs_f64()),
        };
        Duration::from_secs_f64(secs.clamp(0.0, MAX_SAMPLE.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn quantiles(l: Latency) -> (f64, f64, f64) {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut v: Vec<f64> = (0..20_000)
            .map(|_| l.sample(&mut rng).as_secs_f64() * 1000.0)
            .collect();
        v.sort_by(|a, b| a.total_cmp(b));
        (v[0], v[v.len() / 2], v[v.len() * 99 / 100])
    }

    #[test]
    fn distributions_have_their_shape() {
        let ms = Duration::from_millis;
        assert_eq!(
            quantiles(Latency::Fixed { value: ms(50) }),
            (50.0, 50.0, 50.0)
        );
        let (lo, med, _) = quantiles(Latency::Uniform {
            min: ms(10),
            max: ms(20),
        });
        assert!(lo >= 10.0 && (med - 15.0).abs() < 0.5);
        let (lo, med, p99) = quantiles(Latency::Normal {
            mean: ms(10),
            std_dev: ms(2),
        });
        assert!(
            lo >= 0.0 && (med - 10.0).abs() < 0.2 && (p99 - 14.65).abs() < 0.5,
            "{p99}"
        );
        let (_, med, p99) = quantiles(Latency::Lognormal {
            median: ms(100),
            sigma: 0.5,
        });
        assert!((med - 100.0).abs() < 3.0 && p99 > 250.0, "{med} {p99}");
        let (lo, _, p99) = quantiles(Latency::Pareto {
            min: ms(10),
            alpha: 1.5,
        });
        assert!(lo >= 10.0 && p99 > 100.0, "{lo} {p99}");
    }

    #[test]
    fn same_seed_same_samples_and_bad_parameters_are_named() {
        let l = Latency::Lognormal {
            median: Duration::from_millis(100),
            sigma: 1.0,
        };
        let a: Vec<_> = {
            let mut r = ChaCha8Rng::seed_from_u64(1);
            (0..5).map(|_| l.sample(&mut r)).collect()
        };
        let b: Vec<_> = {
            let mut r = ChaCha8Rng::seed_from_u64(1);
            (0..5).map(|_| l.sample(&mut r)).collect()
        };
        assert_eq!(a, b);
        assert!(Latency::Pareto {
            min: Duration::ZERO,
            alpha: 1.0
        }
        .validate()
        .unwrap_err()
        .contains("min"));
        assert!(Latency::Uniform {
            min: Duration::from_secs(2),
            max: Duration::from_secs(1)
        }
        .validate()
        .is_err());
    }
}
