//! The profile chart of a clustering, as SVG: one row per cluster, one column per item or
//! score, each cell coloured by how far the cluster's mean lies from everyone's (in
//! standard deviations; red above, blue below), with the cluster's share and label.

use occupa_anonymiser::MinCount;
use occupa_engine::cluster::profiles::Profile;
use plotters::prelude::*;

use crate::render::ensure_font;

/// Differences beyond this many SDs get the full colour.
const FULL: f64 = 1.5;

/// The heat map of `profiles` over `columns` (the order of each profile's `z`). A
/// cluster with fewer people than `min` is drawn as a grey row without values: its
/// size is not published. Labels are Italian unless `english`.
pub fn profile_svg(
    profiles: &[Profile],
    columns: &[String],
    min: MinCount,
    english: bool,
) -> String {
    ensure_font();
    let mut svg = String::new();
    let (rows, cols) = (profiles.len().max(1), columns.len().max(1));
    let cell = 26u32;
    let width = (330 + cell * cols as u32).max(680);
    let height = 110 + cell * rows as u32;
    let colour = |z: f64| -> RGBColor {
        let t = (z / FULL).clamp(-1.0, 1.0);
        let fade = |c: u8| (255.0 - (255.0 - f64::from(c)) * t.abs()).round() as u8;
        if t >= 0.0 {
            RGBColor(fade(200), fade(40), fade(40))
        } else {
            RGBColor(fade(31), fade(90), fade(160))
        }
    };
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
            root.fill(&WHITE)?;
            let title = if english {
                "Cluster profiles: difference from everyone (SD)"
            } else {
                "Profili dei gruppi: scarto dalla media di tutti (DS)"
            };
            root.draw(&Text::new(title, (10, 8), ("sans-serif", 16)))?;
            let top = 60i32;
            let left = 320i32;
            for (j, name) in columns.iter().enumerate() {
                let x = left + (j as i32) * cell as i32 + 4;
                root.draw(&Text::new(
                    name.clone(),
                    (x, top - 6),
                    ("sans-serif", 11)
                        .into_font()
                        .transform(FontTransform::Rotate270),
                ))?;
            }
            for (i, p) in profiles.iter().enumerate() {
                let y = top + (i as i32) * cell as i32;
                let shown = p.size as u64 >= min.get();
                let label = if !shown {
                    if english {
                        format!("{}. fewer than {} people", p.cluster, min.get())
                    } else {
                        format!("{}. meno di {} persone", p.cluster, min.get())
                    }
                } else {
                    let l = if english { &p.label_en } else { &p.label };
                    let short: String = l.chars().take(34).collect();
                    format!("{}. {:.0}% {}", p.cluster, 100.0 * p.share, short)
                };
                root.draw(&Text::new(label, (8, y + 8), ("sans-serif", 12)))?;
                for j in 0..columns.len() {
                    let x = left + (j as i32) * cell as i32;
                    let fill = match p.z.get(j) {
                        Some(z) if shown && z.is_finite() => colour(*z),
                        _ => RGBColor(220, 220, 220),
                    };
                    root.draw(&Rectangle::new(
                        [(x, y), (x + cell as i32 - 2, y + cell as i32 - 2)],
                        fill.filled(),
                    ))?;
                }
            }
            let legend_y = top + (rows as i32) * cell as i32 + 14;
            for (k, z) in [-FULL, -0.5, 0.0, 0.5, FULL].iter().enumerate() {
                let x = left + (k as i32) * 60;
                root.draw(&Rectangle::new(
                    [(x, legend_y), (x + 18, legend_y + 14)],
                    colour(*z).filled(),
                ))?;
                root.draw(&Text::new(
                    format!("{z:+.1}"),
                    (x + 22, legend_y + 2),
                    ("sans-serif", 11),
                ))?;
            }
            root.present()?;
            Ok(())
        };
        if draw().is_err() {
            return String::new();
        }
    }
    svg
}
