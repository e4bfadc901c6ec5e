//! Prints the hashes of mcu/src/agree.rs's workloads on the host's scalar path, in the
//! format of the firmware's `AGREE` lines; mcu/run.sh compares the two.

// Only the hashing workloads are used here, not the profiling ones.
#[allow(dead_code)]
#[path = "../../src/agree.rs"]
mod agree;

fn main() {
    let (mut a, mut b, mut w, mut g) = (
        Box::new([0.0f32; agree::N]),
        Box::new([0.0f32; agree::N]),
        Box::new([0.0f32; agree::N]),
        Box::new([0.0f32; agree::N]),
    );
    agree::run(
        ghm::Isa::Scalar,
        &mut a,
        &mut b,
        &mut w,
        &mut g,
        |name, h| {
            println!("AGREE {name}: {h:016x}");
        },
    );
}
