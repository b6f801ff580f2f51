//! Shared data generators for the benchmarks and the peer scripts.

use std::io::Write;
use std::path::Path;

use occupa_engine::codice_fiscale::make_personal;

/// Writes a persons CSV of `n` distinct, valid rows (Italian headers, as an export).
pub fn persons_csv(n: usize, path: &Path) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        w,
        "codice_fiscale,cognome,nome,anno_nascita,sesso,cittadinanza,comune_istat,titolo_studio,disabilita_l68,sostegno_reddito,servizi_sociali,data_presa_in_carico,data_fine_presa_in_carico"
    )?;
    let letters = |k: usize| -> String {
        (0..3)
            .map(|i| (b'B' + ((k / 19usize.pow(i)) % 19) as u8) as char)
            .collect()
    };
    for i in 0..n {
        let year = 1960 + (i % 45) as u8 as i32;
        let female = i % 2 == 1;
        let (month, day) = (1 + (i / 45 % 12) as u8, 1 + (i / 540 % 28) as u8);
        let code = make_personal(
            &letters(i / 15120),
            &letters(i / 15120 / 6859 + i % 7),
            (year % 100) as u8,
            month,
            day,
            female,
            "L219",
            0,
        );
        writeln!(
            w,
            "{code},Rossi,Maria,{year},{},ITA,001{:03},{},no,sì,no,{:02}/{:02}/2025,",
            if female { "F" } else { "M" },
            1 + i % 300,
            i % 9,
            1 + i % 28,
            1 + i % 12
        )?;
    }
    w.flush()
}
