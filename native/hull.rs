//! Exact integer hulls on the fine grid (port of hull.py): outward cells of
//! each row, the hull of all cell rectangles, coarsening, area.

use crate::column::{visit, Grid, Validity, Values, Visit, QMAX};
use crate::fp::{ldexp, nudge};

pub const NULL: i32 = -1;
pub const NONFINITE: i32 = -2;

/// `floor(t)` for finite `t` well inside the i64 range (no libm call).
#[inline(always)]
fn floor_i64(t: f64) -> i64 {
    let i = t as i64;
    if i as f64 > t {
        i - 1
    } else {
        i
    }
}

/// `ceil(t)` for finite `t` well inside the i64 range.
#[inline(always)]
fn ceil_i64(t: f64) -> i64 {
    let i = t as i64;
    if (i as f64) < t {
        i + 1
    } else {
        i
    }
}

struct Cells {
    ulps: u32,
    g: Grid,
}

impl Visit for Cells {
    type Out = (Vec<i32>, Vec<i32>);
    #[inline(always)]
    fn run<V: Fn(usize) -> f64 + Copy, M: Fn(usize) -> bool + Copy>(
        self,
        n: usize,
        at: V,
        ok: M,
    ) -> Self::Out {
        let (ulps, g) = (self.ulps, self.g);
        let mut qlo = Vec::with_capacity(n);
        let mut qhi = Vec::with_capacity(n);
        let n0 = g.n0;
        let fn0 = n0 as f64;
        let step = ldexp(1.0, g.e);
        let fast = g.e >= -1022;
        let inv = if fast { ldexp(1.0, -g.e) } else { 0.0 };
        let qmax2 = QMAX as f64 + 2.0;
        for i in 0..n {
            let (l, h) = cell(ok(i), at(i), ulps, n0, fn0, step, fast, inv, g.e, qmax2);
            qlo.push(l);
            qhi.push(h);
        }
        (qlo, qhi)
    }
}

/// The cell of one row (the body of hull.py `column_cells`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn cell(
    ok: bool,
    v: f64,
    ulps: u32,
    n0: i64,
    fn0: f64,
    step: f64,
    fast: bool,
    inv: f64,
    e: i32,
    qmax2: f64,
) -> (i32, i32) {
    if !ok {
        return (NULL, NULL);
    }
    if !v.is_finite() {
        return (NONFINITE, NONFINITE);
    }
    let (a, b) = if ulps > 1 {
        (nudge(v, ulps, false), nudge(v, ulps, true))
    } else {
        (v, v)
    };
    let (ta, tb) = if fast {
        (a * inv - fn0, b * inv - fn0)
    } else {
        (ldexp(a, -e) - fn0, ldexp(b, -e) - fn0)
    };
    if !(ta > -2.0 && tb < qmax2) {
        return (NONFINITE, NONFINITE);
    }
    // -2 < ta <= tb < QMAX + 2 here: the cast-based floor/ceil are exact
    let mut la = floor_i64(ta);
    while (n0 + la) as f64 * step > a {
        la -= 1;
    }
    let mut hb = ceil_i64(tb);
    while ((n0 + hb) as f64 * step) < b {
        hb += 1;
    }
    if ulps == 1 {
        if (n0 + la) as f64 * step == v {
            la -= 1;
        }
        if (n0 + hb) as f64 * step == v {
            hb += 1;
        }
    }
    if la < 0 || hb > QMAX {
        return (NONFINITE, NONFINITE);
    }
    (la as i32, hb as i32)
}

/// hull.py `column_cells`: outward fine-grid cell bounds (qlo, qhi) of each row.
pub fn column_cells(values: &Values, valid: &Validity, ulps: u32, g: Grid) -> (Vec<i32>, Vec<i32>) {
    visit(values, valid, Cells { ulps, g })
}

#[inline(always)]
fn cross(ox: i64, oy: i64, ax: i64, ay: i64, bx: i64, by: i64) -> i64 {
    (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)
}

/// A polygon as two coordinate vectors (CCW, from the smallest (x, y)).
pub type Poly = (Vec<i64>, Vec<i64>);

/// hull.py `chain_hull`: Andrew's monotone chain on points sorted by (x, y).
pub fn chain_hull(px: &[i64], py: &[i64]) -> Poly {
    let n = px.len();
    if n == 0 {
        return (vec![], vec![]);
    }
    if n == 1 {
        return (vec![px[0]], vec![py[0]]);
    }
    let mut hx = vec![0i64; 2 * n + 1];
    let mut hy = vec![0i64; 2 * n + 1];
    let mut m = 0usize;
    for i in 0..n {
        while m >= 2 && cross(hx[m - 2], hy[m - 2], hx[m - 1], hy[m - 1], px[i], py[i]) <= 0 {
            m -= 1;
        }
        hx[m] = px[i];
        hy[m] = py[i];
        m += 1;
    }
    let lower = m + 1;
    for i in (0..n - 1).rev() {
        while m >= lower && cross(hx[m - 2], hy[m - 2], hx[m - 1], hy[m - 1], px[i], py[i]) <= 0 {
            m -= 1;
        }
        hx[m] = px[i];
        hy[m] = py[i];
        m += 1;
    }
    m -= 1;
    if m == 1 && (hx[0] != hx[1] || hy[0] != hy[1]) {
        m = 2;
    }
    hx.truncate(m);
    hy.truncate(m);
    (hx, hy)
}

/// hull.py `hull_of_points`: exact hull of a small unsorted point set.
pub fn hull_of_points(px: &[i64], py: &[i64]) -> Poly {
    let mut pts: Vec<(i64, i64)> = px.iter().copied().zip(py.iter().copied()).collect();
    pts.sort_unstable_by_key(|&(x, y)| x * 4_294_967_296 + y);
    pts.dedup();
    let sx: Vec<i64> = pts.iter().map(|p| p.0).collect();
    let sy: Vec<i64> = pts.iter().map(|p| p.1).collect();
    chain_hull(&sx, &sy)
}

/// Why a pair has no fine hull (hull.py `pair_hull` status 1 and 2).
#[derive(Debug, PartialEq, Eq)]
pub enum NoHull {
    NoValidRow,
    NonFinite,
}

/// hull.py `pair_hull`: exact hull of the cell rectangles of rows valid in both columns.
pub fn pair_hull(xlo: &[i32], xhi: &[i32], ylo: &[i32], yhi: &[i32]) -> Result<Poly, NoHull> {
    let size = (QMAX + 1) as usize;
    let mut cmin = vec![size as i32; size];
    let mut cmax = vec![-1i32; size];
    let mut seen = false;
    let n = xlo.len();
    let (xhi, ylo, yhi) = (&xhi[..n], &ylo[..n], &yhi[..n]);
    for i in 0..n {
        let a = xlo[i];
        let c = ylo[i];
        if a == NULL || c == NULL {
            continue;
        }
        if a == NONFINITE || c == NONFINITE {
            return Err(NoHull::NonFinite);
        }
        seen = true;
        let b = xhi[i];
        let d = yhi[i];
        let (a, b) = (a as usize, b as usize);
        if c < cmin[a] {
            cmin[a] = c;
        }
        if d > cmax[a] {
            cmax[a] = d;
        }
        if b != a {
            if c < cmin[b] {
                cmin[b] = c;
            }
            if d > cmax[b] {
                cmax[b] = d;
            }
        }
    }
    if !seen {
        return Err(NoHull::NoValidRow);
    }
    let mut px = Vec::new();
    let mut py = Vec::new();
    for x in 0..size {
        if cmax[x] >= 0 {
            px.push(x as i64);
            py.push(cmin[x] as i64);
            if cmax[x] != cmin[x] {
                px.push(x as i64);
                py.push(cmax[x] as i64);
            }
        }
    }
    Ok(chain_hull(&px, &py))
}

/// hull.py `coarsen`: hull of the coarse cells (step 2**shift) holding each vertex.
pub fn coarsen(hx: &[i64], hy: &[i64], shift: u32) -> Poly {
    let unit = 1i64 << shift;
    let mut px = Vec::with_capacity(4 * hx.len());
    let mut py = Vec::with_capacity(4 * hx.len());
    for i in 0..hx.len() {
        let x0 = hx[i] >> shift;
        let y0 = hy[i] >> shift;
        let x1 = x0 + ((hx[i] & (unit - 1)) != 0) as i64;
        let y1 = y0 + ((hy[i] & (unit - 1)) != 0) as i64;
        px.extend_from_slice(&[x0, x1, x0, x1]);
        py.extend_from_slice(&[y0, y0, y1, y1]);
    }
    hull_of_points(&px, &py)
}

/// hull.py `area2`: twice the polygon's area (exact shoelace).
pub fn area2(hx: &[i64], hy: &[i64]) -> i64 {
    let n = hx.len();
    let mut s = 0i64;
    for i in 0..n {
        let j = (i + 1) % n;
        s += hx[i] * hy[j] - hx[j] * hy[i];
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_hull_degenerate_and_square() {
        assert_eq!(chain_hull(&[3], &[4]), (vec![3], vec![4]));
        assert_eq!(chain_hull(&[0, 5], &[0, 5]), (vec![0, 5], vec![0, 5]));
        // collinear: the two end points
        assert_eq!(chain_hull(&[0, 1, 2], &[0, 1, 2]), (vec![0, 2], vec![0, 2]));
        let (x, y) = hull_of_points(&[1, 0, 1, 0, 0], &[1, 0, 0, 1, 0]);
        assert_eq!((x, y), (vec![0, 1, 1, 0], vec![0, 0, 1, 1]));
        assert_eq!(area2(&[0, 1, 1, 0], &[0, 0, 1, 1]), 2);
    }

    #[test]
    fn pair_hull_status() {
        let n = [NULL, NULL];
        assert_eq!(pair_hull(&n, &n, &[1, 2], &[1, 2]), Err(NoHull::NoValidRow));
        let f = [NONFINITE, 5];
        assert_eq!(pair_hull(&f, &f, &[1, 2], &[1, 2]), Err(NoHull::NonFinite));
        let (x, y) = pair_hull(&[10, 20], &[11, 20], &[5, 7], &[6, 7]).unwrap();
        assert_eq!((x, y), (vec![10, 11, 20, 10], vec![5, 5, 7, 6]));
    }

    #[test]
    fn cells_are_outward() {
        let v = [0.25, 1.0, 3.0, f64::NAN];
        let g = crate::column::make_grid(0.25, 3.0).unwrap().unwrap();
        let (lo, hi) = column_cells(&Values::F64(&v), &Validity::All, 0, g);
        for i in 0..3 {
            assert!(g.value(lo[i] as i64) <= v[i] && g.value(hi[i] as i64) >= v[i]);
        }
        assert_eq!((lo[3], hi[3]), (NONFINITE, NONFINITE));
        let (lo, hi) = column_cells(&Values::F64(&v), &Validity::All, 1, g);
        assert!(g.value(lo[1] as i64) < 1.0 && g.value(hi[1] as i64) > 1.0);
    }
}
