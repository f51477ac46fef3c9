use rnncore::{CellKind, Model, ModelConfig, State};
fn main() {
    let h: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(8);
    let model = Model::new(ModelConfig::new(CellKind::Lstm, 1, h, 1), 1).unwrap();
    let mut state = State::new(&model, 1).unwrap();
    let mut y = vec![0.0; h];
    let mut x = 0.1f32;
    let t = std::time::Instant::now();
    let n: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(2_000_000);
    for _ in 0..n {
        x = -x;
        model
            .step(&mut state, std::hint::black_box(&[x]), &mut y)
            .unwrap();
    }
    println!("{:.1} ns/step", t.elapsed().as_nanos() as f64 / n as f64);
}
