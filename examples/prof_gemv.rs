use rnncore::kernels::packed::{gemm_packed, PackedB};
fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().unwrap())
        .collect();
    let (m, k, n) = (args[0], args[1], args[2]);
    let b: Vec<f32> = (0..k * n).map(|i| (i % 17) as f32 * 0.01).collect();
    let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.01).collect();
    let pb = PackedB::from_rows(&b, k, n, n);
    let mut c = vec![0.0f32; m * n];
    let mut best = f64::MAX;
    for _ in 0..200 {
        let t = std::time::Instant::now();
        for _ in 0..100 {
            gemm_packed(m, &a, k, &pb, &mut c, n, true);
        }
        best = best.min(t.elapsed().as_nanos() as f64 / 100.0);
    }
    let gf = 2.0 * (m * k * n) as f64 / best;
    println!(
        "m={m} k={k} n={n}: {best:.0} ns  {gf:.1} GFLOP/s  {:.1} GB/s of B",
        (k * n * 4) as f64 / best
    );
}
