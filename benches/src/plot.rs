//! Grouped bar charts as PNG (plotters, bitmap backend, no system font libraries).
//!
//! Text is drawn with `ab_glyph` from a TrueType file read at run time: the first that exists
//! of `$MAP_BENCH_FONT` and a few usual DejaVu / Liberation paths. Without one (or with
//! `MAP_BENCH_FONT=none`) the charts are drawn without any text (bars only) and a note is
//! printed.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};
use std::error::Error;
use std::path::Path;
use std::sync::OnceLock;

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
];

/// Register a font for "sans-serif" once; `true` if text can be drawn.
pub fn font_available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        let env = std::env::var("MAP_BENCH_FONT").ok();
        if env.as_deref() == Some("none") {
            return false;
        }
        let candidates = env
            .iter()
            .map(String::as_str)
            .chain(FONT_PATHS.iter().copied());
        for p in candidates {
            if let Ok(bytes) = std::fs::read(p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// One group of bars (one map): one value per series (thread count); `None` = not run.
pub struct Group {
    /// Label under the group.
    pub label: String,
    /// Values, one per series.
    pub values: Vec<Option<f64>>,
}

const COLORS: [RGBColor; 4] = [
    RGBColor(66, 133, 244),
    RGBColor(244, 160, 0),
    RGBColor(15, 157, 88),
    RGBColor(219, 68, 55),
];

/// Draw a grouped bar chart to `path` (PNG).
pub fn grouped_bars(
    path: &Path,
    title: &str,
    y_desc: &str,
    series: &[&str],
    groups: &[Group],
    highlight: Option<usize>,
) -> Result<(), Box<dyn Error>> {
    let text = font_available();
    let root = BitMapBackend::new(path, (1100, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let ymax = groups
        .iter()
        .flat_map(|g| g.values.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b))
        .max(1e-9)
        * 1.25;
    let n = groups.len().max(1) as f64;
    let mut builder = ChartBuilder::on(&root);
    builder
        .margin(20)
        .x_label_area_size(if text { 45 } else { 10 })
        .y_label_area_size(if text { 70 } else { 10 });
    if text {
        builder.caption(title, ("sans-serif", 21));
    }
    let mut chart = builder.build_cartesian_2d(0.0..n, 0.0..ymax)?;
    {
        let mut mesh = chart.configure_mesh();
        mesh.disable_x_mesh().x_labels(0);
        if text {
            mesh.y_desc(y_desc)
                .y_labels(10)
                .y_label_style(("sans-serif", 15))
                .axis_desc_style(("sans-serif", 16));
        } else {
            mesh.y_labels(0);
        }
        mesh.draw()?;
    }
    let ns = series.len().max(1) as f64;
    let width = 0.8 / ns;
    for (si, name) in series.iter().enumerate() {
        let color = COLORS[si % COLORS.len()];
        let rects = groups.iter().enumerate().filter_map(move |(gi, g)| {
            let v = g.values.get(si).copied().flatten()?;
            let x0 = gi as f64 + 0.1 + si as f64 * width;
            Some(Rectangle::new(
                [(x0, 0.0), (x0 + width * 0.95, v)],
                color.filled(),
            ))
        });
        let drawn = chart.draw_series(rects)?;
        if text {
            drawn.label(*name).legend(move |(x, y)| {
                Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled())
            });
        }
    }
    if text {
        let style = TextStyle::from(("sans-serif", 13).into_font())
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        for (gi, g) in groups.iter().enumerate() {
            for (si, v) in g.values.iter().enumerate() {
                let x = gi as f64 + 0.1 + si as f64 * width + width * 0.475;
                let (label, y) = match v {
                    Some(v) => (format_value(*v), *v),
                    None => ("not run".to_string(), 0.0),
                };
                chart.draw_series(std::iter::once(Text::new(label, (x, y), style.clone())))?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        draw_group_labels(&root, &chart, groups, highlight)?;
    }
    root.present()?;
    Ok(())
}

fn format_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn draw_group_labels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    groups: &[Group],
    highlight: Option<usize>,
) -> Result<(), Box<dyn Error>>
where
    DB::ErrorType: 'static,
{
    for (gi, g) in groups.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(gi as f64 + 0.5, 0.0));
        let size = if highlight == Some(gi) { 17 } else { 15 };
        let color = if highlight == Some(gi) { RED } else { BLACK };
        let style = TextStyle::from(("sans-serif", size).into_font())
            .color(&color)
            .pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new(g.label.clone(), (px, py + 10), style))?;
    }
    Ok(())
}
