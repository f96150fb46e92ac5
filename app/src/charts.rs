//! Charts drawn on the server as SVG with plotters, readable without JavaScript. Floats
//! appear here only to place pixels; amounts come in as exact nano-units.

use plotters::prelude::*;

use crate::core::money::Money;
use crate::core::portal::DailySpend;
use crate::core::store::DailyUsage;

const PALETTE: [RGBColor; 8] = [
    RGBColor(36, 84, 214),
    RGBColor(217, 119, 6),
    RGBColor(22, 163, 74),
    RGBColor(190, 24, 93),
    RGBColor(124, 58, 237),
    RGBColor(8, 145, 178),
    RGBColor(100, 116, 139),
    RGBColor(202, 138, 4),
];

/// Exact nano-units to dollars for plotting only.
#[allow(clippy::float_arithmetic)]
fn dollars(nanos: i64) -> f64 {
    nanos as f64 / 1e9
}

/// Spend per day for `days` days from `first_day`, stacked by model.
pub fn spend_by_model(daily: &[DailyUsage], first_day: i64, days: usize) -> Result<String, String> {
    let spend: Vec<DailySpend> = daily
        .iter()
        .map(|d| DailySpend {
            day: d.day,
            series: d.model.clone(),
            cost: d.cost,
        })
        .collect();
    stacked_spend(&spend, first_day, days, "model")
}

/// Spend per day for `days` days from `first_day`, stacked by series (`by` names what a
/// series is: "model", "key"). Each day carries a `<title>` with its figures, so hovering
/// shows them with or without JavaScript.
#[allow(clippy::float_arithmetic)]
pub fn stacked_spend(
    daily: &[DailySpend],
    first_day: i64,
    days: usize,
    by: &str,
) -> Result<String, String> {
    let mut names: Vec<&str> = daily.iter().map(|d| d.series.as_str()).collect();
    names.sort();
    names.dedup();
    let span = i64::try_from(days).unwrap_or(30);
    let mut totals = vec![0i64; days];
    for d in daily {
        if let Some(t) = usize::try_from(d.day - first_day)
            .ok()
            .and_then(|i| totals.get_mut(i))
        {
            *t += d.cost.nanos();
        }
    }
    let max = dollars(totals.iter().copied().max().unwrap_or(0)).max(0.01) * 1.1;
    let mut svg = String::new();
    let mut hover = Vec::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(64)
            .build_cartesian_2d(0i64..span, 0f64..max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(6)
            // Columns span [day, day + 1): the axis ends where the last day ends, at the
            // day after it, which gets no label.
            .x_label_formatter(&|d| {
                if *d < span {
                    day_label(first_day + d)
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|v| {
                if max < 0.1 {
                    format!("${v:.4}")
                } else {
                    format!("${v:.2}")
                }
            })
            .draw()
            .map_err(|e| e.to_string())?;
        let mut base = vec![0f64; days];
        for (i, name) in names.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let mut bars = Vec::new();
            for d in daily.iter().filter(|d| d.series == *name) {
                let Ok(idx) = usize::try_from(d.day - first_day) else {
                    continue;
                };
                if idx >= days {
                    continue;
                }
                let h = dollars(d.cost.nanos());
                let x = idx as i64;
                bars.push(Rectangle::new(
                    [(x, base[idx]), (x + 1, base[idx] + h)],
                    color.filled(),
                ));
                base[idx] += h;
            }
            chart
                .draw_series(bars)
                .map_err(|e| e.to_string())?
                .label(name.to_string())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        if !names.is_empty() {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK.mix(0.3))
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        for (i, total) in totals.iter().enumerate() {
            let x = i as i64;
            let (left, top) = chart.backend_coord(&(x, max));
            let (right, bottom) = chart.backend_coord(&(x + 1, 0.0));
            let mut parts: Vec<String> = daily
                .iter()
                .filter(|d| d.day - first_day == x && d.cost.is_positive())
                .map(|d| format!("{} {}", d.series, d.cost.display_rounded()))
                .collect();
            if parts.is_empty() {
                parts.push("no spend".into());
            }
            hover.push(Hover {
                left,
                top,
                width: right - left,
                height: bottom - top,
                text: format!(
                    "{}: {} ({})",
                    day_label(first_day + x),
                    Money::from_nanos(*total).display_rounded(),
                    parts.join(", ")
                ),
            });
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(with_hover(
        svg,
        &hover,
        &format!("Spend by day, stacked by {by}"),
    ))
}

/// A chart's SVG, or nothing (with a warning in the log) if it could not be drawn: a page
/// shows without the picture rather than fail.
pub fn or_blank(chart: Result<String, String>) -> String {
    chart.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "chart failed");
        String::new()
    })
}

/// A day's column: where it is drawn and what hovering it says.
struct Hover {
    left: i32,
    top: i32,
    width: i32,
    height: i32,
    text: String,
}

/// Adds a transparent rectangle with a `<title>` over each day's column (browsers show a
/// title on hover without any script) and names the picture for assistive technology.
fn with_hover(svg: String, hover: &[Hover], label: &str) -> String {
    let mut columns = String::new();
    for h in hover {
        columns.push_str(&format!(
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"transparent\" class=\"hover-day\"><title>{}</title></rect>",
            h.left,
            h.top,
            h.width.max(1),
            h.height.max(1),
            escape(&h.text)
        ));
    }
    let svg = svg.replacen(
        "<svg ",
        &format!("<svg role=\"img\" aria-label=\"{}\" ", escape(label)),
        1,
    );
    match svg.rfind("</svg>") {
        Some(end) => format!("{}{columns}{}", &svg[..end], &svg[end..]),
        None => svg,
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Tokens per day for `days` days from `first_day`, one line per token class; each day
/// carries a `<title>` with its counts.
#[allow(clippy::float_arithmetic)]
pub fn tokens_by_class(
    daily: &[DailyUsage],
    first_day: i64,
    days: usize,
) -> Result<String, String> {
    let span = i64::try_from(days).unwrap_or(30);
    let mut series = vec![vec![0i64; days]; 4];
    for d in daily {
        let Ok(i) = usize::try_from(d.day - first_day) else {
            continue;
        };
        if i >= days {
            continue;
        }
        series[0][i] += d.input_tokens;
        series[1][i] += d.output_tokens;
        series[2][i] += d.cache_write_tokens;
        series[3][i] += d.cache_read_tokens;
    }
    let max = series.iter().flatten().copied().max().unwrap_or(0).max(10) as f64 * 1.1;
    let names = ["input", "output", "cache write", "cache read"];
    let mut svg = String::new();
    let mut hover = Vec::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 260)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(64)
            .build_cartesian_2d(0i64..(span - 1).max(1), 0f64..max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(6)
            .x_label_formatter(&|d| day_label(first_day + d))
            .y_label_formatter(&|v| compact(*v))
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, name) in names.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    (0..days).map(|i| (i as i64, series[k][i] as f64)),
                    color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 12, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| e.to_string())?;
        // A column centred on each day's points.
        for i in 0..days {
            let x = i as i64;
            let (at, top) = chart.backend_coord(&(x, max));
            let (_, bottom) = chart.backend_coord(&(x, 0.0));
            let (next, _) = chart.backend_coord(&(x + 1, 0.0));
            let width = (next - at).max(1);
            let counts: Vec<String> = names
                .iter()
                .zip(&series)
                .map(|(name, class)| format!("{name} {}", compact(class[i] as f64)))
                .collect();
            hover.push(Hover {
                left: at - width / 2,
                top,
                width,
                height: bottom - top,
                text: format!("{}: {}", day_label(first_day + x), counts.join(", ")),
            });
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(with_hover(
        svg,
        &hover,
        "Tokens by day, one line per token class",
    ))
}

#[allow(clippy::float_arithmetic)]
fn compact(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn day_label(day: i64) -> String {
    let t = crate::core::clock::Timestamp::from_micros(day * 86_400_000_000);
    let key = t.day_key();
    key.get(5..).unwrap_or(&key).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_render_as_svg_with_labels() {
        let daily = vec![
            DailyUsage {
                day: 100,
                model: "gpt-5".into(),
                cost: Money::from_nanos(1_500_000_000),
                input_tokens: 1000,
                output_tokens: 200,
                cache_write_tokens: 0,
                cache_read_tokens: 50,
            },
            DailyUsage {
                day: 101,
                model: "claude-sonnet-4-5".into(),
                cost: Money::from_nanos(250_000_000),
                input_tokens: 10,
                output_tokens: 20,
                cache_write_tokens: 5,
                cache_read_tokens: 0,
            },
        ];
        let svg = spend_by_model(&daily, 95, 30).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(
            svg.contains("gpt-5") && svg.contains("claude-sonnet-4-5"),
            "legend names the models"
        );
        assert!(svg.contains("<rect"));
        // Every day has its figures on hover, without JavaScript.
        assert_eq!(svg.matches("<title>").count(), 30, "{svg}");
        assert!(
            svg.contains("<title>04-11: $1.50 (gpt-5 $1.50)</title>"),
            "{svg}"
        );
        assert!(svg.contains("<title>04-12: $0.25 (claude-sonnet-4-5 $0.25)</title>"));
        assert!(svg.contains("<title>04-13: $0.00 (no spend)</title>"));
        assert!(svg.contains("role=\"img\" aria-label=\"Spend by day"));
        // The axis labels the first day and none past the last (05-05).
        assert!(svg.contains("\n04-06\n</text>"), "{svg}");
        assert!(!svg.contains("\n05-06\n</text>"), "{svg}");
        let quarter = spend_by_model(&daily, 40, 90).unwrap();
        assert_eq!(quarter.matches("<title>").count(), 90);
        let svg = tokens_by_class(&daily, 95, 30).unwrap();
        assert!(svg.contains("cache read"));
        assert_eq!(svg.matches("<title>").count(), 30);
        assert!(
            svg.contains(
                "<title>04-11: input 1k, output 200, cache write 0, cache read 50</title>"
            ),
            "{svg}"
        );
        assert!(svg.contains("<polyline") || svg.contains("<path"));
    }
}
