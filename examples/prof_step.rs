use rnncore::{CellKind, Model, ModelConfig, State};
fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let cell = match a[0].as_str() {
        "gru" => CellKind::GruLbr,
        "rnn" => CellKind::RnnTanh,
        _ => CellKind::Lstm,
    };
    let h: usize = a[1].parse().unwrap();
    let model = Model::new(ModelConfig::new(cell, 1, h, 1), 1).unwrap();
    let mut state = State::new(&model, 1).unwrap();
    let mut y = vec![0.0; h];
    let mut x = 0.1f32;
    let mut best = f64::MAX;
    for _ in 0..300 {
        let t = std::time::Instant::now();
        for _ in 0..1000 {
            x = -x;
            model
                .step(&mut state, std::hint::black_box(&[x]), &mut y)
                .unwrap();
        }
        best = best.min(t.elapsed().as_nanos() as f64 / 1000.0);
    }
    println!(
        "{} H={h}: {best:.1} ns/step (min over 300 batches of 1000)",
        a[0]
    );
}
