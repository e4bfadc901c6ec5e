//! The same workloads on the device and on the host, reduced to one FNV-1a hash each over
//! every output bit (losses, gradients, the state after each call), so that
//! `mcu/run.sh` can check that the M4F gives the host's scalar path bit for bit. Included by
//! the firmware (`ghm-mcu`) and by the host program `mcu/host`.

use ghm::{ClassLayout, Config, GhmC, GhmR, Isa, State};

pub const N: usize = 1200;
const CLASSES: usize = 12;

struct Fnv(u64);
impl Fnv {
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 = (self.0 ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn f32s(&mut self, v: &[f32]) {
        for x in v {
            self.bytes(&x.to_bits().to_le_bytes());
        }
    }
    fn state(&mut self, s: &State) {
        // SAFETY: State is plain data (the C API's checkpoint format).
        let b: [u8; core::mem::size_of::<State>()] = unsafe { core::mem::transmute_copy(s) };
        self.bytes(&b);
    }
}

struct Rng(u32);
impl Rng {
    fn u(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        (self.0 >> 8) as f32 / (1u32 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        (self.u() + self.u() + self.u() + self.u() - 2.0) * 1.732
    }
}

/// Detector-like inputs: for GHM-C mostly easy negatives, positives, soft targets and
/// mislabelled outliers; for GHM-R residuals over five scales; label weights with zeros.
pub fn fill(seed: u32, a: &mut [f32], b: &mut [f32], w: &mut [f32], labels: &mut [i32]) {
    let mut rng = Rng(seed);
    for i in 0..a.len() {
        let u = rng.u();
        let (x, t) = if u < 0.85 {
            (-4.0 + 1.5 * rng.normal(), 0.0)
        } else if u < 0.93 {
            (1.0 + 2.0 * rng.normal(), 1.0)
        } else if u < 0.97 {
            (2.0 * rng.normal(), rng.u())
        } else {
            (6.0 + 3.0 * rng.normal(), 0.0)
        };
        a[i] = x;
        b[i] = t;
        w[i] = if rng.u() < 0.1 { 0.0 } else { 0.5 + rng.u() };
    }
    for (j, l) in labels.iter_mut().enumerate() {
        *l = if rng.u() < 0.8 {
            CLASSES as i32
        } else {
            (j % CLASSES) as i32
        };
    }
}

/// Runs every workload (three calls each, so the EMA carries over) with `isa` forced, and
/// reports each one's name and hash.
pub fn run(
    isa: Isa,
    a: &mut [f32; N],
    b: &mut [f32; N],
    w: &mut [f32; N],
    g: &mut [f32; N],
    mut report: impl FnMut(&str, u64),
) {
    let mut labels = [0i32; N / CLASSES];
    let cfgs = [
        (
            "ghm_c coco",
            Config {
                bins: 30,
                momentum: 0.75,
                ..Config::ghm_c()
            },
        ),
        ("ghm_c default", Config::ghm_c()),
    ];
    for (name, cfg) in cfgs {
        let mut c = GhmC::new(cfg).unwrap();
        c.set_isa(isa).unwrap();
        let mut h = Fnv(0xcbf2_9ce4_8422_2325);
        for call in 0..3u32 {
            fill(7 + call, a, b, w, &mut labels);
            let l = c.loss_grad(a, b, Some(w), g).unwrap();
            h.f32s(&[l]);
            h.f32s(g);
            h.state(c.state());
            let layout = ClassLayout::rows(N / CLASSES, CLASSES);
            let l = c.loss_grad_labels(a, layout, &labels, None, g).unwrap();
            h.f32s(&[l]);
            h.f32s(g);
            h.state(c.state());
        }
        report(name, h.0);
    }
    let cfgs = [
        (
            "ghm_r coco",
            Config {
                mu: 0.02,
                bins: 10,
                momentum: 0.7,
                loss_weight: 10.0,
                ..Config::ghm_r()
            },
        ),
        (
            "ghm_r mu 1",
            Config {
                mu: 1.0,
                bins: 64,
                momentum: 0.75,
                ..Config::ghm_r()
            },
        ),
    ];
    for (name, cfg) in cfgs {
        let mut r = GhmR::new(cfg).unwrap();
        r.set_isa(isa).unwrap();
        let mut h = Fnv(0xcbf2_9ce4_8422_2325);
        for call in 0..3u32 {
            fill(11 + call, a, b, w, &mut labels);
            let scale = [0.005f32, 0.02, 0.1, 1.0, 10.0];
            for (i, x) in a.iter_mut().enumerate() {
                *x = b[i] + scale[i % 5] * *x * 0.25;
            }
            let l = r.loss_grad(a, b, Some(w), g).unwrap();
            h.f32s(&[l]);
            h.f32s(g);
            h.state(r.state());
        }
        report(name, h.0);
    }
}

/// The profiling workloads (`profile-c`, `profile-r`): three calls each, COCO settings.
pub fn profile_c(a: &[f32; N], b: &[f32; N], g: &mut [f32; N]) -> bool {
    let mut c = GhmC::new(Config {
        bins: 30,
        momentum: 0.75,
        ..Config::ghm_c()
    })
    .unwrap();
    (0..3).all(|_| c.loss_grad(a, b, None, g).is_ok())
}

/// See [`profile_c`]; the targets of `b` are used as GHM-R targets as they are.
pub fn profile_r(a: &[f32; N], b: &[f32; N], g: &mut [f32; N]) -> bool {
    let cfg = Config {
        mu: 0.02,
        bins: 10,
        momentum: 0.7,
        loss_weight: 10.0,
        ..Config::ghm_r()
    };
    let mut r = GhmR::new(cfg).unwrap();
    (0..3).all(|_| r.loss_grad(a, b, None, g).is_ok())
}
