//! Exact integer hulls on the fine grid (port of hull.py): outward cells of
//! each row, the hull of all cell rectangles, coarsening, area.

use crate::column::{raw_range, visit, Grid, Validity, Values, Visit, QMAX};
use crate::fp::{ldexp, nudge};

/// A row's cell packed as `qlo << 16 | qhi` (0 <= qlo <= qhi <= QMAX), or a marker;
/// both markers have qlo > qhi, so they never collide with a cell.
pub type Cell = u32;
/// row is NULL in this column (hull.py `NULL`)
pub const NULL: Cell = 0xFFFF_FFFE;
/// row is NaN, +-inf or off the grid (hull.py `NONFINITE`)
pub const NONFINITE: Cell = 0xFFFF_FFFD;

/// Pack a cell.
#[inline(always)]
pub fn pack(qlo: i64, qhi: i64) -> Cell {
    ((qlo as u32) << 16) | qhi as u32
}

/// Unpack a cell (not a marker).
#[inline(always)]
pub fn unpack(c: Cell) -> (i64, i64) {
    ((c >> 16) as i64, (c & 0xFFFF) as i64)
}

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

struct Cells<'a> {
    ulps: u32,
    g: Grid,
    out: &'a mut Vec<Cell>,
}

impl Visit for Cells<'_> {
    type Out = ();
    #[inline(always)]
    fn run<V: Fn(usize) -> f64 + Copy, M: Fn(usize) -> bool + Copy>(
        self,
        n: usize,
        at: V,
        ok: M,
    ) -> Self::Out {
        let out = self.out;
        out.clear();
        out.reserve(n);
        let c = Consts::new(self.g, self.ulps);
        let dst = &mut out.spare_capacity_mut()[..n];
        // the loop-invariant branches (widening mode, ldexp path) are hoisted
        match (self.ulps, c.fast) {
            (0, true) => fill::<0, true, _, _>(dst, &c, at, ok),
            (1, true) => fill::<1, true, _, _>(dst, &c, at, ok),
            (_, true) => fill::<2, true, _, _>(dst, &c, at, ok),
            (0, false) => fill::<0, false, _, _>(dst, &c, at, ok),
            (1, false) => fill::<1, false, _, _>(dst, &c, at, ok),
            (_, false) => fill::<2, false, _, _>(dst, &c, at, ok),
        }
        // SAFETY: fill wrote all n slots
        unsafe { out.set_len(n) };
    }
}

/// Loop invariants of the cell computation of one column.
struct Consts {
    ulps: u32,
    n0: i64,
    fn0: f64,
    step: f64,
    fast: bool,
    inv: f64,
    e: i32,
}

impl Consts {
    fn new(g: Grid, ulps: u32) -> Self {
        let fast = g.e >= -1022;
        Consts {
            ulps,
            n0: g.n0,
            fn0: g.n0 as f64,
            step: ldexp(1.0, g.e),
            fast,
            inv: if fast { ldexp(1.0, -g.e) } else { 0.0 },
            e: g.e,
        }
    }
}

#[inline(always)]
fn fill<const MODE: u32, const FAST: bool, V: Fn(usize) -> f64, M: Fn(usize) -> bool>(
    dst: &mut [std::mem::MaybeUninit<Cell>],
    c: &Consts,
    at: V,
    ok: M,
) {
    for (i, d) in dst.iter_mut().enumerate() {
        d.write(cell::<MODE, FAST>(ok(i), at(i), c));
    }
}

/// The cell of one row (the body of hull.py `column_cells`); MODE 0, 1, 2 = ulps 0, 1, > 1.
#[inline(always)]
fn cell<const MODE: u32, const FAST: bool>(ok: bool, v: f64, c: &Consts) -> Cell {
    if !ok {
        return NULL;
    }
    if !v.is_finite() {
        return NONFINITE;
    }
    let (a, b) = if MODE == 2 {
        (nudge(v, c.ulps, false), nudge(v, c.ulps, true))
    } else {
        (v, v)
    };
    let (ta, tb) = if FAST {
        (a * c.inv - c.fn0, b * c.inv - c.fn0)
    } else {
        (ldexp(a, -c.e) - c.fn0, ldexp(b, -c.e) - c.fn0)
    };
    if !(ta > -2.0 && tb < QMAX as f64 + 2.0) {
        return NONFINITE;
    }
    // -2 < ta <= tb < QMAX + 2 here: the cast-based floor/ceil are exact
    let (n0, step) = (c.n0, c.step);
    let mut la = floor_i64(ta);
    while (n0 + la) as f64 * step > a {
        la -= 1;
    }
    let mut hb = ceil_i64(tb);
    while ((n0 + hb) as f64 * step) < b {
        hb += 1;
    }
    if MODE == 1 {
        if (n0 + la) as f64 * step == v {
            la -= 1;
        }
        if (n0 + hb) as f64 * step == v {
            hb += 1;
        }
    }
    if la < 0 || hb > QMAX {
        return NONFINITE;
    }
    pack(la, hb)
}

/// hull.py `column_cells`: outward fine-grid cell bounds of each row, packed into `out`.
pub fn column_cells_into(values: &Values, valid: &Validity, ulps: u32, g: Grid, out: &mut Vec<Cell>) {
    let c = Consts::new(g, ulps);
    let done = match *values {
        Values::F64(_) => false,
        Values::I64(v) => lut_cells(v.len(), |i| v[i], |r| r as f64, valid, &c, out),
        Values::I32(v) => lut_cells(v.len(), |i| v[i] as i64, |r| r as f64, valid, &c, out),
        Values::Dec(v, div) => lut_cells(v.len() / 2, |i| v[2 * i], |r| r as f64 / div, valid, &c, out),
    };
    if !done {
        visit(values, valid, Cells { ulps, g, out })
    }
}

/// Largest integer span looked up in a table instead of computed per row.
const LUT_MAX: i64 = 1 << 16;

/// `cell` of one value with the mode chosen at run time (table construction).
fn cell_dyn(v: f64, c: &Consts) -> Cell {
    match (c.ulps, c.fast) {
        (0, true) => cell::<0, true>(true, v, c),
        (1, true) => cell::<1, true>(true, v, c),
        (_, true) => cell::<2, true>(true, v, c),
        (0, false) => cell::<0, false>(true, v, c),
        (1, false) => cell::<1, false>(true, v, c),
        (_, false) => cell::<2, false>(true, v, c),
    }
}

/// Integer-backed columns (dates, decimals, ints) with a small raw span: the cell is a
/// function of the raw integer, so it is computed once per distinct raw value (the same
/// `cell` function, hence the same bytes) and looked up per row. False = not applicable.
fn lut_cells<R: Fn(usize) -> i64 + Copy, C: Fn(i64) -> f64>(
    n: usize,
    raw: R,
    conv: C,
    valid: &Validity,
    c: &Consts,
    out: &mut Vec<Cell>,
) -> bool {
    let (lo, hi) = match raw_range(n, raw, valid) {
        (Some(r), _) => r,
        (None, _) => return false,
    };
    let span = match hi.checked_sub(lo) {
        Some(s) if s < LUT_MAX && (s as usize) < n => s as usize,
        _ => return false,
    };
    let lut: Vec<Cell> = (0..=span).map(|k| cell_dyn(conv(lo + k as i64), c)).collect();
    out.clear();
    match *valid {
        Validity::All => out.extend((0..n).map(|i| lut[(raw(i) - lo) as usize])),
        _ => out.extend((0..n).map(|i| {
            if valid.valid(i) {
                lut[(raw(i) - lo) as usize]
            } else {
                NULL
            }
        })),
    }
    true
}

/// `column_cells_into` with a fresh vector.
pub fn column_cells(values: &Values, valid: &Validity, ulps: u32, g: Grid) -> Vec<Cell> {
    let mut out = Vec::new();
    column_cells_into(values, valid, ulps, g, &mut out);
    out
}

#[inline(always)]
fn cross(ox: i64, oy: i64, ax: i64, ay: i64, bx: i64, by: i64) -> i64 {
    (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)
}

/// A polygon as two coordinate vectors (CCW, from the smallest (x, y)).
pub type Poly = (Vec<i64>, Vec<i64>);

/// hull.py `chain_hull`: Andrew's monotone chain on distinct points sorted by (x, y);
/// CCW from the smallest point, no collinear vertices (a stack instead of 2n + 1 slots).
pub fn chain_hull_pts(p: &[(i64, i64)], st: &mut Vec<(i64, i64)>) {
    st.clear();
    let n = p.len();
    if n <= 1 {
        st.extend_from_slice(p);
        return;
    }
    let turn = |st: &Vec<(i64, i64)>, q: (i64, i64)| {
        let (o, a) = (st[st.len() - 2], st[st.len() - 1]);
        cross(o.0, o.1, a.0, a.1, q.0, q.1)
    };
    for &q in p {
        while st.len() >= 2 && turn(st, q) <= 0 {
            st.pop();
        }
        st.push(q);
    }
    let lower = st.len() + 1;
    for &q in p[..n - 1].iter().rev() {
        while st.len() >= lower && turn(st, q) <= 0 {
            st.pop();
        }
        st.push(q);
    }
    let last = st.pop().unwrap(); // equals the first point
    if st.len() == 1 && st[0] != last {
        st.push(last); // two distinct points: keep the segment
    }
}

/// `chain_hull_pts` on coordinate slices.
pub fn chain_hull(px: &[i64], py: &[i64]) -> Poly {
    let pts: Vec<(i64, i64)> = px.iter().copied().zip(py.iter().copied()).collect();
    let mut st = Vec::new();
    chain_hull_pts(&pts, &mut st);
    st.into_iter().unzip()
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

/// Reusable buffers of `pair_hull` (one per thread: no page faults per call).
#[derive(Default)]
pub struct HullScratch {
    /// per fine x: [lowest qlo_y, highest qhi_y]; unseen while lowest > highest
    tab: Vec<[u16; 2]>,
    lower: Vec<(i64, i64)>,
    upper: Vec<(i64, i64)>,
    pts: Vec<(i64, i64)>,
    st: Vec<(i64, i64)>,
}

/// hull.py `pair_hull`: exact hull of the cell rectangles of rows valid in both columns.
pub fn pair_hull_with(cx: &[Cell], cy: &[Cell], s: &mut HullScratch) -> Result<Poly, NoHull> {
    let size = (QMAX + 1) as usize;
    s.tab.clear();
    s.tab.resize(size, [u16::MAX, 0]);
    let tab = &mut s.tab[..size];
    let n = cx.len();
    let cy = &cy[..n];
    let mut seen = false;
    for i in 0..n {
        let (a, c) = (cx[i], cy[i]);
        if a == NULL || c == NULL {
            continue;
        }
        if a == NONFINITE || c == NONFINITE {
            return Err(NoHull::NonFinite);
        }
        seen = true;
        let (xl, xh) = ((a >> 16) as usize, (a & 0xFFFF) as usize);
        let (yl, yh) = ((c >> 16) as u16, (c & 0xFFFF) as u16);
        let t = &mut tab[xl];
        t[0] = t[0].min(yl);
        t[1] = t[1].max(yh);
        if xh != xl {
            let t = &mut tab[xh];
            t[0] = t[0].min(yl);
            t[1] = t[1].max(yh);
        }
    }
    if !seen {
        return Err(NoHull::NoValidRow);
    }
    // Every vertex of the hull of all (x, min) and (x, max) points lies on the lower
    // chain of the column minima or on the upper chain of the column maxima; the
    // reference chain on those few candidates gives the same strict, canonical hull.
    let (lower, upper) = (&mut s.lower, &mut s.upper);
    lower.clear();
    upper.clear();
    for (x, t) in tab.iter().enumerate() {
        if t[0] <= t[1] {
            let x = x as i64;
            let q = (x, t[0] as i64);
            while lower.len() >= 2 && turn(lower, q) <= 0 {
                lower.pop();
            }
            lower.push(q);
            let q = (x, t[1] as i64);
            while upper.len() >= 2 && turn(upper, q) >= 0 {
                upper.pop();
            }
            upper.push(q);
        }
    }
    s.pts.clear();
    let (mut i, mut j) = (0, 0);
    while i < lower.len() || j < upper.len() {
        let q = if j == upper.len() || (i < lower.len() && lower[i] <= upper[j]) {
            i += 1;
            lower[i - 1]
        } else {
            j += 1;
            upper[j - 1]
        };
        if s.pts.last() != Some(&q) {
            s.pts.push(q);
        }
    }
    chain_hull_pts(&s.pts, &mut s.st);
    Ok(s.st.iter().copied().unzip())
}

/// Cross product of the last two stack points and `q` (> 0: left turn).
#[inline(always)]
fn turn(st: &[(i64, i64)], q: (i64, i64)) -> i64 {
    let (o, a) = (st[st.len() - 2], st[st.len() - 1]);
    cross(o.0, o.1, a.0, a.1, q.0, q.1)
}

/// `pair_hull_with` on fresh buffers.
pub fn pair_hull(cx: &[Cell], cy: &[Cell]) -> Result<Poly, NoHull> {
    pair_hull_with(cx, cy, &mut HullScratch::default())
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

    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut s = seed;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    }

    /// The reference's way: every (x, min) and (x, max) point through the chain.
    fn full_chain(cx: &[Cell], cy: &[Cell]) -> Poly {
        let mut pts = Vec::new();
        for i in 0..cx.len() {
            let ((a, b), (c, d)) = (unpack(cx[i]), unpack(cy[i]));
            for x in [a, b] {
                pts.push((x, c));
                pts.push((x, d));
            }
        }
        let mut lo = std::collections::BTreeMap::new();
        for (x, y) in pts {
            let e = lo.entry(x).or_insert((y, y));
            *e = (e.0.min(y), e.1.max(y));
        }
        let mut p = Vec::new();
        for (x, (a, b)) in lo {
            p.push((x, a));
            if a != b {
                p.push((x, b));
            }
        }
        let mut st = Vec::new();
        chain_hull_pts(&p, &mut st);
        st.into_iter().unzip()
    }

    #[test]
    fn hull_candidates_give_the_full_chain() {
        let mut r = xorshift(7);
        for case in 0..300 {
            let n = 1 + (r() % 200) as usize;
            let span = [1, 2, 3, 50, 65_000][case % 5];
            let cell = |r: &mut dyn FnMut() -> u64| {
                let lo = (r() % span) as i64;
                pack(lo, (lo + (r() % 3) as i64).min(QMAX))
            };
            let cx: Vec<Cell> = (0..n).map(|_| cell(&mut r)).collect();
            let cy: Vec<Cell> = (0..n).map(|_| cell(&mut r)).collect();
            assert_eq!(pair_hull(&cx, &cy).unwrap(), full_chain(&cx, &cy), "case {case}");
        }
    }

    #[test]
    fn table_cells_equal_computed_cells() {
        let mut r = xorshift(11);
        let raw: Vec<i64> = (0..5000).map(|_| (r() % 3000) as i64 - 1500).collect();
        let words: Vec<i64> = raw.iter().flat_map(|&u| [u, 0]).collect();
        let small: Vec<i32> = raw.iter().map(|&u| u as i32).collect();
        let mask: Vec<u8> = (0..5000).map(|_| (r() % 5 != 0) as u8).collect();
        for values in [Values::I64(&raw), Values::I32(&small), Values::Dec(&words, 100.0)] {
            for valid in [Validity::All, Validity::Bytes(&mask)] {
                for ulps in [0, 1, 2] {
                    let s = crate::column::summarize(&values, &valid, ulps).unwrap();
                    let g = s.grid.unwrap();
                    let mut direct = Vec::new();
                    visit(
                        &values,
                        &valid,
                        Cells {
                            ulps,
                            g,
                            out: &mut direct,
                        },
                    );
                    assert_eq!(column_cells(&values, &valid, ulps, g), direct);
                }
            }
        }
    }

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
        let y = [pack(1, 1), pack(2, 2)];
        assert_eq!(pair_hull(&[NULL, NULL], &y), Err(NoHull::NoValidRow));
        assert_eq!(pair_hull(&[NONFINITE, pack(5, 5)], &y), Err(NoHull::NonFinite));
        assert_eq!(
            pair_hull(&[NULL, pack(5, 5)], &[NONFINITE, NULL]),
            Err(NoHull::NoValidRow)
        );
        let top = pack(QMAX, QMAX);
        assert_eq!(pair_hull(&[top], &[top]).unwrap(), (vec![QMAX], vec![QMAX]));
        let (x, y) = pair_hull(&[pack(10, 11), pack(20, 20)], &[pack(5, 6), pack(7, 7)]).unwrap();
        assert_eq!((x, y), (vec![10, 11, 20, 10], vec![5, 5, 7, 6]));
    }

    #[test]
    fn cells_are_outward() {
        let v = [0.25, 1.0, 3.0, f64::NAN];
        let g = crate::column::make_grid(0.25, 3.0).unwrap().unwrap();
        let c = column_cells(&Values::F64(&v), &Validity::All, 0, g);
        for i in 0..3 {
            let (lo, hi) = unpack(c[i]);
            assert!(g.value(lo) <= v[i] && g.value(hi) >= v[i]);
        }
        assert_eq!(c[3], NONFINITE);
        let (lo, hi) = unpack(column_cells(&Values::F64(&v), &Validity::All, 1, g)[1]);
        assert!(g.value(lo) < 1.0 && g.value(hi) > 1.0);
    }
}
