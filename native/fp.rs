//! Float helpers with the exact semantics of the Python reference:
//! `np.nextafter`, C/Python `ldexp` (correctly rounded, as glibc's scalbn)
//! and the exponent of Python's `math.frexp`.

/// One float64 step from `x` toward +inf (`up`) or -inf, as `np.nextafter`.
#[inline]
pub fn next_toward(x: f64, up: bool) -> f64 {
    if x.is_nan() {
        return x;
    }
    if up {
        if x == f64::INFINITY {
            return x;
        }
        if x == 0.0 {
            return f64::from_bits(1);
        }
        let b = x.to_bits();
        f64::from_bits(if x > 0.0 { b + 1 } else { b - 1 })
    } else {
        if x == f64::NEG_INFINITY {
            return x;
        }
        if x == 0.0 {
            return -f64::from_bits(1);
        }
        let b = x.to_bits();
        f64::from_bits(if x > 0.0 { b - 1 } else { b + 1 })
    }
}

/// `x` moved `ulps` float64 steps toward +inf (`up`) or -inf (`_nudge` in hull.py).
#[inline]
pub fn nudge(mut x: f64, ulps: u32, up: bool) -> f64 {
    for _ in 0..ulps {
        x = next_toward(x, up);
    }
    x
}

/// `x * 2**n` with one rounding (musl's scalbn; glibc's ldexp gives the same).
pub fn ldexp(x: f64, n: i32) -> f64 {
    let mut y = x;
    let mut n = n;
    if n > 1023 {
        y *= f64::from_bits(0x7fe0_0000_0000_0000); // 2**1023
        n -= 1023;
        if n > 1023 {
            y *= f64::from_bits(0x7fe0_0000_0000_0000);
            n -= 1023;
            if n > 1023 {
                n = 1023;
            }
        }
    } else if n < -1022 {
        // 2**-1022 * 2**53: keeps the final step below -53 (no double rounding)
        let s = f64::from_bits(0x0010_0000_0000_0000) * f64::from_bits(0x4340_0000_0000_0000);
        y *= s;
        n += 1022 - 53;
        if n < -1022 {
            y *= s;
            n += 1022 - 53;
            if n < -1022 {
                n = -1022;
            }
        }
    }
    y * f64::from_bits(((0x3ff + n as i64) as u64) << 52)
}

/// Exponent `E` of Python's `math.frexp(x)` (x = f * 2**E, 0.5 <= |f| < 1); x finite, nonzero.
pub fn frexp_exp(x: f64) -> i32 {
    let b = x.to_bits();
    let biased = ((b >> 52) & 0x7ff) as i32;
    if biased != 0 {
        return biased - 1022;
    }
    let m = b & ((1u64 << 52) - 1);
    let p = 63 - m.leading_zeros() as i32; // highest set bit
    p - 1073
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nextafter_edges() {
        assert_eq!(next_toward(0.0, true), f64::from_bits(1));
        assert_eq!(next_toward(-0.0, false), -f64::from_bits(1));
        assert_eq!(next_toward(f64::INFINITY, false), f64::MAX);
        assert_eq!(next_toward(f64::NEG_INFINITY, true), -f64::MAX);
        assert_eq!(next_toward(f64::INFINITY, true), f64::INFINITY);
        assert_eq!(next_toward(1.0, true), 1.0 + f64::EPSILON);
        assert_eq!(nudge(1.0, 2, false), 1.0 - f64::EPSILON);
    }

    #[test]
    fn ldexp_matches_powers() {
        assert_eq!(ldexp(1.0, -1074), f64::from_bits(1));
        assert_eq!(ldexp(1.0, 1023), f64::from_bits(0x7fe0_0000_0000_0000));
        assert_eq!(ldexp(1.0, 1024), f64::INFINITY);
        assert_eq!(ldexp(3.0, -1075), f64::from_bits(2)); // 1.5 ulp rounds to even
        assert_eq!(ldexp(f64::from_bits(1), 1074), 1.0);
        assert_eq!(ldexp(-5.5, 3), -44.0);
        assert_eq!(ldexp(1.0, -2000), 0.0);
    }

    #[test]
    fn frexp_exponents() {
        assert_eq!(frexp_exp(1.0), 1);
        assert_eq!(frexp_exp(0.5), 0);
        assert_eq!(frexp_exp(-3.0), 2);
        assert_eq!(frexp_exp(f64::from_bits(1)), -1073);
        assert_eq!(frexp_exp(f64::MAX), 1024);
    }
}
