//! Shared by the integration tests: a float64 reference that follows the reference
//! semantics literally, the golden-vector reader, and deterministic input generators.
#![allow(dead_code)]

use ghm::{Config, Kind};

/// The reference's EMA state: S_k in f64.
#[derive(Clone, Debug)]
pub struct RefState {
    pub ema: Vec<f64>,
}

impl RefState {
    pub fn new(cfg: &Config) -> RefState {
        RefState {
            ema: vec![0.0; cfg.bins as usize],
        }
    }
}

/// Per-element gradient norm, term and direction in f64.
pub fn element(kind: Kind, mu: f32, a: f32, b: f32) -> (f64, f64, f64) {
    let (a, b) = (f64::from(a), f64::from(b));
    match kind {
        Kind::Classification => {
            let p = 1.0 / (1.0 + (-a).exp());
            let term = a.max(0.0) - a * b + (-a.abs()).exp().ln_1p();
            ((p - b).abs(), term, p - b)
        }
        Kind::Regression => {
            let mu = f64::from(mu);
            let d = a - b;
            let h = (d * d + mu * mu).sqrt();
            ((d / h).abs(), h - mu, d / h)
        }
    }
}

/// The reference's edges, in f32 as `arange(M+1).float() / M`, last edge raised.
pub fn edges(kind: Kind, bins: u32) -> Vec<f32> {
    let m = bins as usize;
    let mut e: Vec<f32> = (0..=m).map(|k| k as f32 / m as f32).collect();
    e[m] = match kind {
        Kind::Classification => 1.0f32 + 1e-6f32,
        Kind::Regression => 1000.0,
    };
    e
}

/// One call of the reference, literally: a loop over regions as mmdetection writes it, plus
/// the library's count prior and normalisation by positives where the config asks for them.
/// Returns the loss (mean reduction, times loss_weight), dL/da per element, and the
/// per-element "none" reduction value.
pub fn reference_call(
    kind: Kind,
    cfg: &Config,
    st: &mut RefState,
    a: &[f32],
    b: &[f32],
    w: Option<&[f32]>,
) -> (f64, Vec<f64>, Vec<f64>) {
    let n = a.len();
    let m = cfg.bins as usize;
    let e = edges(kind, cfg.bins);
    let weight = |i: usize| w.map_or(1.0, |w| f64::from(w[i]));
    let valid: Vec<bool> = (0..n).map(|i| weight(i) > 0.0).collect();
    let elems: Vec<(f64, f64, f64)> = (0..n).map(|i| element(kind, cfg.mu, a[i], b[i])).collect();
    let tot = match kind {
        Kind::Classification => valid.iter().filter(|&&v| v).count() as f64,
        Kind::Regression => (0..n).map(weight).sum::<f64>(),
    }
    .max(1.0);
    let mom = f64::from(cfg.momentum);
    let mut beta = vec![0.0f64; n];
    let mut nonempty = 0usize;
    // the library's count prior: count_prior * N / M more in every region
    let n_valid = valid.iter().filter(|&&v| v).count() as f64;
    let prior = f64::from(cfg.count_prior) * n_valid / m as f64;
    for k in 0..m {
        let inds: Vec<usize> = (0..n)
            .filter(|&i| {
                valid[i] && elems[i].0 >= f64::from(e[k]) && elems[i].0 < f64::from(e[k + 1])
            })
            .collect();
        let r = inds.len() as f64 + prior;
        if r == 0.0 {
            continue;
        }
        let d = if mom > 0.0 {
            st.ema[k] = mom * st.ema[k] + (1.0 - mom) * r;
            st.ema[k]
        } else {
            r
        };
        for i in inds {
            beta[i] = tot / d;
        }
        nonempty += 1;
    }
    if nonempty > 0 {
        for x in beta.iter_mut() {
            *x /= nonempty as f64;
        }
    }
    // the library's GHM_OPT_NORM_BY_POSITIVES: divided by the valid elements' target sum
    let by = if cfg.options & ghm::OPT_NORM_BY_POSITIVES != 0 {
        (0..n)
            .filter(|&i| valid[i])
            .map(|i| f64::from(b[i]))
            .sum::<f64>()
            .max(1.0)
    } else {
        tot
    };
    let lw = f64::from(cfg.loss_weight);
    let loss = lw * (0..n).map(|i| beta[i] * elems[i].1).sum::<f64>() / by;
    let grad = (0..n).map(|i| lw * beta[i] * elems[i].2 / by).collect();
    let none = (0..n).map(|i| lw * beta[i] * elems[i].1).collect();
    (loss, grad, none)
}

/// Distance (in gradient norm) from `g` to the nearest interior edge.
pub fn edge_distance(kind: Kind, bins: u32, g: f64) -> f64 {
    let e = edges(kind, bins);
    e[1..bins as usize]
        .iter()
        .map(|&x| (g - f64::from(x)).abs())
        .fold(f64::INFINITY, f64::min)
}

/// `|got - want| <= rel * |want| + abs_frac * max|want|` for every element; the index of the
/// first violation otherwise.
pub fn close_all(got: &[f32], want: &[f64], rel: f64, abs_frac: f64) -> Result<(), String> {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if (f64::from(g) - w).abs() > rel * w.abs() + abs_frac * scale {
            return Err(format!(
                "element {i}: got {g:e}, want {w:e} (scale {scale:e})"
            ));
        }
    }
    Ok(())
}

pub fn rel_close(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= rel * want.abs().max(1e-30) || got == want
}

/// A small deterministic generator (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn normal(&mut self) -> f32 {
        let u1 = f64::from(self.uniform()).max(1e-12);
        let u2 = f64::from(self.uniform());
        ((-2.0 * u1.ln()).sqrt() * (2.0 * core::f64::consts::PI * u2).cos()) as f32
    }
}

/// A batch shaped like a detector's: for GHM-C mostly easy negatives, some positives and
/// soft targets, a few mislabelled outliers; for GHM-R residuals over several scales and a
/// few outliers. Label weights (if asked) have ~10% zeros and, for GHM-R, non-unit values.
pub fn batch(
    kind: Kind,
    rng: &mut Rng,
    n: usize,
    weights: bool,
) -> (Vec<f32>, Vec<f32>, Option<Vec<f32>>) {
    let mut a = Vec::with_capacity(n);
    let mut b = Vec::with_capacity(n);
    for _ in 0..n {
        let u = rng.uniform();
        match kind {
            Kind::Classification => {
                let (x, t) = if u < 0.85 {
                    (-4.0 + 1.5 * rng.normal(), 0.0)
                } else if u < 0.93 {
                    (1.0 + 2.0 * rng.normal(), 1.0)
                } else if u < 0.97 {
                    (2.0 * rng.normal(), rng.uniform())
                } else {
                    (6.0 + 3.0 * rng.normal(), 0.0)
                };
                a.push(x);
                b.push(t);
            }
            Kind::Regression => {
                let scale = [0.005f32, 0.02, 0.1, 1.0, 10.0][(rng.next_u64() % 5) as usize];
                let t = rng.normal();
                a.push(t + scale * rng.normal());
                b.push(t);
            }
        }
    }
    let w = weights.then(|| {
        (0..n)
            .map(|_| {
                let u = rng.uniform();
                if u < 0.1 {
                    0.0
                } else if kind == Kind::Regression && u < 0.3 {
                    [0.5f32, 2.0][(rng.next_u64() % 2) as usize]
                } else {
                    1.0
                }
            })
            .collect()
    });
    (a, b, w)
}

/// Moves elements whose gradient norm is within `eps` of an interior edge away from it, so
/// that the f64 reference and the f32 kernels cannot disagree on their region.
pub fn away_from_edges(kind: Kind, cfg: &Config, a: &mut [f32], b: &[f32], eps: f64) {
    for i in 0..a.len() {
        let mut tries = 0;
        while edge_distance(kind, cfg.bins, element(kind, cfg.mu, a[i], b[i]).0) < eps
            && tries < 100
        {
            a[i] += 1e-3 * (1.0 + a[i].abs());
            tries += 1;
        }
    }
}

/// One case of `tests/fixtures/mmdet.txt`.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub kind: Kind,
    pub labels_layout: bool,
    pub config: Config,
    pub classes: usize,
    pub calls: Vec<Call>,
}

#[derive(Clone, Debug)]
pub struct Call {
    pub n: usize,
    pub pred: Vec<f32>,
    pub target: Vec<f32>,
    pub labels: Vec<i32>,
    pub weight: Option<Vec<f32>>,
    pub loss: f32,
    pub grad: Vec<f32>,
    pub none: Option<Vec<f32>>,
    pub acc_sum: Option<Vec<f32>>,
}

pub fn fixture_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mmdet.txt")
}

/// Reads the golden vectors (format: tests/fixtures/README.md).
pub fn read_fixtures() -> Vec<Case> {
    let text = std::fs::read_to_string(fixture_path()).expect("read tests/fixtures/mmdet.txt");
    let mut lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty());
    let mut cases = Vec::new();
    fn field<'a>(line: Option<&'a str>, key: &str) -> Vec<&'a str> {
        let line = line.unwrap_or_else(|| panic!("fixture ended before `{key}`"));
        let mut toks = line.split(' ');
        assert_eq!(toks.next(), Some(key), "fixture line: {line:.80}");
        toks.collect()
    }
    fn floats(t: &[&str]) -> Option<Vec<f32>> {
        if t == ["-"] {
            None
        } else {
            Some(t.iter().map(|s| s.parse().expect("float")).collect())
        }
    }
    while let Some(line) = lines.next() {
        let name = line.strip_prefix("case ").expect("case line").to_string();
        let kind = match field(lines.next(), "loss")[0] {
            "c" => Kind::Classification,
            _ => Kind::Regression,
        };
        let labels_layout = field(lines.next(), "layout")[0] == "labels";
        let bins = field(lines.next(), "bins")[0].parse().unwrap();
        let momentum = field(lines.next(), "momentum")[0].parse().unwrap();
        let mu: f32 = field(lines.next(), "mu")[0].parse().unwrap();
        let loss_weight = field(lines.next(), "loss_weight")[0].parse().unwrap();
        let classes = if labels_layout {
            field(lines.next(), "classes")[0].parse().unwrap()
        } else {
            1
        };
        let k: usize = field(lines.next(), "calls")[0].parse().unwrap();
        let mut config = Config {
            bins,
            momentum,
            loss_weight,
            ..Config::default_for(kind)
        };
        if kind == Kind::Regression {
            config.mu = mu;
        }
        let mut calls = Vec::new();
        for _ in 0..k {
            let n = field(lines.next(), "call")[0].parse().unwrap();
            let pred = floats(&field(lines.next(), "pred")).unwrap();
            let (target, labels) = if labels_layout {
                let l = field(lines.next(), "labels")
                    .iter()
                    .map(|s| s.parse().unwrap())
                    .collect();
                (Vec::new(), l)
            } else {
                (floats(&field(lines.next(), "target")).unwrap(), Vec::new())
            };
            let weight = floats(&field(lines.next(), "weight"));
            let loss = field(lines.next(), "loss")[0].parse().unwrap();
            let grad = floats(&field(lines.next(), "grad")).unwrap();
            let none = floats(&field(lines.next(), "none"));
            let acc_sum = floats(&field(lines.next(), "acc_sum"));
            calls.push(Call {
                n,
                pred,
                target,
                labels,
                weight,
                loss,
                grad,
                none,
                acc_sum,
            });
        }
        assert_eq!(lines.next(), Some("end"));
        cases.push(Case {
            name,
            kind,
            labels_layout,
            config,
            classes,
            calls,
        });
    }
    cases
}
