//! The training curve as a chart: train loss above, dev F1 below, on a shared epoch axis, with
//! named axes, ticks, a legend and the kept epoch (best dev F1) marked. One layout on a
//! [`Canvas`], drawn as SVG in the HTML report and as `curve.png` by `train`.
use super::canvas::{Anchor, Canvas, Colour, Mark, text_width};

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
const TICK_SIZE: f64 = 11.0;
const TITLE_SIZE: f64 = 12.0;
const LOSS_COLOUR: Colour = Colour(0x1f, 0x77, 0xb4);
const F1_COLOUR: Colour = Colour(0xd6, 0x27, 0x28);
const KEPT_COLOUR: Colour = Colour(0x2c, 0xa0, 0x2c);
const GRID_COLOUR: Colour = Colour(0xe5, 0xe5, 0xe5);
const FRAME_COLOUR: Colour = Colour(0x88, 0x88, 0x88);

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

fn text(at: (f64, f64), text: impl Into<String>, size: f64, anchor: Anchor) -> Mark {
    Mark::Text {
        at,
        text: text.into(),
        size,
        anchor,
        rotated: false,
    }
}

fn line(from: (f64, f64), to: (f64, f64), colour: Colour, width: f64, dashed: bool) -> Mark {
    Mark::Line {
        from,
        to,
        colour,
        width,
        dashed,
    }
}

/// One panel: y ticks and title, the kept epoch's line (at `kept_x`) and the series' line and
/// points over it; x positions shared by the caller.
fn panel(
    chart: &mut Canvas,
    top: f64,
    title: &str,
    colour: Colour,
    xs: &[f64],
    values: &[f64],
    kept_x: Option<f64>,
) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let ticks = ticks(lo, hi);
    let (t0, t1) = (ticks[0], ticks[ticks.len() - 1]);
    let y = |v: f64| top + PANEL_HEIGHT - (v - t0) / (t1 - t0) * PANEL_HEIGHT;
    let right = WIDTH - RIGHT;
    for t in &ticks {
        chart.push(line((LEFT, y(*t)), (right, y(*t)), GRID_COLOUR, 1.0, false));
        chart.push(text(
            (LEFT - 6.0, y(*t) + 4.0),
            label(*t),
            TICK_SIZE,
            Anchor::End,
        ));
    }
    chart.push(Mark::Frame {
        corner: (LEFT, top),
        size: (right - LEFT, PANEL_HEIGHT),
        colour: FRAME_COLOUR,
    });
    chart.push(Mark::Text {
        at: (20.0, top + PANEL_HEIGHT / 2.0),
        text: title.to_owned(),
        size: TITLE_SIZE,
        anchor: Anchor::Middle,
        rotated: true,
    });
    if let Some(x) = kept_x {
        chart.push(line(
            (x, top),
            (x, top + PANEL_HEIGHT),
            KEPT_COLOUR,
            2.0,
            true,
        ));
    }
    chart.push(Mark::Polyline {
        points: xs.iter().zip(values).map(|(x, v)| (*x, y(*v))).collect(),
        colour,
        width: 2.0,
    });
    for (x, v) in xs.iter().zip(values) {
        chart.push(Mark::Dot {
            at: (*x, y(*v)),
            radius: 3.0,
            colour,
            title: label((v * 100.0).round() / 100.0),
        });
    }
}

/// The chart; without epochs, a canvas that says so.
pub fn training_curve(epochs: &[EpochPoint], kept_epoch: Option<usize>) -> Canvas {
    let height = TOP + 2.0 * PANEL_HEIGHT + GAP + 44.0;
    let mut chart = Canvas::new(WIDTH, height, "Training curve");
    let (Some(first), Some(last)) = (epochs.first(), epochs.last()) else {
        chart.push(text(
            (WIDTH / 2.0, height / 2.0),
            "no epochs trained",
            TITLE_SIZE,
            Anchor::Middle,
        ));
        return chart;
    };
    let first = first.epoch as f64;
    let span = (last.epoch as f64 - first).max(1.0);
    let plot = WIDTH - LEFT - RIGHT - 20.0;
    let x = |e: usize| LEFT + 10.0 + (e as f64 - first) / span * plot;
    let xs: Vec<f64> = epochs.iter().map(|p| x(p.epoch)).collect();
    let loss: Vec<f64> = epochs.iter().map(|p| p.train_loss).collect();
    let f1: Vec<f64> = epochs.iter().map(|p| p.dev_f1).collect();
    let kept_x = kept_epoch
        .filter(|k| epochs.iter().any(|p| p.epoch == *k))
        .map(x);
    // The loss is the CRF's negative log-likelihood, averaged over the epoch's tweets.
    let loss_title = "loss (nats / tweet)";
    panel(&mut chart, TOP, loss_title, LOSS_COLOUR, &xs, &loss, kept_x);
    let lower = TOP + PANEL_HEIGHT + GAP;
    panel(&mut chart, lower, "dev F1 (%)", F1_COLOUR, &xs, &f1, kept_x);
    // Epoch ticks under each panel, the axis title under the lower one.
    for p in epochs {
        for base in [TOP + PANEL_HEIGHT, lower + PANEL_HEIGHT] {
            chart.push(text(
                (x(p.epoch), base + 15.0),
                p.epoch.to_string(),
                TICK_SIZE,
                Anchor::Middle,
            ));
        }
    }
    let middle = LEFT + (WIDTH - LEFT - RIGHT) / 2.0;
    chart.push(text(
        (middle, lower + PANEL_HEIGHT + 34.0),
        "epoch",
        TITLE_SIZE,
        Anchor::Middle,
    ));
    // The legend, above the upper panel.
    let legend = [
        (LOSS_COLOUR, "train loss (CRF NLL)", false),
        (F1_COLOUR, "dev F1", false),
        (KEPT_COLOUR, "kept epoch (best dev F1)", true),
    ];
    let mut at = LEFT;
    for (colour, name, dashed) in legend {
        chart.push(line((at, 18.0), (at + 22.0, 18.0), colour, 2.0, dashed));
        chart.push(text((at + 27.0, 22.0), name, TITLE_SIZE, Anchor::Start));
        at += 27.0 + text_width(name, TITLE_SIZE) + 18.0;
    }
    chart
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
        let chart = training_curve(&epochs, Some(3));
        let svg = chart.to_svg();
        for text in [
            "epoch",
            "train loss (CRF NLL)",
            "loss (nats / tweet)",
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
        assert!(
            training_curve(&[], None)
                .to_svg()
                .contains("no epochs trained")
        );
        // The PNG shows the same: the series' colours and dark text at the axis title's place.
        let png = chart.to_png(2.0);
        assert_eq!(png.dimensions(), (1280, 940));
        let dark_under_the_x_axis = (900..922)
            .flat_map(|y| (660..740).map(move |x| (x, y)))
            .filter(|&(x, y)| png.get_pixel(x, y).0.iter().all(|c| *c < 100))
            .count();
        assert!(
            dark_under_the_x_axis > 50,
            "the word epoch: {dark_under_the_x_axis}"
        );
        for colour in [LOSS_COLOUR, F1_COLOUR, KEPT_COLOUR] {
            let rgb = image::Rgb([colour.0, colour.1, colour.2]);
            assert!(png.pixels().any(|p| *p == rgb), "{colour:?}");
        }
    }
}
