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

/// A uniform number in the open interval (0, 1) from 24 bits.
#[inline]
fn open01(b: u64) -> f32 {
    ((b & 0xFF_FFFF) as f32 + 0.5) * (1.0 / 16_777_216.0)
}

#[allow(dead_code)] // used by LWTA
/// The `i`-th standard Gumbel number of stream `key`: `−ln(−ln u)`.
#[inline]
pub(crate) fn gumbel(key: u64, i: u64) -> f32 {
    -(-open01(bits(key, i) >> 40).ln()).ln()
}

/// Stream `n` derived from `key` (one per layer of a forward pass).
#[inline]
pub(crate) fn substream(key: u64, n: u64) -> u64 {
    mix(key ^ mix(n.wrapping_add(GAMMA)))
}

/// `n` standard normal numbers of stream `key` (Box–Muller on pairs).
pub(crate) fn normal_vec(n: usize, key: u64) -> Vec<f32> {
    let mut out = vec![0f32; n];
    out.par_chunks_mut(1 << 14).enumerate().for_each(|(c, chunk)| {
        let first = c * (1 << 14); // even: pairs never straddle chunks
        for (k, pair) in chunk.chunks_mut(2).enumerate() {
            let b = bits(key, ((first >> 1) + k) as u64);
            let (u1, u2) = (open01(b >> 40), open01(b >> 16));
            let r = (-2.0 * u1.ln()).sqrt();
            let (s, co) = (std::f32::consts::TAU * u2).sin_cos();
            pair[0] = r * co;
            if pair.len() > 1 {
                pair[1] = r * s;
            }
        }
    });
    out
}

/// A standard normal tensor of `shape` from stream `key`.
pub(crate) fn normal(shape: &Shape, key: u64, device: &Device) -> Result<Tensor> {
    Tensor::from_vec(normal_vec(shape.elem_count(), key), shape, device)
}

#[allow(dead_code)] // used by LWTA
/// `n` standard Gumbel numbers of stream `key`, element `i` being `gumbel(key, i)`.
pub(crate) fn gumbel_vec(n: usize, key: u64) -> Vec<f32> {
    let mut out = vec![0f32; n];
    out.par_chunks_mut(1 << 14).enumerate().for_each(|(c, chunk)| {
        for (k, v) in chunk.iter_mut().enumerate() {
            *v = gumbel(key, (c * (1 << 14) + k) as u64);
        }
    });
    out
}
