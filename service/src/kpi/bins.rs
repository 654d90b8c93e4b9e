//! A sketch's bin counts, stored dense or sparse, whichever is smaller for what they hold.
//!
//! Real traffic fills most bins between its fastest and slowest answer: a dense array from
//! the lowest bin (4 bytes a bin) is smallest and fastest. Hostile or odd traffic hits a few
//! bins far apart (0.001 ms and one hour are 2 200 bins apart): sorted `(index, count)`
//! pairs (8 bytes a bin in use) are smallest. The store switches as it fills, with some
//! hysteresis, and never holds more than `MAX_BINS` bins in use: past that, the lowest are
//! folded into the lowest kept one.

/// Dense once the span is at most this many times the bins in use (4 bytes against 8).
const TO_DENSE: usize = 2;
/// Sparse again once the span would exceed this many times the bins in use.
const TO_SPARSE: usize = 3;

#[derive(Debug, Clone)]
pub enum Bins {
    Sparse(Vec<(i32, u32)>),
    /// `counts[i]` is bin `offset + i`; `used` counts the non-zero ones.
    Dense {
        offset: i32,
        counts: Vec<u32>,
        used: usize,
    },
}

impl Default for Bins {
    fn default() -> Bins {
        Bins::Sparse(Vec::new())
    }
}

impl Bins {
    /// Bins in use.
    pub fn in_use(&self) -> usize {
        match self {
            Bins::Sparse(v) => v.len(),
            Bins::Dense { used, .. } => *used,
        }
    }

    /// The bins in use, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = (i32, u32)> + '_ {
        let (sparse, dense) = match self {
            Bins::Sparse(v) => (Some(v.iter().copied()), None),
            Bins::Dense { offset, counts, .. } => {
                let offset = *offset;
                let used = counts.iter().enumerate().filter(|(_, c)| **c > 0);
                (None, Some(used.map(move |(i, c)| (offset + i as i32, *c))))
            }
        };
        sparse.into_iter().flatten().chain(dense.into_iter().flatten())
    }

    /// Adds `n` to bin `index`, then keeps at most `max_bins` bins in use.
    pub fn add(&mut self, index: i32, n: u32, max_bins: usize) {
        match self {
            Bins::Sparse(v) => match v.binary_search_by_key(&index, |b| b.0) {
                Ok(at) => v[at].1 = v[at].1.saturating_add(n),
                Err(at) => {
                    v.insert(at, (index, n));
                    let span = (v[v.len() - 1].0 - v[0].0) as usize + 1;
                    if span <= TO_DENSE * v.len() {
                        *self = Bins::dense_from(v);
                    }
                }
            },
            Bins::Dense { offset, counts, used } => {
                let end = *offset + counts.len() as i32;
                if (*offset..end).contains(&index) {
                    let slot = &mut counts[(index - *offset) as usize];
                    *used += usize::from(*slot == 0);
                    *slot = slot.saturating_add(n);
                } else {
                    let span = (index.max(end - 1) - index.min(*offset)) as usize + 1;
                    if span > TO_SPARSE * (*used + 1) {
                        let mut sparse = Bins::Sparse(self.iter().collect());
                        sparse.add(index, n, max_bins);
                        *self = sparse;
                        return;
                    }
                    if index < *offset {
                        counts.splice(0..0, std::iter::repeat_n(0, (*offset - index) as usize));
                        *offset = index;
                    } else {
                        counts.resize((index - *offset) as usize + 1, 0);
                    }
                    counts[(index - *offset) as usize] = n;
                    *used += 1;
                }
            }
        }
        if self.in_use() > max_bins {
            self.collapse(max_bins);
        }
    }

    /// Adds every bin of `other`. Two dense stores add slice to slice (the common case in
    /// a report, which merges up to 1 440 minutes); `saturate` is for when the two hold
    /// 2^32 values or more between them, so that a count could overflow (the plain addition
    /// vectorizes, the saturating one does not).
    pub fn merge(&mut self, other: &Bins, max_bins: usize, saturate: bool) {
        let (Bins::Dense { offset, counts, used }, Bins::Dense { offset: o, counts: c, .. }) = (&mut *self, other)
        else {
            for (index, n) in other.iter() {
                self.add(index, n, max_bins);
            }
            return;
        };
        let (lo, hi) = ((*offset).min(*o), (*offset + counts.len() as i32).max(*o + c.len() as i32));
        if lo < *offset {
            counts.splice(0..0, std::iter::repeat_n(0, (*offset - lo) as usize));
            *offset = lo;
        }
        counts.resize((hi - lo) as usize, 0);
        let start = (*o - *offset) as usize;
        let dst = &mut counts[start..start + c.len()];
        if saturate {
            dst.iter_mut().zip(c).for_each(|(d, s)| *d = d.saturating_add(*s));
        } else {
            dst.iter_mut().zip(c).for_each(|(d, s)| *d += *s);
        }
        *used = counts.iter().filter(|&&n| n != 0).count();
        if *used > max_bins {
            self.collapse(max_bins);
        }
    }

    /// From distinct bins, lowest first: in one pass, in whichever form is smaller.
    pub fn from_sorted(pairs: Vec<(i32, u32)>, max_bins: usize) -> Bins {
        if pairs.is_empty() {
            return Bins::default();
        }
        let mut bins = Bins::Sparse(pairs);
        if bins.in_use() > max_bins {
            bins.collapse(max_bins);
            return bins;
        }
        let Bins::Sparse(pairs) = &bins else { unreachable!() };
        let span = (pairs[pairs.len() - 1].0 - pairs[0].0) as usize + 1;
        if span <= TO_DENSE * pairs.len() { Bins::dense_from(pairs) } else { bins }
    }

    fn dense_from(pairs: &[(i32, u32)]) -> Bins {
        let offset = pairs[0].0;
        let mut counts = vec![0; (pairs[pairs.len() - 1].0 - offset) as usize + 1];
        for &(i, c) in pairs {
            counts[(i - offset) as usize] = c;
        }
        Bins::Dense { offset, counts, used: pairs.len() }
    }

    /// Folds the lowest bins into the lowest kept one until `max_bins` remain.
    fn collapse(&mut self, max_bins: usize) {
        let mut pairs: Vec<(i32, u32)> = self.iter().collect();
        let excess = pairs.len() - max_bins;
        pairs[excess].1 = pairs[..=excess].iter().fold(0u32, |acc, b| acc.saturating_add(b.1));
        pairs.drain(..excess);
        let span = (pairs[pairs.len() - 1].0 - pairs[0].0) as usize + 1;
        *self = if span <= TO_DENSE * pairs.len() { Bins::dense_from(&pairs) } else { Bins::Sparse(pairs) };
    }

    pub fn heap_bytes(&self) -> usize {
        match self {
            Bins::Sparse(v) => v.capacity() * std::mem::size_of::<(i32, u32)>(),
            Bins::Dense { counts, .. } => counts.capacity() * std::mem::size_of::<u32>(),
        }
    }

    pub fn shrink(&mut self) {
        match self {
            Bins::Sparse(v) => v.shrink_to_fit(),
            Bins::Dense { counts, .. } => counts.shrink_to_fit(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bins_of(indices: &[i32]) -> Bins {
        let mut b = Bins::default();
        for &i in indices {
            b.add(i, 1, 2048);
        }
        b
    }

    #[test]
    fn close_bins_go_dense_and_far_ones_stay_sparse() {
        let mut dense = bins_of(&(0..100).collect::<Vec<_>>());
        assert!(matches!(dense, Bins::Dense { used: 100, .. }), "{dense:?}");
        dense.shrink();
        assert_eq!(dense.heap_bytes(), 100 * 4);
        let far = bins_of(&[-691, 1509]);
        assert!(matches!(far, Bins::Sparse(_)));
        assert!(far.heap_bytes() <= 32);
        // A dense store hit far away turns sparse instead of growing an array.
        let mut b = bins_of(&(0..10).collect::<Vec<_>>());
        b.add(2000, 1, 2048);
        assert!(matches!(b, Bins::Sparse(_)));
        assert_eq!(b.iter().collect::<Vec<_>>().len(), 11);
    }

    #[test]
    fn both_forms_count_the_same() {
        let indices: Vec<i32> = (0..500).map(|i| (i * 7919) % 300 - 150).collect();
        let b = bins_of(&indices);
        let mut want = std::collections::BTreeMap::new();
        for i in &indices {
            *want.entry(*i).or_insert(0u32) += 1;
        }
        assert_eq!(b.iter().collect::<Vec<_>>(), want.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn merging_dense_and_sparse_stores_adds_their_counts() {
        let parts =
            [bins_of(&(0..50).collect::<Vec<_>>()), bins_of(&(40..120).collect::<Vec<_>>()), bins_of(&[-500, 900])];
        let mut merged = Bins::default();
        for p in &parts {
            merged.merge(p, 2048, false);
        }
        let whole = bins_of(&(0..50).chain(40..120).chain([-500, 900]).collect::<Vec<_>>());
        assert_eq!(merged.iter().collect::<Vec<_>>(), whole.iter().collect::<Vec<_>>());
        assert_eq!(merged.in_use(), 122);
    }

    #[test]
    fn collapse_keeps_the_highest_bins() {
        let mut b = Bins::default();
        for i in 0..10 {
            b.add(i * 100, 1, 4);
        }
        assert_eq!(b.iter().collect::<Vec<_>>(), [(600, 7), (700, 1), (800, 1), (900, 1)]);
    }
}
