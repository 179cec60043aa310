//! A branch-free `exp` that vectorises, for the Sinkhorn inner loop.
//!
//! Each half-iteration takes `n1 · n2` exponentials; libm's scalar `exp` caps a 2-core machine at
//! about one iteration per second at n = 8000. This version — Cody–Waite range reduction
//! `x = k ln2 + r`, a degree-10 Taylor polynomial on `|r| ≤ ln2/2` and `2^k` assembled from
//! bits — has no branches or table look-ups, so LLVM turns a loop over a slice into SIMD.
//! Relative error is below 5e-13 (the polynomial's truncation, `(ln2/2)^11/11!`), far below
//! the 1e-6 on couplings we are checked to; inputs below −708 return a tiny normal value rather
//! than 0, which only ever adds under 1e-307 to a sum ≥ 1.
//!
//! [`MulAdd`] lets the caller choose fused multiply-adds: the AVX2+FMA build of the Sinkhorn
//! kernel uses [`Fused`]; the portable build uses [`Separate`], since `f64::mul_add` without
//! hardware FMA is a slow library call.
//!
//! [`exp_f32_with`] is the same construction in f32 for the f32 Sinkhorn passes
//! (`Precision::F32`): a degree-7 polynomial (truncation `(ln2/2)^8/8! ≈ 5e-9`, below f32's
//! 6e-8 rounding), valid on `[-87, 88]` and clamped outside. [`Real`] gathers what the kernel
//! needs from either float type, so one generic kernel serves both precisions.

const LOG2E: f64 = std::f64::consts::LOG2_E;
const LN2_HI: f64 = 6.931_471_803_691_238e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
/// 1.5 · 2^52: adding it rounds to an integer held in the low mantissa bits.
const SHIFTER: f64 = 6_755_399_441_055_744.0;

/// How `a · b + c` is computed.
pub trait MulAdd {
    fn mul_add(a: f64, b: f64, c: f64) -> f64;
    fn mul_add_f32(a: f32, b: f32, c: f32) -> f32;
}

/// One rounding, through the FMA instruction (only where the CPU has one).
pub struct Fused;
impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    fn mul_add_f32(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

/// A multiply then an add.
pub struct Separate;
impl MulAdd for Separate {
    #[inline(always)]
    fn mul_add(a: f64, b: f64, c: f64) -> f64 {
        a * b + c
    }
    #[inline(always)]
    fn mul_add_f32(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// The float types the Sinkhorn kernel runs in: f64 (the reference) and f32.
pub trait Real:
    Copy
    + Default
    + PartialOrd
    + Send
    + Sync
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Neg<Output = Self>
    + 'static
{
    const ZERO: Self;
    const NEG_INFINITY: Self;
    fn from_f64(v: f64) -> Self;
    fn from_f32(v: f32) -> Self;
    fn to_f64(self) -> f64;
    fn sqrt(self) -> Self;
    /// `self · b + c`.
    fn mul_add_with<M: MulAdd>(self, b: Self, c: Self) -> Self;
    /// The fast, vectorisable `e^self`.
    fn exp_with<M: MulAdd>(self) -> Self;
}

impl Real for f64 {
    const ZERO: f64 = 0.0;
    const NEG_INFINITY: f64 = f64::NEG_INFINITY;
    #[inline(always)]
    fn from_f64(v: f64) -> f64 {
        v
    }
    #[inline(always)]
    fn from_f32(v: f32) -> f64 {
        f64::from(v)
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn sqrt(self) -> f64 {
        f64::sqrt(self)
    }
    #[inline(always)]
    fn mul_add_with<M: MulAdd>(self, b: f64, c: f64) -> f64 {
        M::mul_add(self, b, c)
    }
    #[inline(always)]
    fn exp_with<M: MulAdd>(self) -> f64 {
        exp_with::<M>(self)
    }
}

impl Real for f32 {
    const ZERO: f32 = 0.0;
    const NEG_INFINITY: f32 = f32::NEG_INFINITY;
    #[inline(always)]
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    #[inline(always)]
    fn from_f32(v: f32) -> f32 {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn sqrt(self) -> f32 {
        f32::sqrt(self)
    }
    #[inline(always)]
    fn mul_add_with<M: MulAdd>(self, b: f32, c: f32) -> f32 {
        M::mul_add_f32(self, b, c)
    }
    #[inline(always)]
    fn exp_with<M: MulAdd>(self) -> f32 {
        exp_f32_with::<M>(self)
    }
}

/// `e^x` for `x` in `[-708, 709]` (clamped outside), vectorisable.
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    exp_with::<Separate>(x)
}

/// [`exp`] with the caller's choice of multiply-add.
#[inline(always)]
pub fn exp_with<M: MulAdd>(x: f64) -> f64 {
    // Written as selects (not `clamp`) so it compiles to two blends.
    let x = if x < -708.0 { -708.0 } else { x };
    let x = if x > 709.0 { 709.0 } else { x };
    let shifted = x * LOG2E + SHIFTER;
    let k = shifted - SHIFTER;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let p = poly::<M>(r);
    // The integer k + 2^51 sits in the low bits of `shifted`; adding the exponent bias and
    // shifting into place drops the 2^51 out of the word.
    let scale = f64::from_bits(shifted.to_bits().wrapping_add(1023) << 52);
    p * scale
}

/// `e^x` in f32 for `x` in `[-87, 88]` (clamped outside), vectorisable; relative error below
/// 3e-7 (f32 rounding plus a 5e-9 truncation).
#[inline(always)]
pub fn exp_f32_with<M: MulAdd>(x: f32) -> f32 {
    const LOG2E_F32: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that k · LN2_HI is exact for |k| < 2^9.
    const LN2_HI_F32: f32 = 0.693_359_4;
    const LN2_LO_F32: f32 = -2.121_944_4e-4;
    /// 1.5 · 2^23.
    const SHIFTER_F32: f32 = 12_582_912.0;
    const C: [f32; 8] = [
        1.0,
        1.0,
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5040.0,
    ];
    let x = if x < -87.0 { -87.0 } else { x };
    let x = if x > 88.0 { 88.0 } else { x };
    let shifted = x * LOG2E_F32 + SHIFTER_F32;
    let k = shifted - SHIFTER_F32;
    let r = (x - k * LN2_HI_F32) - k * LN2_LO_F32;
    let mut p = C[7];
    for &c in C[..7].iter().rev() {
        p = M::mul_add_f32(p, r, c);
    }
    let scale = f32::from_bits(shifted.to_bits().wrapping_add(127) << 23);
    p * scale
}

#[inline(always)]
fn poly<M: MulAdd>(r: f64) -> f64 {
    const C: [f64; 11] = [
        1.0,
        1.0,
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5040.0,
        1.0 / 40320.0,
        1.0 / 362880.0,
        1.0 / 3628800.0,
    ];
    let mut p = C[10];
    for &c in C[..10].iter().rev() {
        p = M::mul_add(p, r, c);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_libm_to_5e13_relative() {
        let mut worst: f64 = 0.0;
        let mut x = -700.0;
        while x < 700.0 {
            let rel = (exp(x) - x.exp()).abs() / x.exp();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 5e-13, "worst relative error {worst}");
        let fused = (exp_with::<Fused>(-3.3) - (-3.3f64).exp()).abs() / (-3.3f64).exp();
        assert!(fused < 5e-13);
    }

    #[test]
    fn f32_matches_libm_to_3e7_relative() {
        let mut worst: f64 = 0.0;
        let mut x = -86.0f32;
        while x < 87.0 {
            let exact = f64::from(x).exp();
            for value in [exp_f32_with::<Separate>(x), exp_f32_with::<Fused>(x)] {
                worst = worst.max((f64::from(value) - exact).abs() / exact);
            }
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert!(exp_f32_with::<Separate>(-1e30) >= 0.0);
        assert!(exp_f32_with::<Separate>(f32::NEG_INFINITY) < 1e-37);
        assert!(exp_f32_with::<Separate>(1e30).is_finite());
    }

    #[test]
    fn extremes_stay_finite() {
        assert!(exp(-1e300) >= 0.0 && exp(-1e300) < 1e-300);
        assert!(exp(f64::NEG_INFINITY) < 1e-300);
        assert!(exp(1e300).is_finite());
        assert_eq!(exp(0.0), 1.0);
    }
}
