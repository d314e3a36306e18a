//! One SVG chart per report section, drawn with plotters.

use std::path::Path;

use plotters::prelude::*;

/// A named series of (x, y) points; series with the same `color` belong together (a
/// measurement and its prediction).
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) points: Vec<(f64, f64)>,
    pub(crate) dashed: bool,
    pub(crate) color: usize,
}

/// Axes of a line chart.
pub(crate) struct Axes<'a> {
    pub(crate) title: &'a str,
    pub(crate) x_label: &'a str,
    pub(crate) y_label: &'a str,
    pub(crate) log_x: bool,
    pub(crate) log_y: bool,
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Draws a section's chart into `out_dir/name`; the chart's file name, or `None` (with the
/// reason on stderr) when there was nothing to draw, so that a missing plot never costs the
/// section's tables.
pub(crate) fn save(
    out_dir: &Path,
    name: &str,
    draw: impl FnOnce(&Path) -> Result<(), String>,
) -> Option<String> {
    match draw(&out_dir.join(name)) {
        Ok(()) => Some(name.to_string()),
        Err(err) => {
            eprintln!("bench-report: plot {name} not drawn: {err}");
            None
        }
    }
}

/// Draws the series as lines with points; log axes where asked.
pub(crate) fn line_chart(path: &Path, axes: &Axes<'_>, series: &[Series]) -> Result<(), String> {
    let points = series.iter().flat_map(|series| series.points.iter());
    let (mut x_min, mut x_max, mut y_min, mut y_max) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if x_min > x_max {
        return Err(format!("{}: nothing to plot", axes.title));
    }
    // Linear y axes start at zero, so that bars of ratio read true; x axes fit the data.
    let widen = |min: f64, max: f64, log: bool, from_zero: bool| {
        if log {
            (min / 1.5, max * 1.5)
        } else {
            let pad = ((max - min) * 0.08).max(max.abs() * 0.05).max(1e-9);
            let low = if from_zero {
                (min - pad).min(0.0)
            } else {
                min - pad
            };
            (low, max + pad)
        }
    };
    // A log axis over less than a decade would show a single tick: such data reads better on a
    // linear one.
    let spans_decades = |min: f64, max: f64| min > 0.0 && max / min >= 10.0;
    let log_x = axes.log_x && spans_decades(x_min, x_max);
    let log_y = axes.log_y && spans_decades(y_min, y_max);
    let (x_min, x_max) = widen(x_min, x_max, log_x, false);
    let (y_min, y_max) = widen(y_min, y_max, log_y, true);
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|err| err.to_string())?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(axes.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70);
    macro_rules! draw {
        ($x:expr, $y:expr) => {{
            let mut chart = builder
                .build_cartesian_2d($x, $y)
                .map_err(|err| err.to_string())?;
            chart
                .configure_mesh()
                .x_label_formatter(&|value| tick(*value))
                .y_label_formatter(&|value| tick(*value))
                .y_labels(8)
                .x_desc(axes.x_label)
                .y_desc(axes.y_label)
                .draw()
                .map_err(|err| err.to_string())?;
            for series in series {
                let color = PALETTE[series.color % PALETTE.len()];
                let style = ShapeStyle::from(&color).stroke_width(2);
                let line = if series.dashed {
                    chart.draw_series(DashedLineSeries::new(
                        series.points.iter().copied(),
                        6,
                        4,
                        style,
                    ))
                } else {
                    chart.draw_series(LineSeries::new(series.points.iter().copied(), style))
                };
                line.map_err(|err| err.to_string())?
                    .label(series.name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
                chart
                    .draw_series(
                        series
                            .points
                            .iter()
                            .map(|&point| Circle::new(point, 3, color.filled())),
                    )
                    .map_err(|err| err.to_string())?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|err| err.to_string())?;
        }};
    }
    match (log_x, log_y) {
        (true, true) => draw!((x_min..x_max).log_scale(), (y_min..y_max).log_scale()),
        (true, false) => draw!((x_min..x_max).log_scale(), y_min..y_max),
        (false, true) => draw!(x_min..x_max, (y_min..y_max).log_scale()),
        (false, false) => draw!(x_min..x_max, y_min..y_max),
    }
    root.present().map_err(|err| err.to_string())
}

/// Draws one horizontal bar per labelled value, on a log axis when the values span decades.
pub(crate) fn bar_chart(
    path: &Path,
    title: &str,
    unit: &str,
    bars: &[(String, f64)],
) -> Result<(), String> {
    if bars.is_empty() {
        return Err(format!("{title}: nothing to plot"));
    }
    let max = bars
        .iter()
        .map(|(_, value)| *value)
        .fold(f64::MIN, f64::max);
    let min = bars
        .iter()
        .map(|(_, value)| *value)
        .fold(f64::MAX, f64::min);
    let log = min > 0.0 && max / min > 50.0;
    let height = 120 + 36 * bars.len() as u32;
    let root = SVGBackend::new(path, (800, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|err| err.to_string())?;
    let count = bars.len() as f64;
    let labels: Vec<String> = bars.iter().map(|(label, _)| label.clone()).collect();
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(260);
    let label_of = move |y: &f64| {
        let index = (count - 1.0 - y.round()) as usize;
        labels.get(index).cloned().unwrap_or_default()
    };
    macro_rules! draw {
        ($x:expr, $base:expr) => {{
            let mut chart = builder
                .build_cartesian_2d($x, -0.5..count - 0.5)
                .map_err(|err| err.to_string())?;
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(bars.len())
                .y_label_formatter(&label_of)
                .x_label_formatter(&|value| tick(*value))
                .x_desc(unit)
                .draw()
                .map_err(|err| err.to_string())?;
            chart
                .draw_series(bars.iter().enumerate().map(|(index, (_, value))| {
                    let y = count - 1.0 - index as f64;
                    let color = PALETTE[index % PALETTE.len()];
                    Rectangle::new([($base, y - 0.35), (*value, y + 0.35)], color.filled())
                }))
                .map_err(|err| err.to_string())?;
        }};
    }
    if log {
        draw!(((min / 2.0)..(max * 2.0)).log_scale(), min / 2.0)
    } else {
        draw!(0.0..max * 1.1, 0.0)
    }
    root.present().map_err(|err| err.to_string())
}

/// An axis tick as a reader wants it: whole numbers without a decimal point and with thousands
/// grouped (`10,000`, not `10000.0`), others to three significant digits.
fn tick(value: f64) -> String {
    if value.abs() >= 1.0 && (value - value.round()).abs() < 1e-9 * value.abs().max(1.0) {
        let rounded = value.round();
        let grouped = crate::stats::thousands(rounded.abs() as usize);
        return if rounded < 0.0 {
            format!("-{grouped}")
        } else {
            grouped
        };
    }
    if value == 0.0 {
        return "0".to_string();
    }
    let digits = (2 - value.abs().log10().floor() as i32).max(0) as usize;
    format!("{value:.digits$}")
}

#[cfg(test)]
mod tests {
    use super::tick;

    #[test]
    fn ticks_read_as_numbers_people_write() {
        assert_eq!(tick(10_000.0), "10,000");
        assert_eq!(tick(100.0), "100");
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(2.5), "2.50");
        assert_eq!(tick(0.125), "0.125");
        assert_eq!(tick(-3000.0), "-3,000");
    }
}
