//! Column inputs (values as float64, validity) and the per-column pass:
//! range, counts and fine grid (hull.py `column_stats`, grid.py `make_grid`).

use crate::fp::{frexp_exp, ldexp, nudge};

pub const FINE_BITS: u32 = 16;
pub const QMAX: i64 = (1 << FINE_BITS) - 1;
pub const PAD: i64 = 1 << (FINE_BITS - 4);
pub const INNER: i64 = QMAX - 2 * PAD;

/// Which rows are non-NULL.
#[derive(Clone, Copy)]
pub enum Validity<'a> {
    All,
    /// one byte per row, 0 = NULL (the Python reference's uint8 mask)
    Bytes(&'a [u8]),
    /// Arrow bitmap: bit `offset + i` (LSB first) set = row `i` valid
    Bits(&'a [u8], usize),
}

impl Validity<'_> {
    #[inline(always)]
    pub fn valid(&self, i: usize) -> bool {
        match *self {
            Validity::All => true,
            Validity::Bytes(m) => m[i] != 0,
            Validity::Bits(m, off) => {
                let j = off + i;
                (m[j >> 3] >> (j & 7)) & 1 != 0
            }
        }
    }
}

/// Values of a column as float64, converted exactly as `encoding.to_numeric` does.
#[derive(Clone, Copy)]
pub enum Values<'a> {
    F64(&'a [f64]),
    /// integers, date32 days: `v as f64` (numpy's astype rounds the same way)
    I64(&'a [i64]),
    I32(&'a [i32]),
    /// decimal128 (precision <= 18): low 64-bit words (stride 2), `unscaled as f64 / div`
    Dec(&'a [i64], f64),
}

impl Values<'_> {
    pub fn len(&self) -> usize {
        match *self {
            Values::F64(v) => v.len(),
            Values::I64(v) => v.len(),
            Values::I32(v) => v.len(),
            Values::Dec(v, _) => v.len() / 2,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline(always)]
    pub fn at(&self, i: usize) -> f64 {
        match *self {
            Values::F64(v) => v[i],
            Values::I64(v) => v[i] as f64,
            Values::I32(v) => v[i] as f64,
            // x / 1.0 == x exactly: scale 0 needs no special case
            Values::Dec(v, div) => v[2 * i] as f64 / div,
        }
    }
}

/// Fine grid of a column in a row group: value(q) = (n0 + q) * 2**e.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub e: i32,
    pub n0: i64,
}

impl Grid {
    /// Exact float64 value of fine coordinate `q`.
    pub fn value(&self, q: i64) -> f64 {
        ldexp((self.n0 + q) as f64, self.e)
    }
}

/// Python's `math.ldexp` raises OverflowError where the reference does.
#[derive(Debug, PartialEq, Eq)]
pub struct Overflow;

fn checked_ldexp(x: f64, n: i32) -> Result<f64, Overflow> {
    let r = ldexp(x, n);
    if r.is_infinite() && x.is_finite() {
        Err(Overflow)
    } else {
        Ok(r)
    }
}

/// grid.py `make_grid`; Ok(None) = absent, Err = the reference raises OverflowError.
pub fn make_grid(lo: f64, hi: f64) -> Result<Option<Grid>, Overflow> {
    if !(lo.is_finite() && hi.is_finite()) || lo > hi {
        return Ok(None);
    }
    let mag = lo.abs().max(hi.abs());
    let mut e = if mag == 0.0 {
        -1074
    } else {
        (frexp_exp(mag) - 52).max(-1074)
    };
    let half = hi * 0.5 - lo * 0.5;
    if half > 0.0 {
        e = e.max(frexp_exp(half) + 1 - FINE_BITS as i32);
    }
    let a = loop {
        let mut a = ldexp(lo, -e).floor() as i64;
        if checked_ldexp(a as f64, e)? > lo {
            a -= 1;
        }
        let mut b = ldexp(hi, -e).ceil() as i64;
        if checked_ldexp(b as f64, e)? < hi {
            b += 1;
        }
        if b - a <= INNER {
            break a;
        }
        e += 1;
    };
    let n0 = a - PAD;
    let top = ldexp((n0 + QMAX) as f64, e);
    let bottom = ldexp(n0 as f64, e);
    if !(top.is_finite() && bottom.is_finite()) || n0.abs() + QMAX >= 1 << 53 {
        return Ok(None);
    }
    Ok(Some(Grid { e, n0 }))
}

/// One column in one row group (polygon.py `ColumnSummary`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub lo: f64,
    pub hi: f64,
    pub nulls: u64,
    pub nans: u64,
    pub infs: u64,
    pub grid: Option<Grid>,
}

/// A pass over a column, monomorphized per value kind and validity kind
/// (no per-row dispatch in the hot loops).
pub trait Visit {
    type Out;
    fn run<V: Fn(usize) -> f64 + Copy, M: Fn(usize) -> bool + Copy>(
        self,
        n: usize,
        at: V,
        ok: M,
    ) -> Self::Out;
}

/// Run `t` over `values` with `valid`.
pub fn visit<T: Visit>(values: &Values, valid: &Validity, t: T) -> T::Out {
    match *valid {
        Validity::All => visit_values(values, |_| true, t),
        Validity::Bytes(m) => {
            let m = &m[..values.len()];
            visit_values(values, move |i| m[i] != 0, t)
        }
        Validity::Bits(m, off) => visit_values(
            values,
            move |i| (m[(off + i) >> 3] >> ((off + i) & 7)) & 1 != 0,
            t,
        ),
    }
}

fn visit_values<T: Visit, M: Fn(usize) -> bool + Copy>(values: &Values, ok: M, t: T) -> T::Out {
    match *values {
        Values::F64(v) => t.run(v.len(), move |i| v[i], ok),
        Values::I64(v) => t.run(v.len(), move |i| v[i] as f64, ok),
        Values::I32(v) => t.run(v.len(), move |i| v[i] as f64, ok),
        Values::Dec(v, div) => t.run(v.len() / 2, move |i| v[2 * i] as f64 / div, ok),
    }
}

struct Stats;

impl Visit for Stats {
    type Out = (f64, f64, u64, u64, u64);
    #[inline(always)]
    fn run<V: Fn(usize) -> f64 + Copy, M: Fn(usize) -> bool + Copy>(
        self,
        n: usize,
        at: V,
        ok: M,
    ) -> Self::Out {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut nulls, mut nans, mut infs) = (0u64, 0u64, 0u64);
        for i in 0..n {
            if !ok(i) {
                nulls += 1;
                continue;
            }
            let v = at(i);
            if v.is_nan() {
                nans += 1;
                continue;
            }
            if v.is_infinite() {
                infs += 1;
            }
            if v < lo {
                lo = v;
            }
            if v > hi {
                hi = v;
            }
        }
        (lo, hi, nulls, nans, infs)
    }
}

/// hull.py `column_stats` then the grid as `summarize_column` builds it.
pub fn summarize(values: &Values, valid: &Validity, ulps: u32) -> Result<Summary, Overflow> {
    let (mut lo, mut hi, nulls, nans, infs) = match *values {
        Values::F64(_) => visit(values, valid, Stats),
        Values::I64(v) => int_stats(v.len(), |i| v[i], |r| r as f64, valid),
        Values::I32(v) => int_stats(v.len(), |i| v[i] as i64, |r| r as f64, valid),
        Values::Dec(v, div) => int_stats(v.len() / 2, |i| v[2 * i], |r| r as f64 / div, valid),
    };
    if lo <= hi {
        lo = nudge(lo, ulps, false);
        hi = nudge(hi, ulps, true);
    }
    let grid = if infs == 0 && lo <= hi {
        make_grid(lo, hi)?
    } else {
        None
    };
    Ok(Summary {
        lo,
        hi,
        nulls,
        nans,
        infs,
        grid,
    })
}

/// Range of the raw integers of the valid rows (None: no valid row) and the NULL count.
pub fn raw_range<R: Fn(usize) -> i64>(n: usize, raw: R, valid: &Validity) -> (Option<(i64, i64)>, u64) {
    let (mut lo, mut hi, mut nulls) = (i64::MAX, i64::MIN, 0u64);
    match *valid {
        Validity::All => {
            for i in 0..n {
                let r = raw(i);
                lo = lo.min(r);
                hi = hi.max(r);
            }
        }
        _ => {
            for i in 0..n {
                if valid.valid(i) {
                    let r = raw(i);
                    lo = lo.min(r);
                    hi = hi.max(r);
                } else {
                    nulls += 1;
                }
            }
        }
    }
    ((nulls < n as u64).then_some((lo, hi)), nulls)
}

/// `Stats` of an integer-backed column: the conversion is monotone and never gives
/// NaN, inf or -0.0, so the float64 min/max are the conversions of the raw min/max
/// (one integer pass instead of a float pass with NaN/inf tests).
fn int_stats<R: Fn(usize) -> i64, C: Fn(i64) -> f64>(
    n: usize,
    raw: R,
    conv: C,
    valid: &Validity,
) -> (f64, f64, u64, u64, u64) {
    match raw_range(n, raw, valid) {
        (Some((lo, hi)), nulls) => (conv(lo), conv(hi), nulls, 0, 0),
        (None, nulls) => (f64::INFINITY, f64::NEG_INFINITY, nulls, 0, 0),
    }
}

/// Largest |value| <= 2**53 test of `encoding._int_ulps`: 1 when an integer
/// column's valid values go beyond 2**53 (their float64 conversion rounds).
pub fn int_ulps(values: &Values, valid: &Validity) -> u32 {
    let big = |m: u64| m > 1u64 << 53;
    match *values {
        Values::I64(v) => {
            let any = (0..v.len()).any(|i| valid.valid(i) && big(v[i].unsigned_abs()));
            any as u32
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_stats_equal_float_stats() {
        let raw: Vec<i64> = (0..1000).map(|i| (i * 7919 % 2003) - 1000).collect();
        let words: Vec<i64> = raw.iter().flat_map(|&u| [u, -1]).collect();
        let mask: Vec<u8> = (0..1000).map(|i| (i % 7 != 0) as u8).collect();
        for (ints, conv) in [
            (
                Values::I64(&raw),
                raw.iter().map(|&u| u as f64).collect::<Vec<_>>(),
            ),
            (
                Values::Dec(&words, 1000.0),
                raw.iter().map(|&u| u as f64 / 1000.0).collect(),
            ),
        ] {
            for valid in [Validity::All, Validity::Bytes(&mask), Validity::Bytes(&[0; 1000])] {
                for ulps in [0, 2] {
                    let a = summarize(&ints, &valid, ulps).unwrap();
                    let b = summarize(&Values::F64(&conv), &valid, ulps).unwrap();
                    assert_eq!((a.lo.to_bits(), a.hi.to_bits()), (b.lo.to_bits(), b.hi.to_bits()));
                    assert_eq!(a, b);
                }
            }
        }
    }

    #[test]
    fn grid_holds_range_inside_padding() {
        for &(lo, hi) in &[(0.0, 1.0), (-3.5, 1e6), (1e-300, 2e-300), (5.0, 5.0), (0.0, 0.0)] {
            let g = make_grid(lo, hi).unwrap().unwrap();
            assert!(g.value(PAD) <= lo && g.value(QMAX - PAD) >= hi, "{lo} {hi} {g:?}");
        }
        assert_eq!(make_grid(0.0, 0.0).unwrap().unwrap().e, -1074);
        assert_eq!(make_grid(f64::NAN, 1.0), Ok(None));
        assert_eq!(make_grid(2.0, 1.0), Ok(None));
        // lo within one grid step of -MAX: Python's ldexp raises OverflowError
        assert_eq!(make_grid(-f64::MAX, f64::MAX), Err(Overflow));
    }

    #[test]
    fn summary_counts_and_widening() {
        let v = [1.0, f64::NAN, f64::INFINITY, -2.0, 7.0];
        let m = [1u8, 1, 1, 1, 0];
        let s = summarize(&Values::F64(&v), &Validity::Bytes(&m), 1).unwrap();
        assert_eq!((s.nulls, s.nans, s.infs), (1, 1, 1));
        assert_eq!(s.lo, nudge(-2.0, 1, false));
        assert_eq!(s.hi, f64::INFINITY);
        assert!(s.grid.is_none());
        let bits = [0b0000_1011u8];
        let s = summarize(&Values::F64(&v[..4]), &Validity::Bits(&bits, 0), 0).unwrap();
        assert_eq!(s.nulls, 1); // row 2 (the +inf) is NULL
        assert_eq!((s.lo, s.hi, s.infs), (-2.0, 1.0, 0));
        assert!(s.grid.is_some());
    }

    #[test]
    fn conversions() {
        let w = [150i64, 0, -7, -1];
        let d = Values::Dec(&w, 100.0);
        assert_eq!((d.len(), d.at(0), d.at(1)), (2, 1.5, -0.07));
        assert_eq!(int_ulps(&Values::I64(&[(1 << 53) + 1]), &Validity::All), 1);
        assert_eq!(int_ulps(&Values::I64(&[1 << 53, -(1 << 53)]), &Validity::All), 0);
    }
}
