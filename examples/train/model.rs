//! A tiny two-layer MLP (features -> ReLU hidden -> outputs) and Adam, written out by hand.

use super::rng::Rng;

/// Parameters in one flat vector: `w1 [inputs][hidden]`, `b1 [hidden]`, `w2 [outputs][hidden]`,
/// `b2 [outputs]`. The first layer is stored input-major so that the inner loops run over
/// the hidden units element-wise (they vectorize).
#[derive(Clone)]
pub struct Mlp {
    pub inputs: usize,
    pub hidden: usize,
    pub outputs: usize,
    pub params: Vec<f32>,
}

impl Mlp {
    /// He-initialised first layer, small second layer, output bias `bias`.
    pub fn new(inputs: usize, hidden: usize, outputs: usize, bias: f32, rng: &mut Rng) -> Mlp {
        let mut params = Vec::with_capacity(hidden * inputs + hidden + outputs * hidden + outputs);
        let std1 = (2.0 / inputs as f64).sqrt();
        params.extend((0..hidden * inputs).map(|_| (std1 * rng.normal()) as f32));
        params.extend(std::iter::repeat_n(0.0, hidden));
        let std2 = 0.1 / (hidden as f64).sqrt();
        params.extend((0..outputs * hidden).map(|_| (std2 * rng.normal()) as f32));
        params.extend(std::iter::repeat_n(bias, outputs));
        Mlp {
            inputs,
            hidden,
            outputs,
            params,
        }
    }

    /// A random "teacher" network whose outputs have about unit variance for N(0, 1) inputs
    /// (He-initialised layers, random hidden biases): a smooth, piecewise-linear target
    /// that a student of the same shape can represent exactly.
    pub fn teacher(inputs: usize, hidden: usize, outputs: usize, rng: &mut Rng) -> Mlp {
        let mut mlp = Mlp::new(inputs, hidden, outputs, 0.0, rng);
        let std2 = (1.0 / hidden as f64).sqrt();
        let (first, second) = mlp.params.split_at_mut(inputs * hidden + hidden);
        for b in &mut first[inputs * hidden..] {
            *b = (0.5 * rng.normal()) as f32;
        }
        for w in &mut second[..outputs * hidden] {
            *w = (std2 * rng.normal()) as f32;
        }
        mlp
    }

    /// (w1, b1, w2, b2)
    fn split(&self) -> (&[f32], &[f32], &[f32], &[f32]) {
        let (w1, rest) = self.params.split_at(self.hidden * self.inputs);
        let (b1, rest) = rest.split_at(self.hidden);
        let (w2, b2) = rest.split_at(self.outputs * self.hidden);
        (w1, b1, w2, b2)
    }

    /// Outputs for `n` rows of `x`; the hidden activations go to `act` (`[n][hidden]`) for
    /// the backward pass.
    pub fn forward(&self, x: &[f32], act: &mut Vec<f32>, out: &mut Vec<f32>) {
        let (w1, b1, w2, b2) = self.split();
        let n = x.len() / self.inputs;
        act.resize(n * self.hidden, 0.0);
        out.resize(n * self.outputs, 0.0);
        let rows = x.chunks_exact(self.inputs);
        let acts = act.chunks_exact_mut(self.hidden);
        for ((xi, hi), oi) in rows.zip(acts).zip(out.chunks_exact_mut(self.outputs)) {
            hi.copy_from_slice(b1);
            for (&xv, w) in xi.iter().zip(w1.chunks_exact(self.hidden)) {
                axpy(xv, w, hi);
            }
            for h in hi.iter_mut() {
                *h = h.max(0.0);
            }
            for ((o, w), b) in oi.iter_mut().zip(w2.chunks_exact(self.hidden)).zip(b2) {
                *o = b + dot(w, hi);
            }
        }
    }

    /// Adds the gradient of the parameters to `grad`, given `dout` = dLoss/dOutputs.
    pub fn backward(&self, x: &[f32], act: &[f32], dout: &[f32], grad: &mut [f32]) {
        let (_, _, w2, _) = self.split();
        let (gw1, rest) = grad.split_at_mut(self.inputs * self.hidden);
        let (gb1, rest) = rest.split_at_mut(self.hidden);
        let (gw2, gb2) = rest.split_at_mut(self.outputs * self.hidden);
        let mut dh = vec![0.0f32; self.hidden];
        let rows = x
            .chunks_exact(self.inputs)
            .zip(act.chunks_exact(self.hidden));
        for ((xi, hi), di) in rows.zip(dout.chunks_exact(self.outputs)) {
            if di.iter().all(|&d| d == 0.0) {
                continue;
            }
            dh.fill(0.0);
            for (k, &d) in di.iter().enumerate() {
                gb2[k] += d;
                axpy(d, hi, &mut gw2[k * self.hidden..(k + 1) * self.hidden]);
                axpy(d, &w2[k * self.hidden..(k + 1) * self.hidden], &mut dh);
            }
            for (d, &h) in dh.iter_mut().zip(hi) {
                if h <= 0.0 {
                    *d = 0.0;
                }
            }
            axpy(1.0, &dh, gb1);
            for (&xv, g) in xi.iter().zip(gw1.chunks_exact_mut(self.hidden)) {
                axpy(xv, &dh, g);
            }
        }
    }

    /// Outputs for all rows of `x`, in chunks (no activations kept).
    pub fn predict(&self, x: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(x.len() / self.inputs * self.outputs);
        let (mut act, mut part) = (Vec::new(), Vec::new());
        for chunk in x.chunks(self.inputs * 65_536) {
            self.forward(chunk, &mut act, &mut part);
            out.extend_from_slice(&part);
        }
        out
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// y += a * x
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yv, &xv) in y.iter_mut().zip(x) {
        *yv += a * xv;
    }
}

/// Adam (Kingma & Ba) with the usual betas and bias correction; the learning rate is `lr`
/// for the first two thirds of `steps`, then decays linearly to 0 (without a decay, L1-like
/// losses keep the final weights jittering at the scale of the learning rate).
pub struct Adam {
    lr: f32,
    steps: usize,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    pub fn new(lr: f32, steps: usize, len: usize) -> Adam {
        Adam {
            lr,
            steps,
            m: vec![0.0; len],
            v: vec![0.0; len],
            t: 0,
        }
    }

    pub fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        let progress = self.t as f32 / self.steps.max(1) as f32;
        let lr = self.lr * (3.0 * (1.0 - progress)).clamp(0.0, 1.0);
        self.t += 1;
        let c1 = 1.0 - B1.powi(self.t);
        let c2 = 1.0 - B2.powi(self.t);
        for (((p, g), m), v) in params
            .iter_mut()
            .zip(grad)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *m = B1 * *m + (1.0 - B1) * g;
            *v = B2 * *v + (1.0 - B2) * g * g;
            *p -= lr * (*m / c1) / ((*v / c2).sqrt() + 1e-8);
        }
    }
}
