//! A hand-written SVG line chart with a log-scale y axis (no plotting crate).

use std::fmt::Write;

/// One line of the chart.
pub struct Series {
    pub label: String,
    pub color: &'static str,
    pub dashed: bool,
    /// Thin, with markers at the points (sparse series).
    pub dotted: bool,
    /// (x, y) with y > 0; points with y <= 0 or not finite are left out (a gap).
    pub points: Vec<(f64, f64)>,
}

/// Colors by cell name, for stable legends.
pub fn color(cell: &str) -> &'static str {
    match cell {
        "rnn_tanh" => "#d62728",
        "rnn_relu" => "#ff7f0e",
        "lstm" => "#1f77b4",
        "gru" => "#2ca02c",
        _ => "#9467bd",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart as an SVG document.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    note: &str,
) -> String {
    let (w, h) = (760.0, 460.0);
    let (l, r, t, b) = (80.0, 180.0, 50.0, 60.0);
    let (pw, ph) = (w - l - r, h - t - b);
    let pts = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.1 > 0.0 && p.1.is_finite())
    };
    let x_max = pts().map(|p| p.0).fold(1.0f64, f64::max);
    let y_lo = pts().map(|p| p.1.log10().floor()).fold(0.0f64, f64::min);
    let y_hi = pts()
        .map(|p| p.1.log10().ceil())
        .fold(0.0f64, f64::max)
        .max(y_lo + 1.0);
    let sx = |x: f64| l + pw * x / x_max;
    // Half a decade of headroom so a line at the top value stays off the frame.
    let top = y_hi + 0.5;
    let sy = |y: f64| t + ph * (top - y.log10()) / (top - y_lo);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="14">{}</text>"#,
        w / 2.0,
        esc(title)
    );
    // Decade grid lines and labels.
    let step = ((y_hi - y_lo) / 10.0).ceil().max(1.0);
    let mut d = y_hi;
    while d >= y_lo {
        let y = sy(10f64.powf(d));
        let _ = writeln!(
            s,
            r##"<line x1="{l}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/>"##,
            l + pw
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">1e{d}</text>"#,
            l - 6.0,
            y + 4.0
        );
        d -= step;
    }
    // X ticks.
    let xt = if x_max > 50.0 {
        10.0
    } else if x_max > 20.0 {
        5.0
    } else {
        1.0
    };
    let mut x = 0.0;
    while x <= x_max + 1e-9 {
        let px = sx(x);
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{}" x2="{px:.1}" y2="{}" stroke="#999"/>"##,
            t + ph,
            t + ph + 5.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{px:.1}" y="{}" text-anchor="middle">{x}</text>"#,
            t + ph + 18.0
        );
        x += xt;
    }
    let _ = writeln!(
        s,
        r##"<rect x="{l}" y="{t}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        l + pw / 2.0,
        h - 18.0,
        esc(x_label)
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">{}</text>"#,
        t + ph / 2.0,
        t + ph / 2.0,
        esc(y_label)
    );
    // Lines: a gap wherever a value is not positive.
    for (i, se) in series.iter().enumerate() {
        let dash = if se.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let width = if se.dotted { 1.2 } else { 2.0 };
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for &(x, y) in &se.points {
            if y > 0.0 && y.is_finite() {
                runs.last_mut().expect("non-empty").push((x, y));
            } else if !runs.last().expect("non-empty").is_empty() {
                runs.push(Vec::new());
            }
        }
        for run in runs.iter().filter(|r| !r.is_empty()) {
            let p: Vec<String> = run
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{}" stroke-width="{width}"{dash} points="{}"/>"#,
                se.color,
                p.join(" ")
            );
            if se.dotted {
                for &(x, y) in run {
                    let _ = writeln!(
                        s,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                        sx(x),
                        sy(y),
                        se.color
                    );
                }
            }
        }
        let ly = t + 10.0 + 20.0 * i as f64;
        let lx = l + pw + 12.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="{width}"{dash}/>"#,
            lx + 24.0,
            se.color
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}">{}</text>"#,
            lx + 30.0,
            ly + 4.0,
            esc(&se.label)
        );
    }
    if !note.is_empty() {
        let _ = writeln!(
            s,
            r##"<text x="{l}" y="{}" font-size="11" fill="#555">{}</text>"##,
            h - 4.0,
            esc(note)
        );
    }
    s.push_str("</svg>\n");
    s
}
