//! Barnes-Hut t-SNE (van der Maaten 2014) to 2-D, seeded: inputs of more than 50 features go
//! through PCA to 50 first; affinities from the exact 3·perplexity nearest neighbours;
//! repulsion from a quadtree with opening angle θ; early exaggeration, momentum and gains as
//! scikit-learn. Ours: linfa-tsne overflowed the stack on 5k×784 and took over 240 s with an
//! unlimited one (measured), and it cannot be seeded.

use super::{Pca, PcaParams};
use crate::error::{Error, ParamError, Result};
use ndarray::Array2;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rayon::prelude::*;

/// Unchecked t-SNE parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct TsneParams {
    pub perplexity: f64,
    pub iterations: usize,
    pub theta: f64,
    pub seed: u64,
}

impl Default for TsneParams {
    fn default() -> Self {
        Self {
            perplexity: 30.0,
            iterations: 1000,
            theta: 0.5,
            seed: 0,
        }
    }
}

impl TsneParams {
    /// Check the rules that hold for any points: perplexity finite and > 0, iterations ≥ 250
    /// (the early-exaggeration phase), θ in [0, 1].
    pub fn check(&self) -> std::result::Result<&Self, ParamError> {
        if !(self.perplexity.is_finite() && self.perplexity > 0.0) {
            return Err(ParamError::PerplexityNotPositive(self.perplexity));
        }
        if self.iterations < 250 {
            return Err(ParamError::TsneIterations(self.iterations));
        }
        if !(0.0..=1.0).contains(&self.theta) {
            return Err(ParamError::Theta(self.theta));
        }
        Ok(self)
    }

    /// [`TsneParams::check`], and perplexity < N − 1 for N points.
    pub fn check_for(&self, points: usize) -> std::result::Result<&Self, ParamError> {
        self.check()?;
        if self.perplexity >= points as f64 - 1.0 {
            return Err(ParamError::Perplexity {
                perplexity: self.perplexity,
                points,
            });
        }
        Ok(self)
    }
}

/// Sparse symmetric affinities: for each point, (neighbour, p_ij).
type Affinities = Vec<Vec<(usize, f64)>>;

fn sq(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Conditional probabilities p_{j|i} over the k nearest neighbours, with σ_i found by
/// bisection so that the entropy matches log(perplexity).
fn affinities(x: &Array2<f64>, perplexity: f64) -> Affinities {
    let (n, d) = x.dim();
    let data = x.as_standard_layout().to_owned();
    let data = data.as_slice().unwrap_or(&[]);
    let row = |i: usize| &data[i * d..(i + 1) * d];
    let k = ((3.0 * perplexity) as usize + 1).min(n - 1);
    let target = perplexity.ln();
    let cond: Vec<Vec<(usize, f64)>> = (0..n)
        .into_par_iter()
        .map(|i| {
            // stopped: the caller checks the flag and discards the rows
            if crate::interrupt::check().is_err() {
                return Vec::new();
            }
            let mut dist: Vec<(f64, usize)> = (0..n).filter(|&j| j != i).map(|j| (sq(row(i), row(j)), j)).collect();
            dist.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
            dist.truncate(k);
            let (mut lo, mut hi, mut beta) = (0.0f64, f64::INFINITY, 1.0f64);
            let mut p = vec![0f64; k];
            for _ in 0..100 {
                let dmin = dist.iter().map(|t| t.0).fold(f64::INFINITY, f64::min);
                let mut sum = 0.0;
                for (pj, &(dj, _)) in p.iter_mut().zip(&dist) {
                    *pj = (-(dj - dmin) * beta).exp();
                    sum += *pj;
                }
                let sum = sum.max(f64::MIN_POSITIVE);
                let mean_d: f64 = p.iter().zip(&dist).map(|(pj, t)| pj * (t.0 - dmin)).sum::<f64>() / sum;
                let entropy = sum.ln() + beta * mean_d;
                p.iter_mut().for_each(|v| *v /= sum);
                let diff = entropy - target;
                if diff.abs() < 1e-5 {
                    break;
                }
                if diff > 0.0 {
                    lo = beta;
                    beta = if hi.is_finite() { (beta + hi) / 2.0 } else { beta * 2.0 };
                } else {
                    hi = beta;
                    beta = (beta + lo) / 2.0;
                }
            }
            dist.iter().zip(p).map(|(&(_, j), pj)| (j, pj)).collect()
        })
        .collect();
    // symmetrise: p_ij = (p_{j|i} + p_{i|j}) / 2n
    let mut sym: Vec<std::collections::HashMap<usize, f64>> = vec![Default::default(); n];
    for (i, row) in cond.iter().enumerate() {
        for &(j, p) in row {
            *sym[i].entry(j).or_default() += p;
            *sym[j].entry(i).or_default() += p;
        }
    }
    sym.into_iter()
        .map(|m| {
            let mut v: Vec<(usize, f64)> = m.into_iter().map(|(j, p)| (j, p / (2.0 * n as f64))).collect();
            v.sort_by_key(|t| t.0);
            v
        })
        .collect()
}

/// A quadtree over 2-D points, storing each cell's point count and centre of mass.
struct QuadTree {
    nodes: Vec<Node>,
}

struct Node {
    cx: f64,
    cy: f64,
    half: f64,
    mass: f64,
    mx: f64,
    my: f64,
    children: Option<[usize; 4]>,
    point: Option<(f64, f64)>,
}

impl QuadTree {
    fn new(y: &[(f64, f64)]) -> Self {
        let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
        for &(a, b) in y {
            x0 = x0.min(a);
            x1 = x1.max(a);
            y0 = y0.min(b);
            y1 = y1.max(b);
        }
        let half = ((x1 - x0).max(y1 - y0) / 2.0).max(1e-9) * (1.0 + 1e-6);
        let root = Node {
            cx: (x0 + x1) / 2.0,
            cy: (y0 + y1) / 2.0,
            half,
            mass: 0.0,
            mx: 0.0,
            my: 0.0,
            children: None,
            point: None,
        };
        let mut t = QuadTree { nodes: vec![root] };
        for &p in y {
            t.insert(0, p, 0);
        }
        t
    }

    fn insert(&mut self, mut idx: usize, p: (f64, f64), mut depth: usize) {
        loop {
            let node = &mut self.nodes[idx];
            node.mx = (node.mx * node.mass + p.0) / (node.mass + 1.0);
            node.my = (node.my * node.mass + p.1) / (node.mass + 1.0);
            node.mass += 1.0;
            if node.mass == 1.0 {
                node.point = Some(p);
                return;
            }
            // duplicate points (or too deep): keep them aggregated in this leaf
            if depth > 50 {
                return;
            }
            if node.children.is_none() {
                let (cx, cy, h) = (node.cx, node.cy, node.half / 2.0);
                let first = self.nodes.len();
                for (dx, dy) in [(-1.0, -1.0), (1.0, -1.0), (-1.0, 1.0), (1.0, 1.0)] {
                    self.nodes.push(Node {
                        cx: cx + dx * h,
                        cy: cy + dy * h,
                        half: h,
                        mass: 0.0,
                        mx: 0.0,
                        my: 0.0,
                        children: None,
                        point: None,
                    });
                }
                let node = &mut self.nodes[idx];
                node.children = Some([first, first + 1, first + 2, first + 3]);
                if let Some(old) = node.point.take() {
                    let child = self.child(idx, old);
                    self.insert(child, old, depth + 1);
                }
            }
            idx = self.child(idx, p);
            depth += 1;
        }
    }

    fn child(&self, idx: usize, p: (f64, f64)) -> usize {
        let n = &self.nodes[idx];
        let c = n.children.unwrap_or([idx; 4]);
        c[usize::from(p.0 >= n.cx) + 2 * usize::from(p.1 >= n.cy)]
    }

    /// Repulsive force on `p` (unnormalised) and its contribution to Z.
    fn repulsion(&self, p: (f64, f64), theta: f64) -> (f64, f64, f64) {
        let (mut fx, mut fy, mut z) = (0.0, 0.0, 0.0);
        let mut stack = vec![0usize];
        while let Some(i) = stack.pop() {
            let n = &self.nodes[i];
            if n.mass == 0.0 {
                continue;
            }
            let (dx, dy) = (p.0 - n.mx, p.1 - n.my);
            let d2 = dx * dx + dy * dy;
            let far = n.children.is_none() || (2.0 * n.half) * (2.0 * n.half) < theta * theta * d2;
            if far {
                if n.children.is_none() && d2 < 1e-24 && n.mass <= 1.0 {
                    continue; // the point itself
                }
                let q = 1.0 / (1.0 + d2);
                let mass = if n.children.is_none() && d2 < 1e-24 {
                    n.mass - 1.0
                } else {
                    n.mass
                };
                z += mass * q;
                fx += mass * q * q * dx;
                fy += mass * q * q * dy;
            } else if let Some(c) = n.children {
                stack.extend(c);
            }
        }
        (fx, fy, z)
    }
}

/// Embed the rows of `x` in 2-D.
pub fn tsne(x: &Array2<f64>, p: &TsneParams, mut progress: impl FnMut(usize)) -> Result<Array2<f64>> {
    let n = x.nrows();
    let p = p.check_for(n)?;
    let reduced = if x.ncols() > 50 {
        Pca::fit(x, &PcaParams { dims: 50 })?.transform(x)?
    } else {
        x.to_owned()
    };
    let pij = affinities(&reduced, p.perplexity);
    crate::interrupt::check()?;
    let mut rng = StdRng::seed_from_u64(p.seed);
    // random initialisation N(0, 1e-4²), as van der Maaten; Box–Muller from the seed
    let mut y: Vec<(f64, f64)> = (0..n)
        .map(|_| {
            let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random_range(0.0..1.0));
            let r = (-2.0 * u.ln()).sqrt() * 1e-4;
            (
                r * (std::f64::consts::TAU * v).cos(),
                r * (std::f64::consts::TAU * v).sin(),
            )
        })
        .collect();
    let mut update = vec![(0f64, 0f64); n];
    let mut gains = vec![(1f64, 1f64); n];
    let lr = (n as f64 / 12.0 / 4.0).max(50.0);
    for it in 0..p.iterations {
        crate::interrupt::check()?;
        let (exag, momentum) = if it < 250 { (12.0, 0.5) } else { (1.0, 0.8) };
        let tree = QuadTree::new(&y);
        let rep: Vec<(f64, f64, f64)> = y.par_iter().map(|&pt| tree.repulsion(pt, p.theta)).collect();
        let z: f64 = rep.iter().map(|r| r.2).sum::<f64>().max(f64::MIN_POSITIVE);
        let grads: Vec<(f64, f64)> = (0..n)
            .into_par_iter()
            .map(|i| {
                let (mut ax, mut ay) = (0.0, 0.0);
                for &(j, pv) in &pij[i] {
                    let (dx, dy) = (y[i].0 - y[j].0, y[i].1 - y[j].1);
                    let q = 1.0 / (1.0 + dx * dx + dy * dy);
                    ax += exag * pv * q * dx;
                    ay += exag * pv * q * dy;
                }
                (4.0 * (ax - rep[i].0 / z), 4.0 * (ay - rep[i].1 / z))
            })
            .collect();
        for i in 0..n {
            let (g, u, gain) = (grads[i], &mut update[i], &mut gains[i]);
            gain.0 = if (g.0 > 0.0) != (u.0 > 0.0) {
                gain.0 + 0.2
            } else {
                (gain.0 * 0.8).max(0.01)
            };
            gain.1 = if (g.1 > 0.0) != (u.1 > 0.0) {
                gain.1 + 0.2
            } else {
                (gain.1 * 0.8).max(0.01)
            };
            u.0 = momentum * u.0 - lr * gain.0 * g.0;
            u.1 = momentum * u.1 - lr * gain.1 * g.1;
            y[i].0 += u.0;
            y[i].1 += u.1;
        }
        progress(it + 1);
    }
    if y.iter().any(|p| !p.0.is_finite() || !p.1.is_finite()) {
        return Err(Error::Invalid("t-SNE diverged (non-finite coordinates)".into()));
    }
    Ok(Array2::from_shape_fn(
        (n, 2),
        |(i, j)| if j == 0 { y[i].0 } else { y[i].1 },
    ))
}
