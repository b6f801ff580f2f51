//! The diagnostic plots of an impact evaluation, as SVG: the love plot (standardised mean
//! differences before and after adjustment) and the overlap of the propensity scores.

use occupa_anonymiser::MinCount;
use occupa_engine::causal::balance::Balance;
use occupa_engine::causal::evaluate::Histogram;
use plotters::prelude::*;

use crate::render::ensure_font;

/// Love plot: |SMD| of each covariate before (grey ring) and after (blue dot) adjustment,
/// with the balance bound as a dashed line.
pub fn love_plot_svg(balance: &[Balance], bound: f64) -> String {
    ensure_font();
    let mut svg = String::new();
    let rows = balance.len().max(1);
    let height = 80 + 22 * rows as u32;
    let xmax = balance
        .iter()
        .flat_map(|b| [b.smd_before.abs(), b.smd_after.abs()])
        .filter(|v| v.is_finite())
        .fold(bound * 1.5, f64::max)
        * 1.05;
    {
        let root = SVGBackend::with_string(&mut svg, (720, height)).into_drawing_area();
        let draw =
            || -> Result<(), Box<dyn std::error::Error + '_>> {
                root.fill(&WHITE)?;
                let mut chart = ChartBuilder::on(&root)
                    .caption("|Standardised mean difference|", ("sans-serif", 16))
                    .margin(12)
                    .x_label_area_size(30)
                    .y_label_area_size(170)
                    .build_cartesian_2d(0f64..xmax, -0.5f64..(rows as f64 - 0.5))?;
                let names: Vec<String> = balance.iter().map(|b| b.covariate.clone()).collect();
                chart
                    .configure_mesh()
                    .y_labels(rows)
                    .y_label_formatter(&|y| {
                        let i = y.round();
                        if (y - i).abs() < 1e-6 && i >= 0.0 {
                            names.get(i as usize).cloned().unwrap_or_default()
                        } else {
                            String::new()
                        }
                    })
                    .x_label_formatter(&|x| format!("{x:.2}"))
                    .draw()?;
                chart.draw_series(DashedLineSeries::new(
                    [(bound, -0.5), (bound, rows as f64 - 0.5)],
                    6,
                    4,
                    RED.stroke_width(1),
                ))?;
                let grey = RGBColor(150, 150, 150);
                let blue = RGBColor(31, 90, 160);
                chart
                    .draw_series(balance.iter().enumerate().map(|(i, b)| {
                        Circle::new((b.smd_before.abs(), i as f64), 5, grey.stroke_width(2))
                    }))?
                    .label("before")
                    .legend(move |(x, y)| Circle::new((x, y), 5, grey.stroke_width(2)));
                chart
                    .draw_series(balance.iter().enumerate().map(|(i, b)| {
                        Circle::new((b.smd_after.abs(), i as f64), 5, blue.filled())
                    }))?
                    .label("after")
                    .legend(move |(x, y)| Circle::new((x, y), 5, blue.filled()));
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()?;
                root.present()?;
                Ok(())
            };
        if draw().is_err() {
            return String::new();
        }
    }
    svg
}

/// Overlap of the propensity scores: the share of each arm in each twentieth of the
/// scale. Bins holding fewer units than `min` in an arm are not drawn for that arm (the
/// plot is a published count in disguise).
pub fn overlap_svg(h: &Histogram, min: MinCount) -> String {
    ensure_font();
    let mut svg = String::new();
    let share = |counts: &[u64]| -> Vec<Option<f64>> {
        let total: u64 = counts.iter().sum();
        counts
            .iter()
            .map(|&c| (c >= min.get()).then(|| c as f64 / total.max(1) as f64))
            .collect()
    };
    let (t, c) = (share(&h.treated), share(&h.control));
    let ymax = t.iter().chain(&c).flatten().fold(0.05f64, |m, v| m.max(*v)) * 1.1;
    {
        let root = SVGBackend::with_string(&mut svg, (720, 320)).into_drawing_area();
        let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    "Propensity score by group (share per bin)",
                    ("sans-serif", 16),
                )
                .margin(12)
                .x_label_area_size(30)
                .y_label_area_size(50)
                .build_cartesian_2d(0f64..1f64, 0f64..ymax)?;
            chart
                .configure_mesh()
                .x_label_formatter(&|x| format!("{x:.1}"))
                .y_label_formatter(&|y| format!("{y:.2}"))
                .draw()?;
            let blue = RGBColor(31, 90, 160);
            let orange = RGBColor(220, 120, 30);
            for (vals, colour, name, offset) in
                [(&t, blue, "treated", 0.0), (&c, orange, "controls", 0.025)]
            {
                chart
                    .draw_series(vals.iter().enumerate().filter_map(|(b, v)| {
                        v.map(|v| {
                            let x0 = b as f64 / 20.0 + offset;
                            Rectangle::new([(x0, 0.0), (x0 + 0.025, v)], colour.mix(0.8).filled())
                        })
                    }))?
                    .label(name)
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled())
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
            root.present()?;
            Ok(())
        };
        if draw().is_err() {
            return String::new();
        }
    }
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_svg_and_hide_small_bins() {
        let b = vec![Balance {
            covariate: "age".into(),
            smd_before: 0.8,
            smd_after: 0.05,
            var_ratio_before: 1.2,
            var_ratio_after: 1.0,
        }];
        let love = love_plot_svg(&b, 0.1);
        assert!(love.starts_with("<svg") && love.contains("age"));
        let mut h = Histogram {
            treated: vec![0; 20],
            control: vec![0; 20],
        };
        h.treated[10] = 40;
        h.treated[11] = 3; // under the threshold: not drawn
        h.control[2] = 100;
        let full = overlap_svg(&h, MinCount::new(1).unwrap());
        let safe = overlap_svg(&h, MinCount::new(5).unwrap());
        assert!(safe.starts_with("<svg"));
        assert!(full.matches("<rect").count() > safe.matches("<rect").count());
    }
}
