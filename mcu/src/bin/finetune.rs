//! On-device fine-tuning: the last layer of a tiny classifier (logistic regression over 16
//! fixed features, weights in RAM) fine-tuned on the M4F with GHM-C, and the same run with
//! plain BCE for comparison. The 600 labelled feature vectors are made deterministically by
//! the compiler (a const fn with xorshift) and stored in flash: imbalanced (about
//! 1 positive in 12), with 8% of the positives relabelled negative and 1% of the negatives
//! relabelled positive. Average precision on a clean held-out set before and after. Midway,
//! the GHM state is checkpointed to a byte array, the run continues, then the state and the
//! weights are restored from the checkpoint and the rest is run again: the final weights must
//! agree bit for bit. No allocation. Exits 1 on a failed check.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use ghm::{Config, GhmC, State};
use ghm_mcu::{exit, println};

const D: usize = 16;
const TRAIN: usize = 600;
const TEST: usize = 600;
const STEPS: usize = 60;
const LR: f32 = 0.5;

struct Rng(u32);
impl Rng {
    const fn u(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        (self.0 >> 8) as f32 / (1u32 << 24) as f32
    }
    const fn normal(&mut self) -> f32 {
        (self.u() + self.u() + self.u() + self.u() - 2.0) * 1.732
    }
}

/// Features of a sample: noise, shifted along a fixed direction for positives; clean label.
const fn sample(rng: &mut Rng, x: &mut [f32; D]) -> bool {
    let pos = rng.u() < 0.08;
    let mut j = 0;
    while j < D {
        let shift = if pos && j < 6 { 0.55 } else { 0.0 };
        x[j] = rng.normal() + shift;
        j += 1;
    }
    pos
}

struct Data {
    x: [[f32; D]; TRAIN],
    y: [f32; TRAIN],
    tx: [[f32; D]; TEST],
    ty: [bool; TEST],
}

/// The data set, computed by the compiler and stored in flash.
const fn make() -> Data {
    let mut d = Data {
        x: [[0.0; D]; TRAIN],
        y: [0.0; TRAIN],
        tx: [[0.0; D]; TEST],
        ty: [false; TEST],
    };
    let mut rng = Rng(0x2019_0118);
    let mut i = 0;
    while i < TRAIN {
        let pos = sample(&mut rng, &mut d.x[i]);
        let flip = if pos { rng.u() < 0.08 } else { rng.u() < 0.01 };
        d.y[i] = if pos != flip { 1.0 } else { 0.0 };
        i += 1;
    }
    let mut i = 0;
    while i < TEST {
        d.ty[i] = sample(&mut rng, &mut d.tx[i]);
        i += 1;
    }
    d
}

static DATA: Data = make();

fn logits(w: &[f32; D + 1], x: &[[f32; D]], out: &mut [f32]) {
    for (o, xi) in out.iter_mut().zip(x) {
        *o = w[D] + xi.iter().zip(w.iter()).map(|(a, b)| a * b).sum::<f32>();
    }
}

/// Average precision of the scores on the clean test labels (ties broken by index).
fn average_precision(
    w: &[f32; D + 1],
    d: &Data,
    scores: &mut [f32; TEST],
    order: &mut [u16; TEST],
) -> f32 {
    logits(w, &d.tx, scores);
    for (i, o) in order.iter_mut().enumerate() {
        *o = i as u16;
    }
    // Insertion sort, descending score: 600 elements, no allocation.
    for i in 1..TEST {
        let mut j = i;
        while j > 0 && scores[order[j - 1] as usize] < scores[order[j] as usize] {
            order.swap(j - 1, j);
            j -= 1;
        }
    }
    let total = d.ty.iter().filter(|&&p| p).count() as f32;
    let (mut hits, mut ap) = (0.0f32, 0.0f32);
    for (rank, &i) in order.iter().enumerate() {
        if d.ty[i as usize] {
            hits += 1.0;
            ap += hits / (rank + 1) as f32;
        }
    }
    ap / total
}

/// Plain BCE with logits, mean over the batch: loss, gradient into `g`.
fn bce(z: &[f32], y: &[f32], g: &mut [f32]) -> f32 {
    let n = z.len() as f32;
    let mut loss = 0.0;
    for ((&z, &y), g) in z.iter().zip(y).zip(g.iter_mut()) {
        let p = 1.0 / (1.0 + libm_exp(-z));
        loss += z.max(0.0) - z * y + libm_log1p(libm_exp(-z.abs()));
        *g = (p - y) / n;
    }
    loss / n
}

fn libm_exp(x: f32) -> f32 {
    // exp by range reduction and a short series: enough for the BCE baseline's training.
    let k = (x * core::f32::consts::LOG2_E + if x < 0.0 { -0.5 } else { 0.5 }) as i32;
    let r = x - k as f32 * core::f32::consts::LN_2;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r / 120.0))));
    let k = k.clamp(-126, 127);
    p * f32::from_bits(((k + 127) as u32) << 23)
}

fn libm_log1p(x: f32) -> f32 {
    // log1p for x in [0, 1]: atanh series on s = x / (2 + x).
    let s = x / (2.0 + x);
    let s2 = s * s;
    2.0 * s * (1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 / 9.0))))
}

/// Steps of full-batch gradient descent on the last layer from step `from` to `to`.
fn train(
    w: &mut [f32; D + 1],
    d: &Data,
    ghm: Option<&mut GhmC>,
    z: &mut [f32; TRAIN],
    g: &mut [f32; TRAIN],
    steps: core::ops::Range<usize>,
) -> f32 {
    let mut ghm = ghm;
    let mut loss = 0.0;
    for _ in steps {
        logits(w, &d.x, z);
        loss = match ghm.as_deref_mut() {
            Some(l) => l.loss_grad(z, &d.y, None, g).unwrap_or_else(|e| {
                println!("FAIL: ghm: {e:?}");
                exit(false)
            }),
            None => bce(z, &d.y, g),
        };
        let mut gw = [0.0f32; D + 1];
        for (xi, &gi) in d.x.iter().zip(g.iter()) {
            for j in 0..D {
                gw[j] += gi * xi[j];
            }
            gw[D] += gi;
        }
        for j in 0..=D {
            w[j] -= LR * gw[j];
        }
    }
    loss
}

#[entry]
fn main() -> ! {
    static mut BUF: ([f32; TRAIN], [f32; TRAIN], [f32; TEST], [u16; TEST]) =
        ([0.0; TRAIN], [0.0; TRAIN], [0.0; TEST], [0; TEST]);
    // cortex-m-rt's `entry` turns BUF into a `&'static mut`: no allocation, not on the stack.
    let d: &Data = &DATA;
    let (z, g, scores, order) = BUF;
    let pos = d.y.iter().filter(|&&y| y == 1.0).count();
    println!("fine-tuning a logistic last layer over {D} features: {TRAIN} training vectors ({pos} labelled positive, noisy), {TEST} clean test vectors");

    // The "pre-trained" layer: a rough direction, off by a fixed rotation and bias.
    let mut w0 = [0.0f32; D + 1];
    for (j, v) in w0.iter_mut().enumerate().take(D) {
        *v = if j < 3 || (8..11).contains(&j) {
            0.3
        } else {
            0.0
        };
    }
    w0[D] = -1.0;
    let ap0 = average_precision(&w0, d, scores, order);
    println!("before: AP {ap0:.4}");

    let mut w_bce = w0;
    let l = train(&mut w_bce, d, None, z, g, 0..STEPS);
    println!(
        "BCE,   {STEPS} steps: loss {l:.4}, AP {:.4}",
        average_precision(&w_bce, d, scores, order)
    );

    let cfg = Config {
        bins: 10,
        momentum: 0.75,
        ..Config::ghm_c()
    };
    let mut ghm = GhmC::new(cfg).unwrap();
    let mut w = w0;
    let half = STEPS / 2;
    train(&mut w, d, Some(&mut ghm), z, g, 0..half);
    // Checkpoint: the state as bytes (it is plain data), and the weights.
    // SAFETY: State is plain data of exactly that size.
    let checkpoint: [u8; core::mem::size_of::<State>()] =
        unsafe { core::mem::transmute_copy(ghm.state()) };
    let w_mid = w;
    let l = train(&mut w, d, Some(&mut ghm), z, g, half..STEPS);
    println!(
        "GHM-C, {STEPS} steps: loss {l:.4}, AP {:.4}",
        average_precision(&w, d, scores, order)
    );

    // Restore and run the second half again.
    // SAFETY: read_unaligned of a State from its own bytes; from_state verifies the checksum.
    let restored: State = unsafe { core::ptr::read_unaligned(checkpoint.as_ptr().cast()) };
    let mut ghm2 = GhmC::from_state(restored).unwrap_or_else(|e| {
        println!("FAIL: restoring the checkpoint: {e:?}");
        exit(false)
    });
    let mut w2 = w_mid;
    train(&mut w2, d, Some(&mut ghm2), z, g, half..STEPS);
    let same = w.iter().zip(&w2).all(|(a, b)| a.to_bits() == b.to_bits());
    println!(
        "checkpoint at step {half} ({} bytes) restored: final weights {} bit for bit",
        checkpoint.len(),
        if same { "identical" } else { "DIFFER" }
    );
    exit(same)
}
