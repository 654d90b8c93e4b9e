//! DDSketch: a mergeable quantile sketch with a relative-error guarantee.
//!
//! Why DDSketch and not an HDR histogram: the guarantee is relative (every quantile it
//! returns is within `ALPHA` of the exact value at the same rank, whatever the scale),
//! merging two sketches is adding their bucket counts (so per-minute sketches roll up to
//! any window exactly as if built over the window), and its size grows only with the
//! buckets hit (at most [`MAX_BINS`]), never with the count of values.
//! See ARCHITECTURE.md.

/// Relative accuracy. Half the 1 % the KPIs promise, leaving room for the exact
/// percentile's own definition (which rank it picks between two samples).
pub const ALPHA: f64 = 0.005;

/// Values below this (in ms) are counted in the zero bucket and reported as 0.
pub const MIN_INDEXABLE: f64 = 1e-3;

/// The log of the bins' growth factor: a value v > MIN_INDEXABLE is in bin ceil(ln v / this).
/// PostgreSQL computes the same bins (`store/fleet.rs`) with the same IEEE operations.
pub fn ln_gamma() -> f64 {
    ((1.0 + ALPHA) / (1.0 - ALPHA)).ln()
}

fn bucket_index(value: f64) -> i32 {
    (value.ln() / ln_gamma()).ceil() as i32
}

/// The value that represents bucket `index`: within `ALPHA` of every value it holds.
fn bucket_value(index: i32) -> f64 {
    let gamma = (1.0 + ALPHA) / (1.0 - ALPHA);
    2.0 * (ln_gamma() * index as f64).exp() / (gamma + 1.0)
}

use super::bins::Bins;

/// The most bins a sketch keeps. Validation bounds latencies to 0.001 ms..1 h, about 2 200
/// bins at this accuracy; 2 048 bins keep every value within `ALPHA` from the largest one
/// down to about 1/800 000 000 of it. Past that, the lowest bins are merged into the lowest
/// kept one (DDSketch's "collapsing lowest" store): only quantiles that fall among values
/// that tiny lose accuracy (they are reported as too large), never p50..p99 of real traffic.
pub const MAX_BINS: usize = 2048;

/// A quantile sketch. Its bins are dense or sparse, whichever is smaller (`bins.rs`): a
/// minute with a few events costs a few bytes whatever their spread (a dense array between
/// the smallest and largest value cost 8 KB for two events of 0.001 ms and one hour), and a
/// busy minute 4 bytes per bin. Counts are `u32` and saturate: one sketch covers one
/// endpoint for one minute, or a merged window.
#[derive(Debug, Clone, Default)]
pub struct Sketch {
    bins: Bins,
    zero: u64,
    count: u64,
    min: f64,
    max: f64,
}

impl Sketch {
    pub fn new() -> Sketch {
        Sketch::default()
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn insert(&mut self, value: f64) {
        debug_assert!(value.is_finite() && value >= 0.0);
        if self.count == 0 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.count += 1;
        if value < MIN_INDEXABLE {
            self.zero += 1;
            return;
        }
        self.bins.add(bucket_index(value), 1, MAX_BINS);
    }

    /// A sketch from its parts: values below [`MIN_INDEXABLE`] (`zero`), the smallest and
    /// largest value, and the count of each bin. For sketches stored or computed elsewhere.
    pub fn from_parts(zero: u64, min: f64, max: f64, bins: impl IntoIterator<Item = (i32, u32)>) -> Sketch {
        let mut pairs: Vec<(i32, u32)> = bins.into_iter().filter(|b| b.1 > 0).collect();
        pairs.sort_unstable_by_key(|b| b.0);
        pairs.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = kept.1.saturating_add(later.1);
            }
            same
        });
        let count = zero + pairs.iter().map(|b| u64::from(b.1)).sum::<u64>();
        Sketch { bins: Bins::from_sorted(pairs, MAX_BINS), zero, count, min, max }
    }

    /// The parts [`Sketch::from_parts`] takes: `(zero, min, max)` and the bins.
    pub fn parts(&self) -> ((u64, f64, f64), impl Iterator<Item = (i32, u32)> + '_) {
        ((self.zero, self.min, self.max), self.bins.iter())
    }

    /// Bins in use.
    pub fn bins_in_use(&self) -> usize {
        self.bins.in_use()
    }

    /// Adds every value of `other` to `self`, as if they had been inserted here.
    pub fn merge(&mut self, other: &Sketch) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.count += other.count;
        self.zero += other.zero;
        self.bins.merge(&other.bins, MAX_BINS, self.count >= u64::from(u32::MAX));
    }

    /// Values at the quantiles `qs` (each in 0..=1), in one pass. `None` when empty.
    ///
    /// The rank of quantile q is `floor(q * (count - 1))` (the lower nearest rank), the same
    /// definition `exact_quantile` uses.
    pub fn quantiles<const N: usize>(&self, qs: [f64; N]) -> Option<[f64; N]> {
        if self.count == 0 {
            return None;
        }
        let mut out = [0.0; N];
        for (slot, q) in out.iter_mut().zip(qs) {
            let rank = (q * (self.count - 1) as f64).floor() as u64;
            *slot = self.value_at_rank(rank);
        }
        Some(out)
    }

    fn value_at_rank(&self, rank: u64) -> f64 {
        if rank < self.zero {
            return self.min.min(MIN_INDEXABLE);
        }
        let mut seen = self.zero;
        for (index, c) in self.bins.iter() {
            seen += c as u64;
            if seen > rank {
                return bucket_value(index).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// Heap bytes held, for the KPI memory budget.
    pub fn heap_bytes(&self) -> usize {
        self.bins.heap_bytes()
    }

    /// Frees spare capacity (a sketch that is done growing: a past minute).
    pub fn shrink(&mut self) {
        self.bins.shrink();
    }

    /// The bins in use, for tests.
    #[cfg(test)]
    fn bin_list(&self) -> Vec<(i32, u32)> {
        self.bins.iter().collect()
    }
}

/// The exact quantile under the sketch's rank definition; for tests and benchmarks.
pub fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * (sorted.len() - 1) as f64).floor() as usize;
    sorted[rank]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random generator, so failures reproduce.
    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*seed >> 11) as f64 / (1u64 << 53) as f64
    }

    fn check_relative(values: &mut [f64]) {
        let mut sketch = Sketch::new();
        for &v in values.iter() {
            sketch.insert(v);
        }
        values.sort_by(f64::total_cmp);
        let qs = [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0];
        let got = sketch.quantiles(qs).unwrap();
        for (q, g) in qs.iter().zip(got) {
            let exact = exact_quantile(values, *q);
            let err = if exact == 0.0 { g } else { (g - exact).abs() / exact };
            assert!(err <= 0.01, "q={q}: sketch {g} vs exact {exact} (rel err {err})");
        }
    }

    #[test]
    fn quantiles_within_one_percent_on_long_tailed_latencies() {
        let mut seed = 7;
        // Log-normal-ish: exp of a sum of uniforms, from 0.5 ms to ~ minutes.
        let mut values: Vec<f64> = (0..200_000)
            .map(|_| {
                let s: f64 = (0..4).map(|_| lcg(&mut seed)).sum();
                (s * 3.0).exp() * 0.5
            })
            .collect();
        check_relative(&mut values);
    }

    #[test]
    fn quantiles_within_one_percent_with_zeros_and_extremes() {
        let mut seed = 11;
        let mut values: Vec<f64> = (0..10_000)
            .map(|i| match i % 10 {
                0 => 0.0,
                1 => 3_600_000.0,
                _ => lcg(&mut seed) * 1000.0,
            })
            .collect();
        check_relative(&mut values);
    }

    #[test]
    fn merge_equals_single_sketch() {
        let mut seed = 3;
        let values: Vec<f64> = (0..50_000).map(|_| lcg(&mut seed) * 5_000.0).collect();
        let mut whole = Sketch::new();
        let mut parts = vec![Sketch::new(); 7];
        for (i, &v) in values.iter().enumerate() {
            whole.insert(v);
            parts[i % 7].insert(v);
        }
        let mut merged = Sketch::new();
        for p in &parts {
            merged.merge(p);
        }
        assert_eq!(merged.count(), whole.count());
        let qs = [0.5, 0.95, 0.99];
        assert_eq!(merged.quantiles(qs), whole.quantiles(qs));
    }

    #[test]
    fn bins_are_bounded_and_the_top_stays_accurate() {
        // Values over 20 orders of magnitude: more distinct bins than MAX_BINS.
        let mut values: Vec<f64> = (0..50_000).map(|i| 1e-2 * 1.001f64.powi(i)).collect();
        let mut sketch = Sketch::new();
        for &v in &values {
            sketch.insert(v);
        }
        assert_eq!(sketch.bin_list().len(), MAX_BINS);
        values.sort_by(f64::total_cmp);
        // The kept bins span e^20.5 down from the largest value, e^50: the top 41 %.
        let [p10, p75, p99] = sketch.quantiles([0.1, 0.75, 0.99]).unwrap();
        for (got, q) in [(p75, 0.75), (p99, 0.99)] {
            let exact = exact_quantile(&values, q);
            assert!((got - exact).abs() / exact <= 0.01, "q={q}: {got} vs {exact}");
        }
        // A quantile among the collapsed values is reported too large, never too small.
        assert!(p10 > exact_quantile(&values, 0.1));
    }

    #[test]
    fn two_extreme_values_cost_two_bins() {
        let mut s = Sketch::new();
        s.insert(0.001);
        s.insert(3_600_000.0);
        assert_eq!(s.bin_list().len(), 2);
        assert!(s.heap_bytes() <= 64);
    }

    #[test]
    fn empty_sketch_has_no_quantiles() {
        assert_eq!(Sketch::new().quantiles([0.5]), None);
    }

    #[test]
    fn single_value_is_returned_exactly() {
        let mut s = Sketch::new();
        s.insert(42.5);
        assert_eq!(s.quantiles([0.0, 0.5, 1.0]), Some([42.5, 42.5, 42.5]));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Latencies as clients send them: 0 to one hour, spread over every order of magnitude.
    fn latency() -> impl Strategy<Value = f64> {
        prop_oneof![Just(0.0), (-4.0f64..6.56).prop_map(|e| 10f64.powf(e)), 0.0f64..3_600_000.0]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn quantiles_stay_within_the_promise(mut values in prop::collection::vec(latency(), 1..2000)) {
            let mut sketch = Sketch::new();
            for &v in &values {
                sketch.insert(v);
            }
            values.sort_by(f64::total_cmp);
            let qs = [0.0, 0.5, 0.9, 0.95, 0.99, 1.0];
            for (q, got) in qs.iter().zip(sketch.quantiles(qs).unwrap()) {
                let exact = exact_quantile(&values, *q);
                if exact < MIN_INDEXABLE {
                    prop_assert!(got <= MIN_INDEXABLE, "q={q}: {got} for {exact}");
                } else {
                    prop_assert!((got - exact).abs() <= 0.01 * exact, "q={q}: {got} vs exact {exact}");
                }
            }
            prop_assert!(sketch.bin_list().len() <= MAX_BINS);
        }

        #[test]
        fn merging_equals_building_from_the_union(
            values in prop::collection::vec((latency(), 0usize..5), 0..2000)
        ) {
            let mut whole = Sketch::new();
            let mut parts = vec![Sketch::new(); 5];
            for &(v, part) in &values {
                whole.insert(v);
                parts[part].insert(v);
            }
            let mut merged = Sketch::new();
            for p in &parts {
                merged.merge(p);
            }
            prop_assert_eq!(merged.count(), whole.count());
            prop_assert_eq!(merged.bin_list(), whole.bin_list());
            prop_assert_eq!(merged.zero, whole.zero);
            let qs = [0.5, 0.95, 0.99];
            prop_assert_eq!(merged.quantiles(qs), whole.quantiles(qs));
        }
    }
}
