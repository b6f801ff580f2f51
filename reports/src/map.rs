//! Province choropleths from ISTAT's boundaries (shipped by the engine, see
//! `engine/data/territory/SOURCES.md`): persons in charge per 1,000 residents and the
//! placement rate, each province's figure computed from protected counts only.
//!
//! The SVG is written here rather than through plotters: a map is a few hundred filled
//! paths with holes (`fill-rule: evenodd`), each with its own accessible title, which
//! plotters' chart model does not give.

use std::fmt::Write as _;

use occupa_engine::territory::Territory;

use crate::Lang;
use crate::render::fmt_figure;

/// Sequential blues, light to dark (ColorBrewer "Blues", 5 classes).
const CLASSES: [&str; 5] = ["#eff3ff", "#bdd7e7", "#6baed6", "#3182bd", "#08519c"];
const HIDDEN: &str = "#d9d9d9";
const OUTSIDE: &str = "#f7f7f7";

/// One province on the map: its ISTAT code and value (`None`: hidden by protection).
pub struct MapValue {
    /// 3-digit ISTAT province code.
    pub code: String,
    /// The figure, when shown.
    pub value: Option<f64>,
}

/// Class breaks: the quintiles of the shown values (fewer classes when fewer distinct
/// values), so every colour holds about as many provinces.
fn breaks(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    if v.len() <= CLASSES.len() {
        return v;
    }
    (1..=CLASSES.len())
        .map(|k| v[(k * v.len()).div_ceil(CLASSES.len()) - 1])
        .collect()
}

fn class_of(x: f64, br: &[f64]) -> usize {
    br.iter()
        .position(|b| x <= *b)
        .unwrap_or(br.len().saturating_sub(1))
}

/// A choropleth of the provinces in `values`, framed on them with their neighbours in
/// grey; `decimals` for the legend. Empty when no province has a boundary.
pub fn choropleth_svg(title: &str, values: &[MapValue], decimals: usize, lang: Lang) -> String {
    let territory = Territory::get();
    let shapes = Territory::shapes();
    let ours: Vec<&occupa_engine::territory::ProvinceShape> = shapes
        .iter()
        .filter(|s| values.iter().any(|v| v.code == s.code))
        .collect();
    if ours.is_empty() {
        return String::new();
    }
    // The frame: the mapped provinces' extent with a margin, at least 120 km across.
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for s in &ours {
        for (x, y) in s.parts.iter().flatten().flatten() {
            x0 = x0.min(*x);
            x1 = x1.max(*x);
            y0 = y0.min(*y);
            y1 = y1.max(*y);
        }
    }
    let pad = ((x1 - x0).max(y1 - y0) * 0.08).max(10.0);
    let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    let half_w = ((x1 - x0) / 2.0 + pad).max(60.0);
    let half_h = ((y1 - y0) / 2.0 + pad).max(60.0);
    let (x0, x1, y0, y1) = (cx - half_w, cx + half_w, cy - half_h, cy + half_h);
    let (map_w, map_h) = (x1 - x0, y1 - y0);
    // Pixels: the map 480 high at most, the legend on the right.
    let scale = (480.0 / map_h).min(520.0 / map_w);
    let (w, h) = (map_w * scale, map_h * scale);
    let shown: Vec<f64> = values.iter().filter_map(|v| v.value).collect();
    let br = breaks(&shown);
    let px = |x: f64| (x - x0) * scale;
    let py = |y: f64| (y1 - y) * scale;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0}\" height=\"{:.0}\" viewBox=\"0 0 {:.0} {:.0}\" role=\"img\" aria-labelledby=\"t\" font-family=\"sans-serif\" font-size=\"11\">",
        w + 230.0,
        h + 30.0,
        w + 230.0,
        h + 30.0
    );
    let _ = write!(svg, "<title id=\"t\">{}</title>", esc(title));
    let _ = write!(
        svg,
        "<rect width=\"100%\" height=\"100%\" fill=\"white\"/><text x=\"4\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text><g transform=\"translate(0,24)\">",
        esc(title)
    );
    let _ = write!(
        svg,
        "<clipPath id=\"frame\"><rect width=\"{w:.1}\" height=\"{h:.1}\"/></clipPath><g clip-path=\"url(#frame)\">"
    );
    let mut labels = String::new();
    for s in shapes {
        // Only what can be seen in the frame.
        let inside = s
            .parts
            .iter()
            .flatten()
            .flatten()
            .any(|(x, y)| *x >= x0 && *x <= x1 && *y >= y0 && *y <= y1);
        if !inside {
            continue;
        }
        let mine = values.iter().find(|v| v.code == s.code);
        let fill = match mine {
            None => OUTSIDE,
            Some(MapValue { value: None, .. }) => HIDDEN,
            Some(MapValue { value: Some(x), .. }) => CLASSES[class_of(*x, &br)],
        };
        let mut d = String::new();
        for ring in s.parts.iter().flatten() {
            for (k, (x, y)) in ring.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{:.1} {:.1}",
                    if k == 0 { "M" } else { "L" },
                    px(*x),
                    py(*y)
                );
            }
            d.push('Z');
        }
        let name = territory
            .province(&s.code)
            .map_or(s.code.clone(), |p| p.name.clone());
        let tip = match mine {
            Some(MapValue { value: Some(x), .. }) => {
                format!("{name}: {}", fmt_figure(Some(*x), decimals, lang))
            }
            Some(_) => format!("{name}: x"),
            None => name.clone(),
        };
        let _ = write!(
            svg,
            "<path d=\"{d}\" fill=\"{fill}\" fill-rule=\"evenodd\" stroke=\"{}\" stroke-width=\"{}\"><title>{}</title></path>",
            if mine.is_some() { "#333" } else { "#bbb" },
            if mine.is_some() { "0.8" } else { "0.5" },
            esc(&tip)
        );
        if mine.is_some()
            && let Some(outer) = s.parts.first().and_then(|p| p.first())
            && !outer.is_empty()
        {
            // The label at the mean of the largest part's outline, with the value.
            let n = outer.len() as f64;
            let (mx, my) = outer
                .iter()
                .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
            let abbr = territory.province(&s.code).map_or("", |p| p.abbr.as_str());
            let value = mine.map_or("x".to_string(), |m| fmt_figure(m.value, decimals, lang));
            let _ = write!(
                labels,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" stroke=\"white\" stroke-width=\"3\" paint-order=\"stroke\">{abbr} {value}</text>",
                px(mx),
                py(my)
            );
        }
    }
    svg.push_str(&labels);
    svg.push_str("</g>");
    let _ = write!(
        svg,
        "<rect width=\"{w:.1}\" height=\"{h:.1}\" fill=\"none\" stroke=\"#999\" stroke-width=\"0.5\"/>"
    );
    // The legend: one swatch per class with its range, then hidden and outside.
    let lx = w + 16.0;
    let mut ly = 10.0;
    let mut lo: Option<f64> = shown.iter().copied().reduce(f64::min);
    for (k, b) in br.iter().enumerate() {
        let to = fmt_figure(Some(*b), decimals, lang);
        let from = lo.map_or("x".into(), |l| fmt_figure(Some(l), decimals, lang));
        // A class of one value shows the value once.
        let range = if from == to {
            to.clone()
        } else {
            format!("{from} – {to}")
        };
        let _ = write!(
            svg,
            "<rect x=\"{lx:.1}\" y=\"{ly:.1}\" width=\"18\" height=\"14\" fill=\"{}\" stroke=\"#333\" stroke-width=\"0.5\"/><text x=\"{:.1}\" y=\"{:.1}\">{range}</text>",
            CLASSES[k.min(CLASSES.len() - 1)],
            lx + 24.0,
            ly + 11.0,
        );
        lo = Some(*b);
        ly += 20.0;
    }
    let t = |it: &'static str, en: &'static str| if lang == Lang::It { it } else { en };
    for (fill, label) in [
        (HIDDEN, t("x = dato oscurato", "x = value hidden")),
        (OUTSIDE, t("fuori dal rapporto", "not in the report")),
    ] {
        let _ = write!(
            svg,
            "<rect x=\"{lx:.1}\" y=\"{ly:.1}\" width=\"18\" height=\"14\" fill=\"{fill}\" stroke=\"#999\" stroke-width=\"0.5\"/><text x=\"{:.1}\" y=\"{:.1}\">{label}</text>",
            lx + 24.0,
            ly + 11.0
        );
        ly += 20.0;
    }
    let _ = write!(
        svg,
        "<text x=\"{lx:.1}\" y=\"{:.1}\" font-size=\"9\" fill=\"#555\">{}</text>",
        ly + 14.0,
        t("Confini: ISTAT (CC BY)", "Boundaries: ISTAT (CC BY)")
    );
    svg.push_str("</g></svg>");
    svg
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quintile_breaks_and_classes() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        let br = breaks(&v);
        assert_eq!(br, vec![2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(class_of(1.0, &br), 0);
        assert_eq!(class_of(4.5, &br), 2);
        assert_eq!(class_of(10.0, &br), 4);
        assert_eq!(breaks(&[3.0, 3.0, 1.0]), vec![1.0, 3.0]);
    }

    #[test]
    fn the_map_draws_the_provinces_with_their_values_and_hides_what_protection_hid() {
        let values = vec![
            MapValue {
                code: "001".into(),
                value: Some(6.5),
            },
            MapValue {
                code: "004".into(),
                value: None,
            },
        ];
        let svg = choropleth_svg("Persone in carico", &values, 1, Lang::It);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(
            svg.contains("<title>Torino: 6,5</title>"),
            "{}",
            &svg[..400]
        );
        assert!(svg.contains("<title>Cuneo: x</title>"));
        // Asti borders both: drawn for context, without a value.
        assert!(svg.contains("<title>Asti</title>"));
        assert!(!svg.contains("Palermo"));
        assert!(choropleth_svg("t", &[], 1, Lang::It).is_empty());
    }
}
