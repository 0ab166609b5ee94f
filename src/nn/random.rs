//! The randomness of stochastic models (noise injection, LWTA), counter-based: element `i` of
//! a draw with key `k` is a function of `(k, i)` only (the SplitMix64 sequence started at
//! `k`), so a draw is the same whatever the number of threads that fill it, and a custom op
//! can recompute in its backward pass the noise it used forward.

use candle_core::{Device, Result, Shape, Tensor};
use rayon::prelude::*;

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function.
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `i`-th 64 random bits of the stream `key`.
#[inline]
pub(crate) fn bits(key: u64, i: u64) -> u64 {
    mix(key.wrapping_add(i.wrapping_add(1).wrapping_mul(GAMMA)))
}

/// A uniform number in the open interval (0, 1) from 23 bits: (k + ½)/2²³, whose largest
/// value 1 − 2⁻²⁴ is still below 1 in f32 (with 24 bits it would round to 1, and a Gumbel
/// number to infinity).
#[inline]
fn open01(b: u64) -> f32 {
    ((b & 0x7F_FFFF) as f32 + 0.5) * (1.0 / 8_388_608.0)
}

/// The natural logarithm of a positive normal f32, branch-free so that loops over it
/// vectorise (libm's `logf` was the largest cost of an LWTA layer): `x = m·2^e` with m in
/// [√½, √2], `ln m = 2·atanh(t)`, `t = (m − 1)/(m + 1)`, by its series to t⁹ (error below
/// 1e-9, under f32's rounding).
#[inline]
pub(crate) fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xFF) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007F_FFFF) | 0x3F80_0000);
    let big = m > std::f32::consts::SQRT_2;
    m = if big { m * 0.5 } else { m };
    e += i32::from(big);
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let series = 1.0 + t2 * (1.0 / 3.0 + t2 * (1.0 / 5.0 + t2 * (1.0 / 7.0 + t2 * (1.0 / 9.0))));
    e as f32 * std::f32::consts::LN_2 + 2.0 * t * series
}

/// The `i`-th standard Gumbel number of stream `key`: `−ln(−ln u)`.
#[inline]
pub(crate) fn gumbel(key: u64, i: u64) -> f32 {
    -ln(-ln(open01(bits(key, i) >> 40)))
}

/// `out[k] = x[k] + gumbel(key, first + k)`: the noisy scores of an LWTA block.
#[inline(always)]
fn gumbel_add_generic(out: &mut [f32], x: &[f32], key: u64, first: u64) {
    for (k, (o, &h)) in out.iter_mut().zip(x).enumerate() {
        *o = h + gumbel(key, first + k as u64);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl")]
unsafe fn gumbel_add_avx512(out: &mut [f32], x: &[f32], key: u64, first: u64) {
    gumbel_add_generic(out, x, key, first)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gumbel_add_avx2(out: &mut [f32], x: &[f32], key: u64, first: u64) {
    gumbel_add_generic(out, x, key, first)
}

/// `out[k] = x[k] + gumbel(key, first + k)`, vectorised for the CPU at hand (the same
/// numbers on every path: no fused multiply-adds are formed).
pub(crate) fn gumbel_add(out: &mut [f32], x: &[f32], key: u64, first: u64) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx512() {
            // SAFETY: the features were detected on this CPU.
            return unsafe { gumbel_add_avx512(out, x, key, first) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: the feature was detected on this CPU.
            return unsafe { gumbel_add_avx2(out, x, key, first) };
        }
    }
    gumbel_add_generic(out, x, key, first)
}

/// `out[k] = t[k] + scale·normal_at(key, first + k)` (`t` = 0 when absent).
#[inline(always)]
fn noise_add_generic(out: &mut [f32], t: Option<&[f32]>, scale: f32, key: u64, first: u64) {
    match t {
        Some(t) => {
            for (k, (o, &v)) in out.iter_mut().zip(t).enumerate() {
                *o = v + scale * normal_at(key, first + k as u64);
            }
        }
        None => {
            for (k, o) in out.iter_mut().enumerate() {
                *o = scale * normal_at(key, first + k as u64);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl")]
unsafe fn noise_add_avx512(out: &mut [f32], t: Option<&[f32]>, scale: f32, key: u64, first: u64) {
    noise_add_generic(out, t, scale, key, first)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn noise_add_avx2(out: &mut [f32], t: Option<&[f32]>, scale: f32, key: u64, first: u64) {
    noise_add_generic(out, t, scale, key, first)
}

/// `out[k] = t[k] + scale·normal_at(key, first + k)`, vectorised for the CPU at hand.
pub(crate) fn noise_add(out: &mut [f32], t: Option<&[f32]>, scale: f32, key: u64, first: u64) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx512() {
            // SAFETY: the features were detected on this CPU.
            return unsafe { noise_add_avx512(out, t, scale, key, first) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: the feature was detected on this CPU.
            return unsafe { noise_add_avx2(out, t, scale, key, first) };
        }
    }
    noise_add_generic(out, t, scale, key, first)
}

#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq") && is_x86_feature_detected!("avx512vl")
}

/// Stream `n` derived from `key` (one per layer of a forward pass).
#[inline]
pub(crate) fn substream(key: u64, n: u64) -> u64 {
    mix(key ^ mix(n.wrapping_add(GAMMA)))
}

/// `cos(2πu)` for u in (0, 1), by its Taylor series on (−π, π) to x¹⁸ (error about 1e-7),
/// branch-free so that loops over it vectorise.
#[inline(always)]
fn cos_2pi(u: f32) -> f32 {
    // (−1)^k/(2k)!, k = 0..9
    const A: [f32; 10] = [
        1.0,
        -1.0 / 2.0,
        1.0 / 24.0,
        -1.0 / 720.0,
        1.0 / 40_320.0,
        -1.0 / 3_628_800.0,
        1.0 / 479_001_600.0,
        -1.0 / 87_178_291_200.0,
        1.0 / 20_922_789_888_000.0,
        -1.0 / 6_402_373_705_728_000.0,
    ];
    // cos(2πu) = −cos(2π(u − ½)), with 2π(u − ½) in (−π, π)
    let x = std::f32::consts::TAU * (u - 0.5);
    let y = x * x;
    let mut c = A[9];
    for a in A[..9].iter().rev() {
        c = a + y * c;
    }
    -c
}

/// The `i`-th standard normal number of stream `key` (Box–Muller, one number per draw).
#[inline(always)]
pub(crate) fn normal_at(key: u64, i: u64) -> f32 {
    let b = bits(key, i);
    let (u1, u2) = (open01(b >> 40), open01(b >> 8));
    (-2.0 * ln(u1)).sqrt() * cos_2pi(u2)
}

/// `n` standard normal numbers of stream `key`, element `i` being `normal_at(key, i)`.
pub(crate) fn normal_vec(n: usize, key: u64) -> Vec<f32> {
    let mut out = vec![0f32; n];
    out.par_chunks_mut(1 << 14).enumerate().for_each(|(c, chunk)| {
        noise_add(chunk, None, 1.0, key, (c * (1 << 14)) as u64);
    });
    out
}

/// A standard normal tensor of `shape` from stream `key`.
pub(crate) fn normal(shape: &Shape, key: u64, device: &Device) -> Result<Tensor> {
    Tensor::from_vec(normal_vec(shape.elem_count(), key), shape, device)
}

/// `n` standard Gumbel numbers of stream `key`, element `i` being `gumbel(key, i)`.
pub(crate) fn gumbel_vec(n: usize, key: u64) -> Vec<f32> {
    let mut out = vec![0f32; n];
    let zeros = vec![0f32; 1 << 14];
    out.par_chunks_mut(1 << 14).enumerate().for_each(|(c, chunk)| {
        gumbel_add(chunk, &zeros[..chunk.len()], key, (c * (1 << 14)) as u64);
    });
    out
}

/// `n` uniform numbers in (0, 1) of stream `key`.
pub(crate) fn uniform_vec(n: usize, key: u64) -> Vec<f32> {
    (0..n as u64).map(|i| open01(bits(key, i) >> 40)).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn fast_ln_matches_libm() {
        let mut worst = 0f32;
        for k in 1..200_000u32 {
            // from 1e-8 to 20, and every uniform draw's range
            let x = 1e-8f32 * 1.000_11f32.powi(k as i32);
            let (a, b) = (super::ln(x), x.ln());
            worst = worst.max((a - b).abs() / b.abs().max(1.0));
        }
        assert!(worst < 1e-6, "fast ln error {worst}");
        assert_eq!(super::ln(1.0), 0.0);
    }

    #[test]
    fn normals_have_mean_0_and_variance_1() {
        let z = super::normal_vec(200_000, 5);
        let n = z.len() as f64;
        let mean = z.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = z.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
        let kurt = z.iter().map(|&v| (f64::from(v) - mean).powi(4)).sum::<f64>() / n / (var * var);
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.01,
            "mean {mean}, variance {var}"
        );
        assert!((kurt - 3.0).abs() < 0.05, "kurtosis {kurt}");
        let tail = z.iter().filter(|v| v.abs() > 1.96).count() as f64 / n;
        assert!((tail - 0.05).abs() < 0.003, "P(|z| > 1.96) = {tail}");
        for u in [0.01f32, 0.25, 0.4, 0.5, 0.77, 0.999] {
            let want = (std::f32::consts::TAU * u).cos();
            assert!((super::cos_2pi(u) - want).abs() < 1e-6, "cos(2π·{u})");
        }
    }

    #[test]
    fn uniforms_stay_below_one() {
        // the largest 23-bit draw must not round to 1 (its Gumbel number would be infinite)
        assert!(super::open01(u64::MAX) < 1.0);
        assert!(super::gumbel(0, 0).is_finite());
        let g = super::gumbel_vec(100_000, 3);
        let mean = g.iter().map(|&v| f64::from(v)).sum::<f64>() / g.len() as f64;
        // the Gumbel mean is the Euler–Mascheroni constant
        assert!((mean - 0.5772).abs() < 0.01, "gumbel mean {mean}");
    }
}
