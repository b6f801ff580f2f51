//! Territory as a real hierarchy: municipality → province → region → macro area, from
//! ISTAT codes. The province and region tables ship in `engine/data/territory/`; a
//! municipality's 6-digit ISTAT code starts with its province's 3-digit code, which is how
//! a municipality is placed (the full municipality register is not shipped).

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

/// The shipped territorial tables.
#[derive(Debug)]
pub struct Territory {
    provinces: HashMap<String, Province>,
    regions: HashMap<String, Region>,
    /// Province by numeric code 0..1000: a lookup per ingested row, so no hashing.
    by_number: Vec<Option<Province>>,
}

const PROVINCES: &str = include_str!("../data/territory/provinces.csv");
const REGIONS: &str = include_str!("../data/territory/regions.csv");

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
            Territory {
                provinces,
                regions,
                by_number,
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

    /// The province of a 6-digit municipality code, if the code is well formed and its
    /// province exists.
    pub fn province_of(&self, municipality: &str) -> Option<&Province> {
        let b = municipality.as_bytes();
        if b.len() != 6 || !b.iter().all(u8::is_ascii_digit) || &b[3..] == b"000" {
            return None;
        }
        let n = (b[0] - b'0') as usize * 100 + (b[1] - b'0') as usize * 10 + (b[2] - b'0') as usize;
        self.by_number[n].as_ref()
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
        for bad in ["1272", "0012720", "00127A", "999001", "001000"] {
            assert!(t.province_of(bad).is_none(), "{bad}");
        }
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
