//! The reference problems with exact answers (mesobench::reference), timed:
//! the same models the closed-form tests check.

use criterion::{criterion_group, criterion_main, Criterion};
use mesobench::reference::{Blowdown, ChokedFill, Poiseuille};
use std::hint::black_box;

fn reference(c: &mut Criterion) {
    let needle = Poiseuille::NEEDLE_30G.conduit();
    c.bench_function("poiseuille_drop", |b| b.iter(|| needle.drop(black_box(1e-9))));
    let blowdown = Blowdown::new().expect("valid");
    c.bench_function("blowdown_1000_steps_2us", |b| {
        b.iter(|| {
            let mut p = blowdown.plant.clone();
            for _ in 0..1000 {
                p.step(false, 2e-6).expect("finite");
            }
            black_box(p.state.p_c)
        })
    });
    let fill = ChokedFill::new().expect("valid");
    c.bench_function("choked_fill_1000_steps_1us", |b| {
        b.iter(|| {
            let mut p = fill.plant.clone();
            for _ in 0..1000 {
                p.step(true, 1e-6).expect("finite");
            }
            black_box(p.state.p_c)
        })
    });
}

criterion_group!(benches, reference);
criterion_main!(benches);
