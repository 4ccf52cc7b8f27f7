//! The pair polygon (port of polygon.py and polygon_codec.py's encoder):
//! fine hull -> per lattice width an outward k-gon -> least exact area -> record bytes.

use crate::column::{summarize, Grid, Overflow, Summary, Validity, Values, FINE_BITS, QMAX};
use crate::hull::{area2, coarsen, column_cells_into, pair_hull_with, Cell, HullScratch};
use crate::reduce::reduce_outward;

pub const MAX_VERTICES: usize = 31;
pub const BITS_CHOICES: [u32; 7] = [16, 14, 12, 10, 8, 6, 4];
pub const DEFAULT_BITS_CHOICES: [u32; 5] = [16, 14, 12, 10, 8];
/// Largest record: 1 + ceil(2 * 31 * 16 / 8) bytes.
pub const MAX_RECORD: usize = 1 + 2 * MAX_VERTICES * 2;

/// Why no record could be built where the Python reference raises.
#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// grid.make_grid overflowed (Python: OverflowError)
    Overflow,
    /// encode_record refused the polygon (Python: MetadataError)
    Encode,
}

impl From<Overflow> for Error {
    fn from(_: Overflow) -> Self {
        Error::Overflow
    }
}

/// polygon_codec `max_vertices`.
pub fn max_vertices(hull_bytes: u32, bits: u32) -> usize {
    let v = (hull_bytes.saturating_sub(1) as usize * 8) / (2 * bits as usize);
    v.min(MAX_VERTICES)
}

/// polygon_codec `encode_record`: header `(code << 5) | k`, coordinates MSB first.
pub fn encode_record(cx: &[i64], cy: &[i64], bits: u32) -> Result<Vec<u8>, Error> {
    let k = cx.len();
    if !BITS_CHOICES.contains(&bits) || !(1..=MAX_VERTICES).contains(&k) {
        return Err(Error::Encode);
    }
    let code = (FINE_BITS - bits) / 2;
    let nbytes = (2 * k * bits as usize).div_ceil(8);
    let mut out = vec![0u8; 1 + nbytes];
    out[0] = ((code << 5) as u8) | k as u8;
    let mut pos = 0usize; // bit position in out[1..]
    for i in 0..k {
        for c in [cx[i], cy[i]] {
            if c < 0 || c >= 1 << bits {
                return Err(Error::Encode);
            }
            for j in (0..bits).rev() {
                if (c >> j) & 1 != 0 {
                    out[1 + pos / 8] |= 0x80 >> (pos % 8);
                }
                pos += 1;
            }
        }
    }
    Ok(out)
}

/// polygon.py `polygon_from_hull`: least-area outward polygon record within `hull_bytes`.
pub fn polygon_from_hull(
    hx: &[i64],
    hy: &[i64],
    hull_bytes: u32,
    bits_choices: &[u32],
) -> Result<Option<Vec<u8>>, Error> {
    let mut best: Option<(u32, Vec<i64>, Vec<i64>, i64)> = None;
    for &bits in bits_choices {
        let k = max_vertices(hull_bytes, bits);
        if k < 1 {
            continue;
        }
        let shift = FINE_BITS - bits;
        let (mut lx, mut ly) = if shift != 0 {
            coarsen(hx, hy, shift)
        } else {
            (hx.to_vec(), hy.to_vec())
        };
        if lx.len() > k {
            if k < 3 {
                continue;
            }
            match reduce_outward(&lx, &ly, k, QMAX >> shift) {
                Some((rx, ry)) => (lx, ly) = (rx, ry),
                None => continue,
            }
        }
        let score = area2(&lx, &ly) << (2 * shift);
        if best.as_ref().is_none_or(|b| score < b.3) {
            best = Some((bits, lx, ly, score));
        }
    }
    if let Some((bits, lx, ly, _)) = best {
        return encode_record(&lx, &ly, bits).map(Some);
    }
    for bits in BITS_CHOICES {
        if max_vertices(hull_bytes, bits) >= 4 {
            let shift = FINE_BITS - bits;
            let (x0, x1) = (*hx.iter().min().unwrap(), *hx.iter().max().unwrap());
            let (y0, y1) = (*hy.iter().min().unwrap(), *hy.iter().max().unwrap());
            // all four corners (two would give the diagonal only)
            let (bx, by) = coarsen(&[x0, x1, x1, x0], &[y0, y0, y1, y1], shift);
            return encode_record(&bx, &by, bits).map(Some);
        }
    }
    Ok(None)
}

/// One column of a pair: values, validity and outward widening (float64 steps).
pub struct Column<'a> {
    pub values: Values<'a>,
    pub valid: Validity<'a>,
    pub ulps: u32,
}

/// Packed cells of a column on its grid (hull::Cell per row).
pub type Cells = Vec<Cell>;

/// Cells of one column into `out` (the writer shares them between the pairs of that column).
pub fn cells_into(col: &Column, grid: Grid, out: &mut Cells) {
    column_cells_into(&col.values, &col.valid, col.ulps, grid, out)
}

/// Cells of one column.
pub fn cells(col: &Column, grid: Grid) -> Cells {
    let mut out = Vec::new();
    cells_into(col, grid, &mut out);
    out
}

/// Record of a pair from its columns' cells (None = absent), as the writer builds it.
pub fn record_from_cells(
    cx: &[Cell],
    cy: &[Cell],
    hull_bytes: u32,
    bits_choices: &[u32],
) -> Result<Option<Vec<u8>>, Error> {
    record_from_cells_with(cx, cy, hull_bytes, bits_choices, &mut HullScratch::default())
}

/// `record_from_cells` with reusable buffers.
pub fn record_from_cells_with(
    cx: &[Cell],
    cy: &[Cell],
    hull_bytes: u32,
    bits_choices: &[u32],
    scratch: &mut HullScratch,
) -> Result<Option<Vec<u8>>, Error> {
    match pair_hull_with(cx, cy, scratch) {
        Ok((hx, hy)) => polygon_from_hull(&hx, &hy, hull_bytes, bits_choices),
        Err(_) => Ok(None),
    }
}

/// Result of `pair_polygon` (polygon.py `PairPolygon`).
#[derive(Debug, PartialEq)]
pub struct PairPolygon {
    pub record: Option<Vec<u8>>,
    pub x: Summary,
    pub y: Summary,
}

/// polygon.py `pair_polygon`: summaries (unless given) then the record.
pub fn pair_polygon(
    x: &Column,
    y: &Column,
    hull_bytes: u32,
    bits_choices: &[u32],
    x_given: Option<Summary>,
    y_given: Option<Summary>,
) -> Result<PairPolygon, Error> {
    let xs = match x_given {
        Some(s) => s,
        None => summarize(&x.values, &x.valid, x.ulps)?,
    };
    let ys = match y_given {
        Some(s) => s,
        None => summarize(&y.values, &y.valid, y.ulps)?,
    };
    let (gx, gy) = match (xs.grid, ys.grid) {
        (Some(gx), Some(gy)) => (gx, gy),
        _ => {
            return Ok(PairPolygon {
                record: None,
                x: xs,
                y: ys,
            })
        }
    };
    let record = record_from_cells(&cells(x, gx), &cells(y, gy), hull_bytes, bits_choices)?;
    Ok(PairPolygon { record, x: xs, y: ys })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_layout() {
        // k = 2 at 16 bits: header 0x02, then x0 y0 x1 y1 big-endian
        let r = encode_record(&[1, 0xABCD], &[2, 3], 16).unwrap();
        assert_eq!(r, vec![0x02, 0, 1, 0, 2, 0xAB, 0xCD, 0, 3]);
        // k = 1 at 10 bits (code 3): 20 bits -> 3 bytes, zero padded
        let r = encode_record(&[0x3FF], &[1], 10).unwrap();
        assert_eq!(r, vec![(3 << 5) | 1, 0xFF, 0xC0, 0x10]);
        assert_eq!(encode_record(&[1 << 14], &[0], 14), Err(Error::Encode));
        assert_eq!(max_vertices(45, 16), 11);
        assert_eq!(max_vertices(45, 8), 22);
        assert_eq!(max_vertices(255, 4), 31);
        assert_eq!(max_vertices(1, 16), 0);
    }

    fn f64_col(v: &[f64]) -> Column<'_> {
        Column {
            values: Values::F64(v),
            valid: Validity::All,
            ulps: 0,
        }
    }

    #[test]
    fn disk_fits_budget_and_contains_points() {
        let n = 2000;
        let xs: Vec<f64> = (0..n)
            .map(|i| (i as f64 * 0.7).cos() * (i as f64 / n as f64))
            .collect();
        let ys: Vec<f64> = (0..n)
            .map(|i| (i as f64 * 0.7).sin() * (i as f64 / n as f64))
            .collect();
        let p = pair_polygon(
            &f64_col(&xs),
            &f64_col(&ys),
            45,
            &DEFAULT_BITS_CHOICES,
            None,
            None,
        )
        .unwrap();
        let rec = p.record.unwrap();
        assert!(rec.len() <= 45 && (rec[0] & 31) >= 3);
    }

    #[test]
    fn absent_records() {
        let nan = [1.0, f64::NAN];
        let ok = [1.0, 2.0];
        let p = pair_polygon(
            &f64_col(&nan),
            &f64_col(&ok),
            45,
            &DEFAULT_BITS_CHOICES,
            None,
            None,
        )
        .unwrap();
        assert!(p.record.is_none());
        let inf = [1.0, f64::INFINITY];
        let p = pair_polygon(
            &f64_col(&inf),
            &f64_col(&ok),
            45,
            &DEFAULT_BITS_CHOICES,
            None,
            None,
        )
        .unwrap();
        assert!(p.record.is_none() && p.x.grid.is_none());
        let none = [0u8, 0];
        let c = Column {
            values: Values::F64(&ok),
            valid: Validity::Bytes(&none),
            ulps: 0,
        };
        let p = pair_polygon(&c, &c, 45, &DEFAULT_BITS_CHOICES, None, None).unwrap();
        assert!(p.record.is_none() && p.x.nulls == 2);
        // a single point: one vertex
        let one = [3.0];
        let p = pair_polygon(
            &f64_col(&one),
            &f64_col(&one),
            45,
            &DEFAULT_BITS_CHOICES,
            None,
            None,
        )
        .unwrap();
        assert!(p.record.is_some());
        // budget too small for anything
        let p = pair_polygon(&f64_col(&ok), &f64_col(&ok), 1, &DEFAULT_BITS_CHOICES, None, None).unwrap();
        assert!(p.record.is_none());
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    extern "C" {
        fn clock_gettime(clk: i32, ts: *mut [i64; 2]) -> i32;
    }

    /// Thread CPU time (the machine is shared: wall time is noise).
    struct Instant(f64);
    impl Instant {
        fn now() -> Self {
            let mut ts = [0i64; 2];
            unsafe { clock_gettime(3, &mut ts) };
            Instant(ts[0] as f64 + ts[1] as f64 * 1e-9)
        }
        fn elapsed(&self) -> std::time::Duration {
            std::time::Duration::from_secs_f64(Instant::now().0 - self.0)
        }
    }

    /// Stage timings on TPC-H-like columns: `cargo test --release -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn stage_timings() {
        let n = 122_880usize;
        let mut s = 12345u64;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let price: Vec<i64> = (0..n)
            .flat_map(|_| [(rnd() % 10_000_000) as i64 + 90_000, 0])
            .collect();
        let disc: Vec<i64> = (0..n).flat_map(|_| [(rnd() % 11) as i64, 0]).collect();
        let ship: Vec<i32> = (0..n).map(|_| 8000 + (rnd() % 2500) as i32).collect();
        let rec: Vec<i32> = ship.iter().map(|&d| d + 1 + (rnd() % 30) as i32).collect();
        let cols = [
            Column {
                values: Values::Dec(&price, 100.0),
                valid: Validity::All,
                ulps: 1,
            },
            Column {
                values: Values::Dec(&disc, 100.0),
                valid: Validity::All,
                ulps: 1,
            },
            Column {
                values: Values::I32(&ship),
                valid: Validity::All,
                ulps: 0,
            },
            Column {
                values: Values::I32(&rec),
                valid: Validity::All,
                ulps: 0,
            },
        ];
        for _ in 0..5 {
            let t = Instant::now();
            let sums: Vec<Summary> = cols
                .iter()
                .map(|c| summarize(&c.values, &c.valid, c.ulps).unwrap())
                .collect();
            let t1 = t.elapsed();
            let t = Instant::now();
            let cl: Vec<Cells> = cols
                .iter()
                .zip(&sums)
                .map(|(c, s)| cells(c, s.grid.unwrap()))
                .collect();
            let t2 = t.elapsed();
            let per: Vec<String> = cols
                .iter()
                .zip(&sums)
                .map(|(c, s)| {
                    let t = Instant::now();
                    cells(c, s.grid.unwrap());
                    format!("{:?}", t.elapsed())
                })
                .collect();
            println!("cells per column {per:?}");
            let t = Instant::now();
            let mut scratch = HullScratch::default();
            let h1 = pair_hull_with(&cl[0], &cl[1], &mut scratch).unwrap();
            let h2 = pair_hull_with(&cl[2], &cl[3], &mut scratch).unwrap();
            let t3 = t.elapsed();
            let t = Instant::now();
            polygon_from_hull(&h1.0, &h1.1, 45, &DEFAULT_BITS_CHOICES).unwrap();
            polygon_from_hull(&h2.0, &h2.1, 45, &DEFAULT_BITS_CHOICES).unwrap();
            let t4 = t.elapsed();
            println!(
                "4 cols: stats {t1:?}, cells {t2:?}; 2 pairs: hull {t3:?} ({} + {} vertices), polygons {t4:?}",
                h1.0.len(),
                h2.0.len()
            );
        }
    }
}
