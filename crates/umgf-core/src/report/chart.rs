//! The training curve as an SVG chart: train loss above, dev F1 below, on a shared epoch axis, with
//! named axes, ticks, a legend and the kept epoch (best dev F1) marked.
use std::fmt::Write as _;

/// One epoch of training as `metrics.json` records it.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct EpochPoint {
    pub epoch: usize,
    pub train_loss: f64,
    pub dev_f1: f64,
}

const WIDTH: f64 = 640.0;
const PANEL_HEIGHT: f64 = 170.0;
/// Room for the y-axis title and tick labels, the right edge, above (legend) and below (x labels).
const LEFT: f64 = 78.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const GAP: f64 = 46.0;
const LOSS_COLOUR: &str = "#1f77b4";
const F1_COLOUR: &str = "#d62728";
const KEPT_COLOUR: &str = "#2ca02c";

/// About five round ticks (1, 2 or 5 times a power of ten apart) covering `lo..=hi`.
pub fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (lo, hi) = if hi - lo < 1e-9 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let raw = (hi - lo) / 5.0;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power);
    let first = (lo / step).floor() * step;
    let mut out = Vec::new();
    let mut t = first;
    while t <= hi + step * 0.999 {
        out.push((t / step).round() * step);
        t += step;
    }
    out
}

fn label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round())
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').to_owned()
    }
}

/// One panel: the series' line and points, y ticks and title; x positions shared by the caller.
fn panel(svg: &mut String, top: f64, title: &str, colour: &str, xs: &[f64], values: &[f64]) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let ticks = ticks(lo, hi);
    let (t0, t1) = (ticks[0], ticks[ticks.len() - 1]);
    let y = |v: f64| top + PANEL_HEIGHT - (v - t0) / (t1 - t0) * PANEL_HEIGHT;
    let right = WIDTH - RIGHT;
    for t in &ticks {
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{right}" y1="{y:.1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{x:.1}" y="{ty:.1}" text-anchor="end" font-size="11">{l}</text>"##,
            y = y(*t),
            x = LEFT - 6.0,
            ty = y(*t) + 4.0,
            l = label(*t)
        );
    }
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{top}" width="{w}" height="{PANEL_HEIGHT}" fill="none" stroke="#888"/><text transform="translate(16 {mid:.1}) rotate(-90)" text-anchor="middle" font-size="12">{title}</text>"##,
        w = right - LEFT,
        mid = top + PANEL_HEIGHT / 2.0
    );
    let points: Vec<String> = xs
        .iter()
        .zip(values)
        .map(|(x, v)| format!("{x:.1},{:.1}", y(*v)))
        .collect();
    let _ = write!(
        svg,
        r##"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"##,
        points.join(" ")
    );
    for (x, v) in xs.iter().zip(values) {
        let _ = write!(
            svg,
            r##"<circle cx="{x:.1}" cy="{:.1}" r="3" fill="{colour}"><title>{}</title></circle>"##,
            y(*v),
            label((v * 100.0).round() / 100.0)
        );
    }
}

/// The chart, or `None` without epochs.
pub fn training_curve(epochs: &[EpochPoint], kept_epoch: Option<usize>) -> Option<String> {
    if epochs.is_empty() {
        return None;
    }
    let height = TOP + 2.0 * PANEL_HEIGHT + GAP + 44.0;
    let (first, last) = (
        epochs[0].epoch as f64,
        epochs[epochs.len() - 1].epoch as f64,
    );
    let span = (last - first).max(1.0);
    let plot = WIDTH - LEFT - RIGHT - 20.0;
    let x = |e: usize| LEFT + 10.0 + (e as f64 - first) / span * plot;
    let xs: Vec<f64> = epochs.iter().map(|p| x(p.epoch)).collect();
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" font-family="sans-serif" role="img" aria-label="Training curve">"##
    );
    let loss: Vec<f64> = epochs.iter().map(|p| p.train_loss).collect();
    let f1: Vec<f64> = epochs.iter().map(|p| p.dev_f1).collect();
    panel(
        &mut svg,
        TOP,
        "train loss (CRF NLL)",
        LOSS_COLOUR,
        &xs,
        &loss,
    );
    let lower = TOP + PANEL_HEIGHT + GAP;
    panel(&mut svg, lower, "dev F1 (%)", F1_COLOUR, &xs, &f1);
    // Epoch ticks under each panel, the axis title under the lower one.
    for p in epochs {
        for base in [TOP + PANEL_HEIGHT, lower + PANEL_HEIGHT] {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"##,
                x(p.epoch),
                base + 15.0,
                p.epoch
            );
        }
    }
    let _ = write!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12">epoch</text>"##,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        lower + PANEL_HEIGHT + 34.0
    );
    if let Some(kept) = kept_epoch.filter(|k| epochs.iter().any(|p| p.epoch == *k)) {
        for top in [TOP, lower] {
            let _ = write!(
                svg,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{:.1}" stroke="{KEPT_COLOUR}" stroke-dasharray="5 3" stroke-width="2"/>"##,
                top + PANEL_HEIGHT,
                x = x(kept)
            );
        }
    }
    // The legend, above the upper panel.
    let legend = [
        (LOSS_COLOUR, "train loss", false),
        (F1_COLOUR, "dev F1", false),
        (KEPT_COLOUR, "kept epoch (best dev F1)", true),
    ];
    let mut at = LEFT;
    for (colour, name, dashed) in legend {
        let dash = if dashed {
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        };
        let _ = write!(
            svg,
            r##"<line x1="{at}" x2="{:.1}" y1="18" y2="18" stroke="{colour}" stroke-width="2"{dash}/><text x="{:.1}" y="22" font-size="12">{name}</text>"##,
            at + 22.0,
            at + 27.0
        );
        at += 40.0 + 7.0 * name.len() as f64;
    }
    svg.push_str("</svg>");
    Some(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(74.1, 84.2), [70.0, 75.0, 80.0, 85.0]);
        assert_eq!(ticks(1.5, 9.4), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let flat = ticks(3.0, 3.0);
        assert!(flat[0] <= 3.0 && *flat.last().unwrap() >= 3.0 && flat.len() >= 2);
    }

    #[test]
    fn the_chart_names_its_axes_and_marks_the_kept_epoch() {
        let epochs: Vec<EpochPoint> = [(9.35, 74.1), (2.97, 80.3), (2.27, 84.2)]
            .iter()
            .enumerate()
            .map(|(i, &(train_loss, dev_f1))| EpochPoint {
                epoch: i + 1,
                train_loss,
                dev_f1,
            })
            .collect();
        let svg = training_curve(&epochs, Some(3)).unwrap();
        for text in [
            "epoch",
            "train loss (CRF NLL)",
            "dev F1 (%)",
            "kept epoch (best dev F1)",
        ] {
            assert!(svg.contains(text), "{text}");
        }
        assert_eq!(
            svg.matches("stroke-dasharray").count(),
            3,
            "two panels and the legend"
        );
        assert!(training_curve(&[], None).is_none());
    }
}
