use rnncore::{CellKind, Model, ModelConfig, Targets, TrainConfig, Trainer};
fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().unwrap())
        .collect();
    let (i, h, b, t, reps) = (a[0], a[1], a[2], a[3], a[4]);
    let mut model = Model::new(ModelConfig::new(CellKind::Lstm, i, h, 1), 1).unwrap();
    let x: Vec<f32> = (0..b * t * i).map(|k| (k % 7) as f32 * 0.1).collect();
    let y = vec![0.0f32; b * t * h];
    let mut tr = Trainer::new(&model, TrainConfig::sgd(0.0, 0.0)).unwrap();
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t0 = std::time::Instant::now();
        tr.step_mse(&mut model, None, &x, b, t, &y, Targets::EveryStep)
            .unwrap();
        best = best.min(t0.elapsed().as_secs_f64());
    }
    let gf = 3.0 * 2.0 * (b * t * 4 * h * (i + h)) as f64 / best / 1e9;
    println!("train {best:.4} s  {gf:.1} GFLOP/s");
}
