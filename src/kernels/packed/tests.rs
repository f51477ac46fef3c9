thread_local! {
    /// The group size this thread's tests pack with, where set ([`in_every_layout`]).
    pub(super) static GROUP_OVERRIDE: std::cell::Cell<Option<usize>> =
        const { std::cell::Cell::new(None) };
    /// Whether the AVX-512 tier's stream kernels take their 8-lane bodies at the sizes
    /// that have them (`avx2::vl256`; chosen on AMD), where set ([`in_both_avx512_bodies`]).
    pub(super) static VL256_OVERRIDE: std::cell::Cell<Option<bool>> =
        const { std::cell::Cell::new(None) };
}

/// Runs `f` with `B` packed as the process tier packs it, then in groups of one panel
/// and of [`GROUP`]: every tier must handle both layouts (AVX-512 packs groups, the
/// others single panels), and this CPU may not run the tier that packs the other.
fn in_every_layout(f: impl Fn()) {
    for g in [None, Some(1), Some(GROUP)] {
        GROUP_OVERRIDE.with(|c| c.set(g));
        f();
    }
    GROUP_OVERRIDE.with(|c| c.set(None));
}
/// Runs `f` with the stream kernels this CPU chooses, then, where the AVX-512 tier runs
/// and AVX-512VL is there, with its 8-lane bodies (`avx2::vl256`) forced off and on: an
/// Intel machine checks the kernels AMD runs, and AMD the ones Intel runs.
fn in_both_avx512_bodies(f: impl Fn()) {
    f();
    #[cfg(target_arch = "x86_64")]
    if kernel_tier() == Tier::Avx512 && std::arch::is_x86_feature_detected!("avx512vl") {
        for vl256 in [false, true] {
            VL256_OVERRIDE.with(|o| o.set(Some(vl256)));
            f();
        }
        VL256_OVERRIDE.with(|o| o.set(None));
    }
}

use super::dense::{dense_narrow_kernel, dense_small_stride, dense_small_tier, DenseSmall};
use super::gemm::*;
use super::gemv::*;
use super::layout::*;
use super::stream::*;
use crate::config::CellKind;
use crate::kernels::activation::{available_tiers, kernel_tier, Tier};

/// Values in [-0.5, 0.5) from a linear congruential sequence.
fn uniform(mut seed: u32) -> impl FnMut() -> f32 {
    move || {
        seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
        (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    }
}

fn naive(m: usize, k: usize, n: usize, a: &[f32], lda: usize, b: &[f32]) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k)
                .map(|p| a[i * lda + p] as f64 * b[p * n + j] as f64)
                .sum();
        }
    }
    c
}

/// A layer's PyTorch-shaped weights drawn from `rnd` in [-0.5, 0.5): `w_ih` `[G·H][k]`,
/// `w_hh` `[G·H][H]`, the folded bias `[G·H]` and `b_hn` `[H]` (drawn for every cell, so
/// the sequence after it does not depend on the cell; empty for the LSTM).
fn layer_weights(
    rnd: &mut impl FnMut() -> f32,
    cell: CellKind,
    units: usize,
    k: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let gw = cell.gates() * units;
    let mut v = |n: usize| (0..n).map(|_| rnd()).collect::<Vec<f32>>();
    let (w_ih, w_hh, bias, b_hn) = (v(gw * k), v(gw * units), v(gw), v(units));
    let b_hn = if cell == CellKind::GruLbr {
        b_hn
    } else {
        Vec::new()
    };
    (w_ih, w_hh, bias, b_hn)
}

/// The activations' forms a fused stream can take: the one chosen for this CPU, and
/// each forced (the choice differs between machines, the bits must not).
const FORMS: [Option<bool>; 3] = [None, Some(true), Some(false)];

/// The tiers whose sums are fused multiply-adds (AVX2, AVX-512, NEON), and so the same bits
/// as one another in every product that adds in the same order.
fn fused_multiply_add(tier: Tier) -> bool {
    matches!(tier, Tier::Avx2 | Tier::Avx512 | Tier::Neon)
}

/// The fused stream kernels against the products and steps they replace, on the
/// process tier (where it has none, they must decline and change nothing), in each
/// activations' form. Large
/// weights drive the gates into saturation; one unit's state is tiny every step and
/// flushed.
#[test]
fn fused_stream_steps_are_the_step_by_step_bits() {
    in_both_avx512_bodies(|| {
        in_every_layout(|| {
            use crate::kernels::activation::{gru_lbr_state_with, lstm_state_with};
            let mut rnd = uniform(13u32);
            let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for (units, k) in [
                (16, 1),
                (32, 1),
                (32, 3),
                (16, 20),
                (8, 1),
                (8, 5),
                (24, 1),
                (24, 4),
                (32, 300),
                // As many inputs as units (a stacked layer), the weights over 32 KiB.
                (32, 40),
                (40, 40),
                (48, 48),
                (64, 64),
                // `W_hh` just under 32 KiB in the 48-unit kernel, over it with the bias
                // and the input row: a block's sweep turns back (`cells::sweep_bytes`).
                (42, 1),
                (40, 1),
                (40, 2),
                (48, 1),
                (48, 3),
                (64, 1),
                (64, 3),
                (96, 1),
                (96, 2),
                (128, 1),
                // Sizes between the kernels' (padded to the next one where `stream_size`
                // says so).
                (6, 2),
                (4, 1),
                (3, 2),
                (12, 1),
                (20, 1),
                (20, 3),
                (36, 2),
                (44, 1),
                (56, 1),
                (100, 1),
                (120, 2),
                (52, 1),
                (72, 1),
                (76, 2),
                (80, 1),
                (108, 1),
                (112, 1),
            ] {
                // The sizes with fused kernels, per tier and cell.
                let fused_here = |cell| k <= KC && stream_size(cell, units).is_some();
                // The cells the fused kernel must match (both cells' smallest kernel is 8).
                let cells = stream_cell_tier(CellKind::Lstm, units);
                let lstm_state =
                    |g: &[f32], c: &mut [f32], h: &mut [f32]| lstm_state_with(cells, g, c, h);
                let gru_lbr_state = |g: &[f32], gh: &[f32], b: &[f32], h: &mut [f32]| {
                    gru_lbr_state_with(cells, g, gh, b, h)
                };
                for (steps, scale) in [(1, 1.0), (2, 6.0), (37, 1.0)] {
                    let mut v = |n: usize, s: f32| (0..n).map(|_| rnd() * s).collect::<Vec<f32>>();
                    let mut h0 = v(units, 2.0);
                    // Units 3 and 5 (3 % units and 5 % units in the smallest layers).
                    let (u3, u5) = (3 % units, 5 % units);
                    h0[u3] = 1e-35;
                    let c0 = v(units, 4.0);
                    let x = v(steps * k, 2.0);

                    // LSTM; unit u5's i, f and o saturate off, so its c and h are flushed.
                    let gw = 4 * units;
                    let w_hh = v(gw * units, scale);
                    let wp = PackedB::from_transposed(&w_hh, gw, units);
                    let w_ih = v(gw * k, 1.0);
                    let wi = PackedB::from_transposed(&w_ih, gw, k);
                    let mut bias = v(gw, 1.0);
                    for q in [0, 1, 3] {
                        bias[q * units + u5] = -150.0;
                    }
                    let mut gates = vec![f32::NAN; steps * gw];
                    gemm_packed_bias(steps, &x, k, &wi, &mut gates, gw, &bias);
                    let (mut h, mut c) = (h0.clone(), c0.clone());
                    let mut want = vec![f32::NAN; steps * units];
                    for s in 0..steps {
                        let g = &mut gates[s * gw..(s + 1) * gw];
                        gemv_packed(&h, &wp, g, true);
                        lstm_state(g, &mut c, &mut h);
                        want[s * units..(s + 1) * units].copy_from_slice(&h);
                    }
                    for (form, rev) in FORMS.into_iter().flat_map(|f| [(f, false), (f, true)]) {
                        let (mut hf, mut cf) = (h0.clone(), c0.clone());
                        let mut got = vec![f32::NAN; steps * units];
                        let fused = StreamLayer::with_form(
                            CellKind::Lstm,
                            units,
                            k,
                            &w_ih,
                            &w_hh,
                            &bias,
                            &[],
                            form,
                        );
                        let expect = fused_here(CellKind::Lstm);
                        assert_eq!(fused.is_some(), expect);
                        if let Some(f) = &fused {
                            f.run(&x, steps, rev, &mut hf, &mut cf, &mut got);
                        }
                        let what =
                            format!("lstm H={units} I={k} steps={steps} chain={form:?} rev={rev}");
                        if expect {
                            assert_eq!(bits_of(&got), bits_of(&want), "{what}");
                            assert_eq!(bits_of(&hf), bits_of(&h), "{what}");
                            assert_eq!(bits_of(&cf), bits_of(&c), "{what}");
                        } else {
                            assert!(
                                hf == h0 && cf == c0 && got.iter().all(|x| x.is_nan()),
                                "{what}"
                            );
                        }
                    }

                    // GRU; unit u5's r and z saturate off and its candidate is tiny: flushed.
                    let gw = 3 * units;
                    let w_hh = v(gw * units, scale);
                    let wp = PackedB::from_transposed(&w_hh, gw, units);
                    let mut w_ih = v(gw * k, 1.0);
                    w_ih[(2 * units + u5) * k..(2 * units + u5 + 1) * k].fill(0.0);
                    let wi = PackedB::from_transposed(&w_ih, gw, k);
                    let mut bias = v(gw, 1.0);
                    (bias[u5], bias[units + u5], bias[2 * units + u5]) = (-150.0, -150.0, 1e-35);
                    let b_hn = v(units, 1.0);
                    let mut gates = vec![f32::NAN; steps * gw];
                    gemm_packed_bias(steps, &x, k, &wi, &mut gates, gw, &bias);
                    let mut h = h0.clone();
                    let mut gh = vec![0.0; gw];
                    for s in 0..steps {
                        gemv_packed(&h, &wp, &mut gh, false);
                        gru_lbr_state(&gates[s * gw..(s + 1) * gw], &gh, &b_hn, &mut h);
                        want[s * units..(s + 1) * units].copy_from_slice(&h);
                    }
                    for (form, rev) in FORMS.into_iter().flat_map(|f| [(f, false), (f, true)]) {
                        let mut hf = h0.clone();
                        let mut got = vec![f32::NAN; steps * units];
                        let fused = StreamLayer::with_form(
                            CellKind::GruLbr,
                            units,
                            k,
                            &w_ih,
                            &w_hh,
                            &bias,
                            &b_hn,
                            form,
                        );
                        let expect = fused_here(CellKind::GruLbr);
                        assert_eq!(fused.is_some(), expect);
                        if let Some(f) = &fused {
                            f.run(&x, steps, rev, &mut hf, &mut [], &mut got);
                        }
                        let what =
                            format!("gru H={units} I={k} steps={steps} chain={form:?} rev={rev}");
                        if expect {
                            assert_eq!(bits_of(&got), bits_of(&want), "{what}");
                            assert_eq!(bits_of(&hf), bits_of(&h), "{what}");
                        } else {
                            assert!(hf == h0 && got.iter().all(|x| x.is_nan()), "{what}");
                        }
                    }
                }
            }
        })
    });
}

/// A layer whose input weights take it over 32 KiB runs its blocks in the `WIDE` kernel
/// where its tier has one for its size (`stream_kernel`), so that the bit-for-bit test
/// above runs those kernels on the sizes it lists; a layer of one input never takes it.
#[test]
fn wide_input_layers_run_their_blocks_in_the_wide_kernels() {
    in_both_avx512_bodies(|| {
        let mut rnd = uniform(29u32);
        for (cell, units) in [
            (CellKind::Lstm, 32),
            (CellKind::Lstm, 40),
            (CellKind::GruLbr, 40),
            (CellKind::GruLbr, 48),
        ] {
            for k in [1, units] {
                let (w_ih, w_hh, bias, b_hn) = layer_weights(&mut rnd, cell, units, k);
                let Some(layer) = StreamLayer::new(cell, units, k, &w_ih, &w_hh, &bias, &b_hn)
                else {
                    continue;
                };
                #[cfg(target_arch = "x86_64")]
                let expect = k > 1
                    && match (kernel_tier(), cell, units) {
                        (Tier::Avx2 | Tier::Avx, CellKind::Lstm, 32) => false,
                        (Tier::Avx2 | Tier::Avx, ..) => true,
                        (Tier::Avx512, CellKind::Lstm, 40) => vl256_here(),
                        (Tier::Avx512, CellKind::GruLbr, 48) => true,
                        _ => false,
                    };
                #[cfg(not(target_arch = "x86_64"))]
                let expect = false;
                assert_eq!(
                    layer.has_block_kernel(),
                    expect,
                    "{cell:?} {units} units, {k} inputs"
                );
            }
        }
    });
}

/// A head run inside a fused kernel (`run_head`) gives the bits of the kernel's `h` rows
/// followed by the process tier's `dense_narrow` on them, for each cell, size and
/// number of outputs up to the narrow limit; the state ends the same either way.
#[test]
fn a_head_inside_the_stream_kernel_is_the_dense_head_bit_for_bit() {
    in_both_avx512_bodies(a_head_inside_the_stream_kernel_is_the_dense_head_here);
}

/// [`a_head_inside_the_stream_kernel_is_the_dense_head_bit_for_bit`] with the kernels
/// chosen as this thread chooses them.
fn a_head_inside_the_stream_kernel_is_the_dense_head_here() {
    let mut rnd = uniform(29u32);
    let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for cell in [CellKind::Lstm, CellKind::GruLbr] {
        for (units, k) in [
            (8, 1),
            (16, 1),
            (32, 3),
            (16, 7),
            (64, 2),
            (96, 1),
            (128, 2),
            (4, 1),
            (12, 2),
            (20, 1),
            (36, 1),
            (100, 2),
            (52, 1),
            (80, 2),
            (112, 1),
            // The AVX-512 tier's 8-lane sizes, whose heads sum as its 16-lane ones.
            (24, 1),
            (40, 2),
            (56, 1),
            (72, 1),
        ] {
            let (w_ih, w_hh, bias, b_hn) = layer_weights(&mut rnd, cell, units, k);
            let mut v = |n: usize, s: f32| (0..n).map(|_| rnd() * s).collect::<Vec<f32>>();
            let Some(mut layer) = StreamLayer::new(cell, units, k, &w_ih, &w_hh, &bias, &b_hn)
            else {
                // No fused kernel for this size here (the other test checks which).
                assert!(
                    !stream_fused(cell, units, k),
                    "{cell:?} H={units}: no kernel"
                );
                continue;
            };
            let narrow = dense_narrow_kernel(1).expect("SIMD tiers have dot products");
            for (o, steps) in [(1, 1), (2, 5), (3, 4), (8, 3)] {
                let (w, hb, x) = (v(o * units, 1.0), v(o, 1.0), v(steps * k, 2.0));
                let (h0, c0) = (v(units, 1.0), v(units, 2.0));
                let c_or_none = |c: &[f32]| {
                    if cell == CellKind::Lstm {
                        c.to_vec()
                    } else {
                        vec![]
                    }
                };

                let (mut h, mut c) = (h0.clone(), c_or_none(&c0));
                let mut rows = vec![f32::NAN; steps * units];
                layer.run(&x, steps, false, &mut h, &mut c, &mut rows);
                let mut want = vec![f32::NAN; steps * o];
                // SAFETY: `dense_narrow_kernel` gives the process tier's kernel (detected).
                unsafe { narrow(&rows, steps, units, &w, o, &hb, &mut want) };

                let (mut hh, mut ch) = (h0.clone(), c_or_none(&c0));
                let mut got = vec![f32::NAN; steps * o];
                // The other sweep direction: the same bits.
                layer.set_head(&w, &hb);
                layer.run_head(&x, steps, true, &mut hh, &mut ch, &mut got);
                let what = format!("{cell:?} H={units} I={k} o={o} steps={steps}");
                assert_eq!(bits_of(&got), bits_of(&want), "{what}");
                assert_eq!(bits_of(&hh), bits_of(&h), "{what}");
                assert_eq!(bits_of(&ch), bits_of(&c), "{what}");
            }
        }
    }
}

#[test]
fn reversed_group_order_gives_the_same_bits() {
    in_every_layout(|| {
        let mut rnd = uniform(11u32);
        let tiers = available_tiers();
        // Several groups (n > GROUP * NR), a partial last group, inner sizes past KC.
        for &(m, k, n) in &[(1, 40, 300), (7, 300, 260), (13, 600, 513), (32, 257, 129)] {
            let (lda, ldc) = (k + 3, n + 1);
            let a: Vec<f32> = (0..m * lda).map(|_| rnd()).collect();
            let w: Vec<f32> = (0..k * n).map(|_| rnd()).collect();
            let bias: Vec<f32> = (0..n).map(|_| rnd()).collect();
            let c0: Vec<f32> = (0..m * ldc).map(|_| rnd()).collect();
            let packed = PackedB::from_rows(&w, k, n, n);
            for start in [Start::Zero, Start::Acc, Start::Bias(&bias)] {
                let mut simd = Vec::new();
                for &tier in &tiers {
                    let mut fwd = c0.clone();
                    run(tier, m, &a, lda, &packed, &mut fwd, ldc, start, false);
                    let mut rev = c0.clone();
                    run(tier, m, &a, lda, &packed, &mut rev, ldc, start, true);
                    let what = format!("{tier:?} {start:?} m={m} k={k} n={n}");
                    assert_eq!(bits(&rev), bits(&fwd), "{what}");
                    if fused_multiply_add(tier) {
                        simd.push((tier, fwd));
                    }
                }
                // AVX2 walks the inner chunks outside the groups, AVX-512 inside: each
                // element is still the same FMAs in the same order. (SSE4.1 multiplies
                // and adds apart, rounding twice: its own bits.)
                for (tier, c) in &simd[1.min(simd.len())..] {
                    assert_eq!(bits(c), bits(&simd[0].1), "{tier:?} vs {:?}", simd[0].0);
                }
            }
        }
    });
}

#[test]
fn bias_start_is_fill_then_accumulate_bit_for_bit() {
    in_every_layout(|| {
        let mut rnd = uniform(7u32);
        for tier in available_tiers() {
            // Row counts past each tier's row block, widths with partial panels and
            // groups, inner sizes past KC (later chunks accumulate).
            for &(m, k, n) in &[
                (1, 3, 5),
                (2, 0, 40),
                (5, 17, 33),
                (8, 64, 128),
                (9, 300, 70),
                (14, 5, 260),
                (31, 129, 97),
            ] {
                let (lda, ldc) = (k + 1, n + 2);
                let a: Vec<f32> = (0..m * lda).map(|_| rnd()).collect();
                let w: Vec<f32> = (0..k * n).map(|_| rnd()).collect();
                let bias: Vec<f32> = (0..n).map(|_| rnd()).collect();
                let packed = PackedB::from_rows(&w, k, n, n);
                let mut want = vec![f32::NAN; m * ldc];
                for row in want.chunks_mut(ldc) {
                    row[..n].copy_from_slice(&bias);
                }
                gemm_packed_with(tier, m, &a, lda, &packed, &mut want, ldc, true);
                let mut got = vec![f32::NAN; m * ldc];
                run(
                    tier,
                    m,
                    &a,
                    lda,
                    &packed,
                    &mut got,
                    ldc,
                    Start::Bias(&bias),
                    false,
                );
                for i in 0..m {
                    let (g, w) = (&got[i * ldc..][..n], &want[i * ldc..][..n]);
                    assert_eq!(bits(g), bits(w), "{tier:?} m={m} k={k} n={n} row {i}");
                    // The padding between rows is not touched.
                    assert!(got[i * ldc + n..(i + 1) * ldc].iter().all(|v| v.is_nan()));
                }
            }
        }
    });
}

#[test]
fn every_tier_matches_the_naive_product() {
    in_every_layout(|| {
        let mut rnd = uniform(1u32);
        for tier in available_tiers() {
            for &(m, k, n) in &[
                (1, 1, 1),
                (1, 8, 32),
                (3, 5, 7),
                (8, 13, 33),
                (9, 32, 64),
                (17, 40, 100),
                (2, 0, 5),
                (5, 64, 31),
                (11, 3, 96),
                (1, 128, 512),
                (1, 7, 200),
                (2, 9, 130),
                (3, 4, 97),
                (4, 6, 260),
                (12, 5, 160),
                (13, 3, 64),
                (8, 19, 300),
                (31, 7, 520),
                (7, 300, 70),
                (6, 260, 16),
                (20, 17, 24),
                (301, 260, 70),
            ] {
                let lda = k + 3;
                let a: Vec<f32> = (0..m * lda).map(|_| rnd()).collect();
                let b: Vec<f32> = (0..k * n).map(|_| rnd()).collect();
                let want = naive(m, k, n, &a, lda, &b);
                let packed = PackedB::from_rows(&b, k, n, n);
                // Same B given as Wᵀ.
                let w: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
                assert_eq!(PackedB::from_transposed(&w, n, k), packed);
                let ldc = n + 2;
                for accumulate in [false, true] {
                    let mut c = vec![f32::NAN; m * ldc];
                    for i in 0..m {
                        for j in 0..n {
                            c[i * ldc + j] = if accumulate { 1.0 } else { f32::NAN };
                        }
                    }
                    gemm_packed_with(tier, m, &a, lda, &packed, &mut c, ldc, accumulate);
                    for i in 0..m {
                        for j in 0..n {
                            let w = want[i * n + j] + if accumulate { 1.0 } else { 0.0 };
                            let got = c[i * ldc + j] as f64;
                            assert!(
                                (got - w).abs() < 1e-5 * (1.0 + k as f64),
                                "{tier:?} {m}x{k}x{n} ({i},{j}): {got} vs {w}"
                            );
                        }
                        // Padding columns untouched.
                        for j in n..ldc {
                            assert!(
                                c[i * ldc + j].is_nan() || i == m - 1,
                                "{tier:?} wrote past n"
                            );
                        }
                    }
                }
            }
        }
    });
}

#[test]
fn gemv_matches_the_naive_product() {
    in_every_layout(|| {
        for &(k, n) in &[
            (1, 1),
            (2, 32),
            (7, 33),
            (8, 128),
            (33, 130),
            (128, 512),
            (13, 97),
            (0, 5),
        ] {
            let x: Vec<f32> = (0..k).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
            let want = naive(1, k, n, &x, k, &b);
            let packed = PackedB::from_rows(&b, k, n, n);
            for accumulate in [false, true] {
                let mut y = vec![if accumulate { 0.5 } else { f32::NAN }; n + 3];
                y[n..].fill(7.0);
                gemv_packed(&x, &packed, &mut y, accumulate);
                for j in 0..n {
                    let w = want[j] + if accumulate { 0.5 } else { 0.0 };
                    assert!(
                        (y[j] as f64 - w).abs() < 1e-5 * (1.0 + k as f64),
                        "{k}x{n} col {j}"
                    );
                }
                assert!(y[n..].iter().all(|&v| v == 7.0), "wrote past n");
            }
        }
    });
}

#[test]
fn gemv2_is_the_input_gemm_then_the_gemv_bit_for_bit() {
    in_every_layout(|| {
        for &(k1, k2, n) in &[
            (1, 8, 32),
            (1, 16, 64),
            (3, 32, 96),
            (16, 64, 256),
            (2, 7, 33),
            (5, 128, 384),
            (1, 33, 520),
        ] {
            let x1: Vec<f32> = (0..k1).map(|i| (i as f32 * 0.7).sin()).collect();
            let x2: Vec<f32> = (0..k2).map(|i| (i as f32 * 0.37).cos()).collect();
            let w1: Vec<f32> = (0..k1 * n).map(|i| (i as f32 * 0.11).cos()).collect();
            let w2: Vec<f32> = (0..k2 * n).map(|i| (i as f32 * 0.13).sin()).collect();
            let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.01 - 1.0).collect();
            let (p1, p2) = (
                PackedB::from_rows(&w1, k1, n, n),
                PackedB::from_rows(&w2, k2, n, n),
            );
            let mut want = vec![f32::NAN; n];
            gemm_packed_bias(1, &x1, k1, &p1, &mut want, n, &bias);
            let mut first = vec![f32::NAN; n + 3];
            gemv_packed_bias(&bias, &x1, &p1, &mut first);
            assert_eq!(bits(&first[..n]), bits(&want), "input side {k1},{n}");
            assert!(first[n..].iter().all(|v| v.is_nan()), "wrote past n");
            gemv_packed(&x2, &p2, &mut want, true);
            for reverse in [false, true] {
                let mut y = vec![7.0f32; n + 3];
                gemv2_packed(&bias, &x1, &p1, &x2, &p2, &mut y, reverse);
                assert_eq!(bits(&y[..n]), bits(&want), "{k1},{k2},{n}");
                assert!(y[n..].iter().all(|&v| v == 7.0), "wrote past n");
                let mut z = vec![f32::NAN; n];
                gemm_packed_bias(1, &x1, k1, &p1, &mut z, n, &bias);
                gemv_packed_sweep(&x2, &p2, &mut z, true, reverse);
                assert_eq!(bits(&z), bits(&want), "sweep {reverse}: {k1},{k2},{n}");
            }
        }
    });
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A packed B over `PREFETCH_ABOVE_BYTES`: the AVX-512 kernel prefetches each next
/// chunk of B while it works (in the row blocks' calls, or in the leftover rows' first
/// call when there is no row block), one line or several per inner step. The
/// prefetch is a hint: every row must have the bits it has alone, the AVX-512 bits
/// must be AVX2's (which never prefetches), and all must match the naive product.
#[test]
fn prefetching_a_large_b_changes_no_bit() {
    in_every_layout(|| {
        let mut rnd = uniform(23u32);
        // 1.2 MB of panels (1000 columns pad to 1024); inner size past KC; 13 rows: two
        // row blocks and a leftover (several lines a step), 4 rows: leftover only;
        // several groups, walked both ways.
        let (k, n) = (300, 1000);
        let b: Vec<f32> = (0..k * n).map(|_| rnd()).collect();
        let packed = PackedB::from_rows(&b, k, n, n);
        assert!(packed.panels().len() * 4 > PREFETCH_ABOVE_BYTES);
        for m in [13, 4] {
            let a: Vec<f32> = (0..m * k).map(|_| rnd()).collect();
            let want = naive(m, k, n, &a, k, &b);
            for reverse in [false, true] {
                let mut simd: Vec<(Tier, Vec<f32>)> = Vec::new();
                for tier in available_tiers() {
                    let mut all = vec![f32::NAN; m * n];
                    run(tier, m, &a, k, &packed, &mut all, n, Start::Zero, reverse);
                    for i in 0..m {
                        let mut one = vec![f32::NAN; n];
                        run(
                            tier,
                            1,
                            &a[i * k..],
                            k,
                            &packed,
                            &mut one,
                            n,
                            Start::Zero,
                            reverse,
                        );
                        let row = &all[i * n..(i + 1) * n];
                        assert_eq!(bits(row), bits(&one), "{tier:?} m={m} row {i}");
                        for (j, &v) in row.iter().enumerate() {
                            let w = want[i * n + j];
                            assert!((v as f64 - w).abs() < 1e-5 * k as f64, "{tier:?} ({i},{j})");
                        }
                    }
                    if fused_multiply_add(tier) {
                        simd.push((tier, all));
                    }
                }
                for (tier, c) in &simd[1.min(simd.len())..] {
                    assert_eq!(
                        bits(c),
                        bits(&simd[0].1),
                        "m={m}: {tier:?} vs {:?}",
                        simd[0].0
                    );
                }
            }
        }
    });
}

/// Each row's bits alone are its bits among others: also across the main loop's row
/// blocks (`microkernel::row_block`: 126 rows of a 256-row chunk, so 260 rows of `k =
/// 300` make three blocks, the 44-row chunk one, and two rows left over).
#[test]
fn rows_do_not_depend_on_the_rest_of_the_call() {
    in_every_layout(|| {
        for (m, k, n) in [(20, 37, 70), (260, 300, 70)] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 31) % 17) as f32 * 0.1 - 0.8)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 7) % 13) as f32 * 0.05 - 0.3)
                .collect();
            let packed = PackedB::from_rows(&b, k, n, n);
            for tier in available_tiers() {
                let mut all = vec![0.0; m * n];
                gemm_packed_with(tier, m, &a, k, &packed, &mut all, n, false);
                for i in 0..m {
                    let mut one = vec![0.0; n];
                    gemm_packed_with(tier, 1, &a[i * k..], k, &packed, &mut one, n, false);
                    assert!(
                        one.iter()
                            .zip(&all[i * n..])
                            .all(|(x, y)| x.to_bits() == y.to_bits()),
                        "{tier:?} {m}x{k}x{n}: row {i}"
                    );
                }
            }
        }
    });
}

/// The small dense kernel against an f64 sum (identity), its in-register sigmoid and tanh
/// against its tier's slice functions on its identity outputs (bit for bit; the AVX2
/// kernel's up to 8 outputs on AVX-512, `dense_small_tier`), and a row's
/// bits alone against the same row among others, for input counts 1..=16 and output
/// counts on both sides of each tier's vector widths; declines on the scalar tier.
#[test]
fn dense_small_is_the_sum_then_the_tiers_activation() {
    use crate::kernels::activation::{sigmoid_with, tanh_with};
    use crate::kernels::simd::DenseAct;
    let mut rnd = uniform(41u32);
    let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for k in 1..=16 {
        for o in [2, 7, 8, 9, 16, 17, 33, 64] {
            let rows = 3;
            let w: Vec<f32> = (0..o * k).map(|_| rnd()).collect();
            let bias: Vec<f32> = (0..o).map(|_| rnd()).collect();
            let x: Vec<f32> = (0..rows * k).map(|_| 3.0 * rnd()).collect();
            let ldw = dense_small_stride(o);
            let mut wt = vec![0.0; k * ldw];
            for j in 0..o {
                for p in 0..k {
                    wt[p * ldw + j] = w[j * k + p];
                }
            }
            let kernel = DenseSmall::for_layer(k, o);
            let run = |act: DenseAct, x: &[f32], rows: usize| {
                let mut y = vec![f32::NAN; rows * o];
                if let Some(kernel) = kernel {
                    kernel.rows(x, rows, k, &wt, &bias, act, &mut y);
                }
                (kernel.is_some(), y)
            };
            let (ran, lin) = run(DenseAct::Identity, &x, rows);
            assert_eq!(ran, kernel_tier() != Tier::Scalar, "k={k} o={o}");
            if !ran {
                assert!(lin.iter().all(|v| v.is_nan()), "k={k} o={o}: written");
                continue;
            }
            for r in 0..rows {
                for j in 0..o {
                    let (wj, xr) = (&w[j * k..(j + 1) * k], &x[r * k..(r + 1) * k]);
                    let want = bias[j] as f64
                        + wj.iter()
                            .zip(xr)
                            .map(|(a, b)| *a as f64 * *b as f64)
                            .sum::<f64>();
                    let mass = bias[j].abs() as f64
                        + wj.iter()
                            .zip(xr)
                            .map(|(a, b)| (a * b).abs() as f64)
                            .sum::<f64>();
                    let got = lin[r * o + j] as f64;
                    assert!(
                        (got - want).abs() <= 1e-6 * mass,
                        "k={k} o={o}: {got} vs {want}"
                    );
                }
                let (_, one) = run(DenseAct::Identity, &x[r * k..(r + 1) * k], 1);
                assert_eq!(
                    bits_of(&one),
                    bits_of(&lin[r * o..(r + 1) * o]),
                    "k={k} o={o}"
                );
            }
            // The activations of the tier whose kernel ran (AVX2's up to 8 outputs).
            let tier = dense_small_tier(o);
            let (mut s, mut t) = (lin.clone(), lin.clone());
            sigmoid_with(tier, &mut s);
            tanh_with(tier, &mut t);
            assert_eq!(
                bits_of(&run(DenseAct::Sigmoid, &x, rows).1),
                bits_of(&s),
                "k={k} o={o}"
            );
            assert_eq!(
                bits_of(&run(DenseAct::Tanh, &x, rows).1),
                bits_of(&t),
                "k={k} o={o}"
            );
        }
    }
}

/// Which kernel runs a layer of each size (`stream_size`): its own, the next one up
/// padded where that was measured faster, or none.
#[test]
fn layers_between_the_kernels_sizes_take_the_next_one_where_it_pays() {
    in_both_avx512_bodies(kernel_sizes_here);
}

/// [`layers_between_the_kernels_sizes_take_the_next_one_where_it_pays`] with the kernels
/// chosen as this thread chooses them.
fn kernel_sizes_here() {
    type Sizes = (
        usize,
        Option<usize>,
        Option<usize>,
        Option<usize>,
        Option<usize>,
    );
    // (units, AVX-512 where its 8-lane kernels join its sizes, on AMD): where it differs.
    // (units, LSTM, GRU)
    let amd: &[(usize, Option<usize>, Option<usize>)] = &[
        (20, Some(24), Some(24)),
        (24, Some(24), Some(24)),
        (36, Some(40), Some(40)),
        (40, Some(40), Some(40)),
        (52, Some(56), None),
        (56, Some(56), Some(56)),
        (70, Some(72), Some(72)),
        (72, Some(72), Some(72)),
    ];
    let vl256 =
        |cell, units: usize, elsewhere: Option<usize>| match amd.iter().find(|a| a.0 == units) {
            Some(&(_, lstm, gru)) if vl256_here() => {
                if cell == CellKind::Lstm {
                    lstm
                } else {
                    gru
                }
            }
            _ => elsewhere,
        };
    let want: &[Sizes] = &[
        // (units, AVX2 LSTM, AVX2 GRU, AVX-512 both, SSE4.1 and NEON both)
        (1, Some(8), Some(8), Some(8), Some(4)),
        (5, Some(8), Some(8), Some(8), Some(8)),
        (8, Some(8), Some(8), Some(8), Some(8)),
        (12, Some(16), Some(16), Some(16), Some(16)),
        (20, Some(24), Some(24), Some(32), Some(24)),
        (24, Some(24), Some(24), Some(32), Some(24)),
        (36, Some(40), Some(40), Some(48), Some(40)),
        (40, Some(40), Some(40), Some(48), Some(40)),
        (44, Some(48), Some(48), Some(48), Some(48)),
        (52, Some(56), None, None, None),
        (56, Some(56), Some(64), Some(64), Some(64)),
        (70, Some(72), Some(72), None, None),
        (72, Some(72), Some(72), None, None),
        (76, Some(80), Some(80), Some(80), None),
        (89, None, None, None, None),
        (90, Some(96), Some(96), Some(96), Some(96)),
        (100, None, None, None, None),
        (108, Some(112), Some(112), Some(112), None),
        (120, Some(128), Some(128), Some(128), Some(128)),
        (129, None, None, None, None),
    ];
    for &(units, avx2_lstm, avx2_gru, avx512, sse41) in want {
        for cell in [CellKind::Lstm, CellKind::GruLbr] {
            let expect = match (kernel_tier(), cell) {
                (Tier::Avx2 | Tier::Avx, CellKind::Lstm) => avx2_lstm,
                (Tier::Avx2 | Tier::Avx, _) => avx2_gru,
                (Tier::Avx512, _) => vl256(cell, units, avx512),
                (Tier::Sse41 | Tier::Neon, _) => sse41,
                (Tier::Scalar, _) => None,
            };
            assert_eq!(stream_size(cell, units), expect, "{cell:?} H={units}");
        }
    }
    assert_eq!(stream_size(CellKind::Lstm, 0), None);
}

/// The AVX-512 tier's stream kernels in 256-bit registers (`avx2::vl256`, chosen on AMD)
/// give the 16-lane kernels' bits (padded to 32, 48 and 64 units where the layer has 24,
/// 40 or 56): `h`, `c`, the rows and a head inside the kernel, every step, in both
/// activations' forms and both sweep directions. Runs on any CPU with AVX-512VL (the
/// choice is forced both ways), so an Intel machine checks the AMD kernels too.
#[test]
#[cfg(target_arch = "x86_64")]
fn the_avx512_tiers_8_lane_stream_kernels_give_its_16_lane_bits() {
    if kernel_tier() != Tier::Avx512 || !std::arch::is_x86_feature_detected!("avx512vl") {
        return;
    }
    let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut rnd = uniform(41u32);
    for cell in [CellKind::Lstm, CellKind::GruLbr] {
        // The 16-lane kernels pad 24, 40 and 56 units (72: the general step, which
        // `fused_stream_steps_are_the_step_by_step_bits` checks against).
        for (units, k) in [16, 24, 40, 56].into_iter().flat_map(|u| [(u, 1), (u, 3)]) {
            let (w_ih, w_hh, bias, b_hn) = layer_weights(&mut rnd, cell, units, k);
            let mut v = |n: usize, s: f32| (0..n).map(|_| rnd() * s).collect::<Vec<f32>>();
            let (head_w, head_b) = (v(2 * units, 1.0), v(2, 1.0));
            let steps = 9;
            let x = v(steps * k, 2.0);
            let (h0, c0) = (v(units, 1.0), v(units, 2.0));
            for chain in [Some(true), Some(false)] {
                let mut runs = Vec::new();
                for vl256 in [false, true] {
                    VL256_OVERRIDE.with(|o| o.set(Some(vl256)));
                    let layer =
                        StreamLayer::with_form(cell, units, k, &w_ih, &w_hh, &bias, &b_hn, chain);
                    VL256_OVERRIDE.with(|o| o.set(None));
                    let mut layer = layer.expect("a kernel for these units on AVX-512");
                    let mut h = h0.clone();
                    let mut c = if cell == CellKind::Lstm {
                        c0.clone()
                    } else {
                        vec![]
                    };
                    let mut rows = vec![f32::NAN; steps * units];
                    layer.run(&x, steps, false, &mut h, &mut c, &mut rows);
                    layer.set_head(&head_w, &head_b);
                    let mut y = vec![f32::NAN; steps * 2];
                    layer.run_head(&x, steps, true, &mut h, &mut c, &mut y);
                    // One step at a time, as a per-sample caller runs it.
                    for st in 0..steps {
                        let xs = &x[st * k..(st + 1) * k];
                        layer.run_head(xs, 1, st % 2 == 1, &mut h, &mut c, &mut y[..2]);
                    }
                    runs.push((bits_of(&rows), bits_of(&y), bits_of(&h), bits_of(&c)));
                }
                assert_eq!(runs[0], runs[1], "{cell:?} H={units} k={k} chain={chain:?}");
            }
        }
    }
}
