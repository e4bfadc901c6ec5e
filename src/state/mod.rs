//! The caller-owned state a loss carries across calls, its seal (checksum) and its EMA.
//! Below it: the tally of a batch (`stats`); beside it: the commit (`commit`) that turns a
//! tally into per-region weights (`weights`).

mod commit;
mod stats;
mod weights;

pub(crate) use stats::{Counts, Tally};
pub use stats::{Stats, STATS_LEN};
pub use weights::RegionWeights;

use crate::config::{Config, Kind, MAX_BINS};
use crate::error::Error;

/// The seals' checksum: four interleaved chains of xor-then-multiply (FNV's prime) over
/// whole words, folded into one. Each step is a bijection of the chain's value for a given
/// word, so changing any one word always changes the result; four chains keep the
/// multiplies from waiting on each other.
pub(super) struct Checksum {
    h: [u32; 4],
    n: usize,
}

impl Checksum {
    const PRIME: u32 = 0x0100_0193;

    pub(super) fn new() -> Checksum {
        Checksum {
            h: [0x811c_9dc5, 0x2d35_8dcc, 0x6d4f_10b7, 0x1b87_3593],
            n: 0,
        }
    }

    /// Word `n` of the whole input goes to chain `n % 4`.
    fn step(&mut self, w: u32) {
        let lane = &mut self.h[self.n % 4];
        *lane = (*lane ^ w).wrapping_mul(Self::PRIME);
        self.n += 1;
    }

    /// The words one by one up to a multiple of four, then four at a time (one step of
    /// each chain: the same result, in a loop the compiler vectorises), then the rest.
    fn all<T: Copy>(mut self, xs: &[T], bits: impl Fn(T) -> u32) -> Checksum {
        let head = (4 - self.n % 4) % 4;
        let (first, rest) = xs.split_at_checked(head).unwrap_or((xs, &[]));
        for &x in first {
            self.step(bits(x));
        }
        let mut quads = rest.chunks_exact(4);
        for q in &mut quads {
            for (h, &x) in self.h.iter_mut().zip(q) {
                *h = (*h ^ bits(x)).wrapping_mul(Self::PRIME);
            }
            self.n += 4;
        }
        for &x in quads.remainder() {
            self.step(bits(x));
        }
        self
    }

    pub(super) fn words(self, words: &[u32]) -> Checksum {
        self.all(words, |w| w)
    }

    pub(super) fn floats(self, values: &[f32]) -> Checksum {
        self.all(values, f32::to_bits)
    }

    pub(super) fn finish(&self) -> u32 {
        let h = &self.h;
        h[1..]
            .iter()
            .fold(h[0], |acc, &x| (acc ^ x).wrapping_mul(Self::PRIME))
    }
}

const MAGIC: u32 = 0x4748_4d31; // "GHM1"

// No padding: the checksum covers every byte, so any change to an image is refused.
const _: () = assert!(
    core::mem::size_of::<State>() == 2 * 4 + core::mem::size_of::<Config>() + 8 * MAX_BINS + 4
);

/// The state a loss carries across calls: its configuration and the EMA
/// of the per-region counts.
///
/// Plain data of fixed size with no pointers: it may live on the stack, inside another
/// struct, or be written to a checkpoint and read back on a machine of the same
/// endianness. Its fields are private; it carries a checksum so that a state that was never
/// initialised, was corrupted, or belongs to the other loss is refused with a specific error.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct State {
    magic: u32,
    pub(super) kind: u32,
    pub(super) config: Config,
    /// S_k, the EMA of R_k (unused with momentum 0). Regions that have never been hit hold 0.
    pub(super) ema: [f32; MAX_BINS],
    /// The same EMA applied to a constant 1 (`1 - alpha^t`), for bias correction.
    pub(super) ema_norm: [f32; MAX_BINS],
    checksum: u32,
}

impl State {
    /// The state of a loss's default configuration.
    pub(crate) fn default_for(kind: Kind) -> State {
        State::fresh(kind, &Config::default_for(kind))
    }

    /// A fresh state (EMA at 0, as the reference starts).
    pub(crate) fn new(kind: Kind, config: &Config) -> Result<State, Error> {
        config.validate(kind)?;
        Ok(State::fresh(kind, config))
    }

    /// A fresh state of a configuration already validated, built where it is returned (one
    /// copy in the frames: the Cortex-M stack figures).
    fn fresh(kind: Kind, config: &Config) -> State {
        let mut s = State {
            magic: MAGIC,
            kind: kind as u32,
            config: *config,
            ema: [0.0; MAX_BINS],
            ema_norm: [0.0; MAX_BINS],
            checksum: 0,
        };
        s.seal();
        s
    }

    /// The configuration this state was initialised with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// S_k for each of the `bins` regions: the EMA of the counts (all 0 with momentum 0).
    pub fn ema(&self) -> &[f32] {
        &self.ema[..(self.config.bins as usize).min(MAX_BINS)]
    }

    /// Replaces the EMA S_k of the `bins` regions with `ema` (for instance a checkpoint of
    /// another implementation: mmdetection's `acc_sum`). Regions with a positive value count
    /// as fully warmed up for `OPT_EMA_BIAS_CORRECTION` (their `1 - alpha^t` is set to 1),
    /// regions at 0 as never hit. [`Error::Length`] unless `ema` has `bins` values,
    /// [`Error::StatsMismatch`] if one is negative or not finite; nothing changes on error.
    pub fn set_ema(&mut self, ema: &[f32]) -> Result<(), Error> {
        let m = (self.config.bins as usize).min(MAX_BINS);
        if ema.len() != m {
            return Err(Error::Length);
        }
        if !ema.iter().all(|s| s.is_finite() && *s >= 0.0) {
            return Err(Error::StatsMismatch);
        }
        // Zipped rather than indexed: no bounds check, so no panic path (ema.len() <= MAX_BINS).
        let slots = self.ema.iter_mut().zip(self.ema_norm.iter_mut());
        for ((e, norm), &s) in slots.zip(ema) {
            *e = s;
            *norm = if s > 0.0 { 1.0 } else { 0.0 };
        }
        self.seal();
        Ok(())
    }

    /// Checks that this is an intact state of loss `kind`.
    pub(crate) fn check(&self, kind: Kind) -> Result<(), Error> {
        if self.kind()? != kind {
            return Err(Error::WrongLoss);
        }
        Ok(())
    }

    /// Checks that this is an intact state (for instance one read from a checkpoint); the
    /// loss it belongs to. [`Error::State`] if it was never initialised or is corrupted.
    pub fn kind(&self) -> Result<Kind, Error> {
        if self.magic != MAGIC || self.checksum != self.digest() {
            return Err(Error::State);
        }
        let own = Kind::from_tag(self.kind).ok_or(Error::State)?;
        self.config.validate(own).map_err(|_| Error::State)?;
        let m = self.config.bins as usize;
        // Folds without early exits (the C calls check every state they are given: the
        // compiler vectorises these, where `all` tested one float at a time). A NaN fails
        // every comparison; -0.0 passes as 0.
        let all = |xs: &[f32], ok: fn(f32) -> bool| xs.iter().fold(true, |a, &s| a & ok(s));
        let sane = all(&self.ema[..m], |s| (0.0..=f32::MAX).contains(&s))
            & all(&self.ema_norm[..m], |s| (0.0..=1.0).contains(&s))
            & all(&self.ema[m..], |s| s.to_bits() == 0)
            & all(&self.ema_norm[m..], |s| s.to_bits() == 0);
        if !sane {
            return Err(Error::State);
        }
        Ok(own)
    }

    pub(super) fn seal(&mut self) {
        self.checksum = self.digest();
    }

    /// NOT PART OF THE API: recomputes the checksum after the fields were edited in place
    /// (by the fuzz targets, which build states field by field). Only with the `test-hooks`
    /// feature.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn __reseal(&mut self) {
        self.seal();
    }

    /// The checksum of every field but the checksum.
    fn digest(&self) -> u32 {
        Checksum::new()
            .words(&[self.magic, self.kind])
            .words(&self.config.to_words())
            .floats(&self.ema)
            .floats(&self.ema_norm)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checksum of words given in pieces of every length and alignment (four at a time
    /// where the pieces allow) equals its definition, one word at a time in one chain per
    /// word index mod 4: stored states and weights stay valid across builds.
    #[test]
    fn checksum_in_any_pieces_equals_word_by_word_definition() {
        let words: [u32; 41] =
            core::array::from_fn(|i| (i as u32).wrapping_mul(0x9e37_79b9) ^ ((i as u32) << 7));
        let mut want = Checksum::new();
        for &w in &words {
            want.step(w);
        }
        let want = want.finish();
        for a in 0..words.len() {
            for b in a..words.len() {
                let floats: [f32; 41] = core::array::from_fn(|i| f32::from_bits(words[i]));
                let got = Checksum::new()
                    .words(&words[..a])
                    .floats(&floats[a..b])
                    .words(&words[b..])
                    .finish();
                assert_eq!(got, want, "pieces at {a} and {b}");
            }
        }
    }

    /// A sealed state (a valid checksum) is still refused when an EMA value is out of range:
    /// a negative, infinite or NaN count, a bias-correction term outside [0, 1], or anything
    /// but +0.0 beyond the configured regions; values at the ends of each range (-0.0 as 0,
    /// f32::MAX, 1) pass.
    #[test]
    fn sealed_states_with_ema_values_out_of_range_are_refused() {
        let s = State::new(Kind::Classification, &Config::ghm_c()).unwrap();
        let m = s.config.bins as usize;
        let with = |k: usize, ema: Option<f32>, norm: Option<f32>| {
            let mut t = s;
            if let Some(v) = ema {
                t.ema[k] = v;
            }
            if let Some(v) = norm {
                t.ema_norm[k] = v;
            }
            t.seal();
            t.kind()
        };
        let ok = Ok(Kind::Classification);
        for k in [0, m - 1] {
            for v in [0.0, -0.0, 1.5, f32::MAX] {
                assert_eq!(with(k, Some(v), None), ok, "ema[{k}] = {v}");
            }
            for v in [0.0, -0.0, 0.25, 1.0] {
                assert_eq!(with(k, None, Some(v)), ok, "ema_norm[{k}] = {v}");
            }
            for v in [-1.0, -f32::MIN_POSITIVE, f32::INFINITY, f32::NAN, -f32::NAN] {
                assert_eq!(with(k, Some(v), None), Err(Error::State), "ema[{k}] = {v}");
            }
            for v in [-0.5, 1.0000001, f32::INFINITY, f32::NAN] {
                assert_eq!(
                    with(k, None, Some(v)),
                    Err(Error::State),
                    "ema_norm[{k}] = {v}"
                );
            }
        }
        for k in [m, MAX_BINS - 1] {
            assert_eq!(with(k, Some(0.0), Some(0.0)), ok);
            for v in [-0.0, 1.0, f32::NAN] {
                assert_eq!(with(k, Some(v), None), Err(Error::State), "ema[{k}] = {v}");
                assert_eq!(
                    with(k, None, Some(v)),
                    Err(Error::State),
                    "ema_norm[{k}] = {v}"
                );
            }
        }
    }

    #[test]
    fn corrupted_or_foreign_states_are_refused() {
        let s = State::new(Kind::Classification, &Config::ghm_c()).unwrap();
        assert_eq!(s.check(Kind::Classification), Ok(()));
        assert_eq!(s.check(Kind::Regression), Err(Error::WrongLoss));
        let mut t = s;
        t.ema[3] = 1.0;
        assert_eq!(t.check(Kind::Classification), Err(Error::State));
        let mut t = s;
        t.magic ^= 1;
        assert_eq!(t.check(Kind::Classification), Err(Error::State));
    }
}
