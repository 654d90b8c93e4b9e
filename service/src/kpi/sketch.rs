//! DDSketch: a mergeable quantile sketch with a relative-error guarantee.
//!
//! Why DDSketch and not an HDR histogram: the guarantee is relative (every quantile it
//! returns is within `ALPHA` of the exact value at the same rank, whatever the scale),
//! merging two sketches is adding their bucket counts (so per-minute sketches roll up to
//! any window exactly as if built over the window), and its size grows only with the
//! log-range of the values seen, not with their count. See ARCHITECTURE.md.

/// Relative accuracy. Half the 1 % the KPIs promise, leaving room for the exact
/// percentile's own definition (which rank it picks between two samples).
pub const ALPHA: f64 = 0.005;

/// Values below this (in ms) are counted in the zero bucket and reported as 0.
const MIN_INDEXABLE: f64 = 1e-3;

fn ln_gamma() -> f64 {
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

/// A quantile sketch. Counts are `u32`: one sketch covers one endpoint for one minute (or
/// a merged window, where a `u32` still allows 4 billion events per bucket), and halving
/// the width keeps 24 hours of per-minute sketches small.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sketch {
    /// Index of `counts[0]`.
    offset: i32,
    counts: Vec<u32>,
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
        let index = bucket_index(value);
        *self.slot(index) += 1;
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
        if other.counts.is_empty() {
            return;
        }
        self.reserve_range(other.offset, other.offset + other.counts.len() as i32 - 1);
        let start = (other.offset - self.offset) as usize;
        for (dst, src) in self.counts[start..].iter_mut().zip(&other.counts) {
            *dst += *src;
        }
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
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c as u64;
            if seen > rank {
                let v = bucket_value(self.offset + i as i32);
                return v.clamp(self.min, self.max);
            }
        }
        self.max
    }

    fn slot(&mut self, index: i32) -> &mut u32 {
        self.reserve_range(index, index);
        &mut self.counts[(index - self.offset) as usize]
    }

    fn reserve_range(&mut self, lo: i32, hi: i32) {
        if self.counts.is_empty() {
            self.offset = lo;
            self.counts = vec![0; (hi - lo + 1) as usize];
            return;
        }
        if lo < self.offset {
            let grow = (self.offset - lo) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = lo;
        }
        let end = self.offset + self.counts.len() as i32 - 1;
        if hi > end {
            self.counts.resize(self.counts.len() + (hi - end) as usize, 0);
        }
    }

    /// Heap bytes held, for memory accounting in benchmarks.
    pub fn heap_bytes(&self) -> usize {
        self.counts.capacity() * std::mem::size_of::<u32>()
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
