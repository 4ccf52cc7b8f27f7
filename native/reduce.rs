//! Outward reduction of an integer convex polygon to at most k vertices
//! (port of reduce.py; same candidate order, tie breaks and float steps).

const MAX_PUSH: u32 = 12;

#[inline(always)]
fn cr(ax: i64, ay: i64, bx: i64, by: i64) -> i64 {
    ax * by - ay * bx
}

/// reduce.py `_candidate`: best lattice replacement of edge (a, b): (cost2, cx, cy), cost2 < 0 if none.
#[allow(clippy::too_many_arguments)]
fn candidate(
    x: &[i64],
    y: &[i64],
    pp: usize,
    p: usize,
    a: usize,
    b: usize,
    n: usize,
    nn: usize,
    qmax: i64,
) -> (i64, i64, i64) {
    let d0x = x[a] - x[p];
    let d0y = y[a] - y[p];
    let d2x = x[n] - x[b];
    let d2y = y[n] - y[b];
    let den = cr(d0x, d0y, d2x, d2y);
    if den <= 0 {
        return (-1, 0, 0);
    }
    let t = cr(x[b] - x[a], y[b] - y[a], d2x, d2y) as f64 / den as f64;
    let wx = x[a] as f64 + d0x as f64 * t;
    let wy = y[a] as f64 + d0y as f64 * t;
    let l0 = (d0x as f64).hypot(d0y as f64);
    let l2 = (d2x as f64).hypot(d2y as f64);
    let mut ux = d0x as f64 / l0 - d2x as f64 / l2;
    let mut uy = d0y as f64 / l0 - d2y as f64 / l2;
    let ul = ux.hypot(uy);
    if ul > 0.0 {
        ux /= ul;
        uy /= ul;
    }
    let (mut best, mut bx, mut by) = (-1i64, 0i64, 0i64);
    let lim = qmax as f64 + 2.0;
    for r in 0..MAX_PUSH {
        let push = if r == 0 { 0.0 } else { (1u64 << (r - 1)) as f64 };
        let fx = wx + ux * push;
        let fy = wy + uy * push;
        if !(fx > -2.0 && fy > -2.0 && fx < lim && fy < lim) {
            return (best, bx, by);
        }
        let ix = fx.floor() as i64;
        let iy = fy.floor() as i64;
        for cx in [ix, ix + 1] {
            for cy in [iy, iy + 1] {
                if cx < 0 || cy < 0 || cx > qmax || cy > qmax {
                    continue;
                }
                // outer side (or on) of both extended lines
                if cr(d0x, d0y, cx - x[a], cy - y[a]) > 0 || cr(d2x, d2y, cx - x[b], cy - y[b]) > 0 {
                    continue;
                }
                // strict convexity at p, c, n
                if cr(x[p] - x[pp], y[p] - y[pp], cx - x[p], cy - y[p]) <= 0
                    || cr(cx - x[p], cy - y[p], x[n] - cx, y[n] - cy) <= 0
                    || cr(x[n] - cx, y[n] - cy, x[nn] - x[n], y[nn] - y[n]) <= 0
                {
                    continue;
                }
                // a and b left of (or on) the two new edges
                if cr(cx - x[p], cy - y[p], x[a] - x[p], y[a] - y[p]) < 0
                    || cr(cx - x[p], cy - y[p], x[b] - x[p], y[b] - y[p]) < 0
                    || cr(x[n] - cx, y[n] - cy, x[a] - cx, y[a] - cy) < 0
                    || cr(x[n] - cx, y[n] - cy, x[b] - cx, y[b] - cy) < 0
                {
                    continue;
                }
                // added area: pentagon p, c, n, b, a
                let s = cr(x[p], y[p], cx, cy)
                    + cr(cx, cy, x[n], y[n])
                    + cr(x[n], y[n], x[b], y[b])
                    + cr(x[b], y[b], x[a], y[a])
                    + cr(x[a], y[a], x[p], y[p]);
                let cost = s.abs();
                if best < 0 || cost < best {
                    best = cost;
                    bx = cx;
                    by = cy;
                }
            }
        }
        if best >= 0 {
            return (best, bx, by);
        }
    }
    (best, bx, by)
}

/// reduce.py `reduce_outward`: a strictly convex CCW polygon reduced to <= k (>= 3)
/// vertices, outward; None when no further edge can be removed.
pub fn reduce_outward(hx: &[i64], hy: &[i64], k: usize, qmax: i64) -> Option<(Vec<i64>, Vec<i64>)> {
    let mut h = hx.len();
    let mut x = hx.to_vec();
    let mut y = hy.to_vec();
    if h <= k {
        return Some((x, y));
    }
    let size = h;
    let mut nxt: Vec<usize> = (0..size).map(|i| (i + 1) % size).collect();
    let mut prv: Vec<usize> = (0..size).map(|i| (i + size - 1) % size).collect();
    let mut alive = vec![true; size];
    let mut cost = vec![0i64; size];
    let mut cx = vec![0i64; size];
    let mut cy = vec![0i64; size];
    for a in 0..size {
        let b = nxt[a];
        let (c, u, v) = candidate(&x, &y, prv[prv[a]], prv[a], a, b, nxt[b], nxt[nxt[b]], qmax);
        cost[a] = c;
        cx[a] = u;
        cy[a] = v;
    }
    let mut start = 0usize;
    while h > k {
        let mut best = -1i64;
        let mut bi = usize::MAX;
        for i in 0..size {
            if alive[i] && cost[i] >= 0 && (best < 0 || cost[i] < best) {
                best = cost[i];
                bi = i;
            }
        }
        if bi == usize::MAX {
            return None;
        }
        let a = bi;
        let b = nxt[a];
        x[a] = cx[a];
        y[a] = cy[a];
        alive[b] = false;
        let nb = nxt[b];
        nxt[a] = nb;
        prv[nb] = a;
        if start == b {
            start = a;
        }
        h -= 1;
        if h <= 3 {
            break;
        }
        let mut e = prv[prv[prv[a]]];
        for _ in 0..6 {
            let f = nxt[e];
            let (c, u, v) = candidate(&x, &y, prv[prv[e]], prv[e], e, f, nxt[f], nxt[nxt[f]], qmax);
            cost[e] = c;
            cx[e] = u;
            cy[e] = v;
            e = nxt[e];
        }
    }
    let mut first = start;
    let mut i = start;
    for _ in 0..h {
        if x[i] < x[first] || (x[i] == x[first] && y[i] < y[first]) {
            first = i;
        }
        i = nxt[i];
    }
    let mut rx = Vec::with_capacity(h);
    let mut ry = Vec::with_capacity(h);
    i = first;
    for _ in 0..h {
        rx.push(x[i]);
        ry.push(y[i]);
        i = nxt[i];
    }
    if h <= k {
        Some((rx, ry))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hull::{area2, hull_of_points};

    #[test]
    fn octagon_to_square_contains_it() {
        let px = [2, 4, 6, 6, 4, 2, 0, 0];
        let py = [0, 0, 2, 4, 6, 6, 4, 2];
        let (hx, hy) = hull_of_points(&px, &py);
        assert_eq!(hx.len(), 8);
        let (rx, ry) = reduce_outward(&hx, &hy, 4, 100).unwrap();
        assert!(rx.len() <= 4);
        assert!(area2(&rx, &ry) >= area2(&hx, &hy));
        // every original vertex is inside (left of or on every edge)
        for i in 0..rx.len() {
            let j = (i + 1) % rx.len();
            for v in 0..hx.len() {
                let c = (rx[j] - rx[i]) * (hy[v] - ry[i]) - (ry[j] - ry[i]) * (hx[v] - rx[i]);
                assert!(c >= 0);
            }
        }
    }

    #[test]
    fn stuck_at_lattice_border() {
        // a square filling the whole lattice cannot lose a vertex... it has 4 <= k
        let (hx, hy) = hull_of_points(&[0, 3, 3, 0, 1], &[0, 0, 3, 3, 0]);
        assert_eq!(reduce_outward(&hx, &hy, 4, 3).unwrap().0.len(), 4);
        // an octagon touching every border of a tiny lattice cannot become a triangle
        let (hx, hy) = hull_of_points(&[1, 2, 3, 3, 2, 1, 0, 0], &[0, 0, 1, 2, 3, 3, 2, 1]);
        assert!(reduce_outward(&hx, &hy, 3, 3).is_none());
    }
}
