use rnncore::{CellKind, Model, ModelConfig};
fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().unwrap())
        .collect();
    let (i, h, b, t, reps) = (a[0], a[1], a[2], a[3], a[4]);
    let model = Model::new(ModelConfig::new(CellKind::Lstm, i, h, 1), 1).unwrap();
    let x: Vec<f32> = (0..b * t * i).map(|k| (k % 7) as f32 * 0.1).collect();
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t0 = std::time::Instant::now();
        std::hint::black_box(model.forward(&x, b, t).unwrap());
        best = best.min(t0.elapsed().as_secs_f64());
    }
    let gf = 2.0 * (b * t * 4 * h * (i + h)) as f64 / best / 1e9;
    println!("{best:.4} s  {gf:.1} GFLOP/s");
}
