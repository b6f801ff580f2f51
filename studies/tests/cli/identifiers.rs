//! Planted identifiers searched for in every report output: the attacker plants tax codes,
//! names, e-mails and phone numbers in every shape seen in real exports, the binary
//! ingests them and writes the quarterly and annual reports (pooled and one authority's,
//! Italian and English), and not one of them may appear in any file it wrote or any line
//! it printed. Every kind of output is read as its reader would read it: Parquet cells,
//! text, the XLSX's cells and every XML part of its zip, the PDF's text decoded through its
//! fonts' ToUnicode maps.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;

// One copy of the planting and the search, shared with `tests/it/attacks.rs`.
#[path = "../../../tests/it/planting.rs"]
mod planting;

use planting::{Planted, compact, plant, texts_under};

const TENANTS: [&str; 3] = ["t01", "t02", "t03"];
const TABLES: [&str; 7] = [
    "persons",
    "asso",
    "isa",
    "gol",
    "services",
    "employment",
    "vacancies",
];

/// Runs the binary in `dir`; it must succeed. What it printed is kept: it is output too.
fn run(dir: &Path, args: &[&str], printed: &mut Vec<(PathBuf, String)>) -> Output {
    // Its temporary files too are kept where they are searched.
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let out = super::occupa()
        .current_dir(dir)
        .env("TMPDIR", &tmp)
        .env_remove("OCCUPA_KEY_FILE")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = PathBuf::from(format!("occupa {}", args.join(" ")));
    for stream in [&out.stdout, &out.stderr] {
        printed.push((name.clone(), String::from_utf8_lossy(stream).into_owned()));
    }
    out
}

// ---------------------------------------------------------------------------------------
// DEFLATE (RFC 1951), for the XLSX's zip entries and the PDF's FlateDecode streams: no
// crate of the dependency tree that inflates is a dependency of this package. A plain
// canonical-Huffman decoder after Mark Adler's `puff`; every output is checked against
// its CRC-32 (zip) or Adler-32 (zlib), so a decoder bug fails the test instead of hiding
// text.

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u32,
    cnt: u32,
}

impl Bits<'_> {
    fn take(&mut self, n: u32) -> Result<u32, String> {
        while self.cnt < n {
            let b = *self.data.get(self.pos).ok_or("deflate: out of input")?;
            self.pos += 1;
            self.buf |= u32::from(b) << self.cnt;
            self.cnt += 8;
        }
        let v = self.buf & ((1u32 << n) - 1);
        self.buf = if n == 32 { 0 } else { self.buf >> n };
        self.cnt -= n;
        Ok(v)
    }

    fn decode(&mut self, h: &Huffman) -> Result<usize, String> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= self.take(1)? as i32;
            let count = i32::from(h.count[len]);
            if code - count < first {
                return Ok(usize::from(h.symbol[(index + code - first) as usize]));
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err("deflate: bad Huffman code".into())
    }
}

struct Huffman {
    count: [u16; 16],
    symbol: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> Huffman {
        let mut count = [0u16; 16];
        for &l in lengths {
            count[usize::from(l)] += 1;
        }
        count[0] = 0;
        let mut offs = [0u16; 16];
        for l in 1..15 {
            offs[l + 1] = offs[l] + count[l];
        }
        let mut symbol = vec![0u16; lengths.len()];
        for (s, &l) in lengths.iter().enumerate() {
            if l != 0 {
                symbol[usize::from(offs[usize::from(l)])] = s as u16;
                offs[usize::from(l)] += 1;
            }
        }
        Huffman { count, symbol }
    }
}

const LBASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEXT: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DBASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DEXT: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

/// A raw DEFLATE stream: the bytes, and where in `data` the stream ended.
fn inflate(data: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let mut s = Bits {
        data,
        pos: 0,
        buf: 0,
        cnt: 0,
    };
    let mut out = Vec::new();
    loop {
        let last = s.take(1)? == 1;
        match s.take(2)? {
            0 => {
                s.buf = 0;
                s.cnt = 0;
                let b = data
                    .get(s.pos..s.pos + 4)
                    .ok_or("deflate: short stored block")?;
                let len = usize::from(u16::from_le_bytes([b[0], b[1]]));
                s.pos += 4;
                let block = data
                    .get(s.pos..s.pos + len)
                    .ok_or("deflate: short stored block")?;
                out.extend_from_slice(block);
                s.pos += len;
            }
            t @ (1 | 2) => {
                let (lit, dist) = if t == 1 {
                    let mut l = [8u8; 288];
                    l[144..256].fill(9);
                    l[256..280].fill(7);
                    (Huffman::new(&l), Huffman::new(&[5u8; 30]))
                } else {
                    let nlen = s.take(5)? as usize + 257;
                    let ndist = s.take(5)? as usize + 1;
                    let ncode = s.take(4)? as usize + 4;
                    const ORDER: [usize; 19] = [
                        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
                    ];
                    let mut cl = [0u8; 19];
                    for &o in &ORDER[..ncode] {
                        cl[o] = s.take(3)? as u8;
                    }
                    let ch = Huffman::new(&cl);
                    let mut lengths = Vec::with_capacity(nlen + ndist);
                    while lengths.len() < nlen + ndist {
                        let sym = s.decode(&ch)?;
                        let (value, times) = match sym {
                            0..=15 => (sym as u8, 1),
                            16 => (
                                *lengths.last().ok_or("deflate: repeat with no length")?,
                                3 + s.take(2)? as usize,
                            ),
                            17 => (0, 3 + s.take(3)? as usize),
                            _ => (0, 11 + s.take(7)? as usize),
                        };
                        lengths.extend(std::iter::repeat_n(value, times));
                    }
                    if lengths.len() != nlen + ndist {
                        return Err("deflate: too many lengths".into());
                    }
                    (
                        Huffman::new(&lengths[..nlen]),
                        Huffman::new(&lengths[nlen..]),
                    )
                };
                loop {
                    let sym = s.decode(&lit)?;
                    if sym < 256 {
                        out.push(sym as u8);
                        continue;
                    }
                    if sym == 256 {
                        break;
                    }
                    let i = sym - 257;
                    if i >= 29 {
                        return Err("deflate: bad length".into());
                    }
                    let len = usize::from(LBASE[i]) + s.take(u32::from(LEXT[i]))? as usize;
                    let d = s.decode(&dist)?;
                    if d >= 30 {
                        return Err("deflate: bad distance".into());
                    }
                    let back = usize::from(DBASE[d]) + s.take(u32::from(DEXT[d]))? as usize;
                    if back > out.len() {
                        return Err("deflate: distance too far back".into());
                    }
                    for _ in 0..len {
                        out.push(out[out.len() - back]);
                    }
                }
            }
            _ => return Err("deflate: bad block type".into()),
        }
        if last {
            return Ok((out, s.pos));
        }
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// A zlib stream (a PDF's FlateDecode), its checksum verified.
fn unzlib(data: &[u8]) -> Result<Vec<u8>, String> {
    if data.len() < 6 || (u16::from(data[0]) << 8 | u16::from(data[1])) % 31 != 0 {
        return Err("not a zlib stream".into());
    }
    let (out, end) = inflate(&data[2..])?;
    let sum = data.get(2 + end..2 + end + 4).ok_or("zlib: no checksum")?;
    if u32::from_be_bytes([sum[0], sum[1], sum[2], sum[3]]) != adler32(&out) {
        return Err("zlib: checksum mismatch".into());
    }
    Ok(out)
}

/// Every entry of a zip file (an XLSX), from its central directory, each CRC-checked.
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let u16_at = |p: usize| usize::from(u16::from_le_bytes([bytes[p], bytes[p + 1]]));
    let u32_at =
        |p: usize| u32::from_le_bytes([bytes[p], bytes[p + 1], bytes[p + 2], bytes[p + 3]]);
    let eocd = (0..=bytes.len() - 22)
        .rev()
        .find(|&p| bytes[p..p + 4] == [0x50, 0x4b, 5, 6])
        .expect("no end of central directory: not a zip");
    let entries = u16_at(eocd + 10);
    let mut p = u32_at(eocd + 16) as usize;
    let mut out = Vec::new();
    for _ in 0..entries {
        assert_eq!(bytes[p..p + 4], [0x50, 0x4b, 1, 2], "central directory");
        let method = u16_at(p + 10);
        let crc = u32_at(p + 16);
        let size = u32_at(p + 20) as usize;
        let (n, e, c) = (u16_at(p + 28), u16_at(p + 30), u16_at(p + 32));
        let local = u32_at(p + 42) as usize;
        let name = String::from_utf8_lossy(&bytes[p + 46..p + 46 + n]).into_owned();
        p += 46 + n + e + c;
        assert_eq!(bytes[local..local + 4], [0x50, 0x4b, 3, 4], "local header");
        let start = local + 30 + u16_at(local + 26) + u16_at(local + 28);
        let raw = &bytes[start..start + size];
        let data = match method {
            0 => raw.to_vec(),
            8 => inflate(raw).unwrap_or_else(|e| panic!("{name}: {e}")).0,
            m => panic!("{name}: zip method {m}"),
        };
        assert_eq!(crc32(&data), crc, "{name}: CRC");
        out.push((name, data));
    }
    out
}

/// XML text with its character references resolved, and with its tags removed (runs of
/// a rich-text string are joined as a reader joins them).
fn xml_texts(xml: &str) -> [String; 2] {
    let mut plain = String::with_capacity(xml.len());
    let mut in_tag = false;
    for ch in xml.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => plain.push(c),
            _ => {}
        }
    }
    [unescape(xml), unescape(&plain)]
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest[..rest.len().min(12)].find(';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// What a spreadsheet program shows of a workbook, and everything else it holds: every
/// XML part of the zip (shared strings, sheet names, document properties, comments), and
/// every sheet's cells as the engine's reader (calamine) reads them.
fn xlsx_texts(path: &Path) -> Vec<(PathBuf, String)> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut sheets = 0;
    let mut shared = false;
    for (name, data) in unzip(&bytes) {
        let text = if name.ends_with(".xml") || name.ends_with(".rels") {
            String::from_utf8(data).unwrap_or_else(|_| panic!("{name} is not UTF-8"))
        } else {
            String::from_utf8_lossy(&data).into_owned()
        };
        sheets += usize::from(name.starts_with("xl/worksheets/sheet"));
        shared |= name == "xl/sharedStrings.xml" && text.contains("<si>");
        for t in xml_texts(&text) {
            out.push((path.join(&name), t));
        }
    }
    assert!(
        sheets > 0 && shared,
        "{}: no sheet or no text",
        path.display()
    );
    for n in 1..=sheets {
        let options = occupa_engine::read::ReadOptions {
            sheet: Some(n.to_string()),
        };
        let t = occupa_engine::read::read_file_with(path, &options)
            .unwrap_or_else(|e| panic!("{}: sheet {n}: {e}", path.display()));
        let mut cells = t.header_raw.join("\t");
        for r in &t.rows {
            if let Ok(f) = &r.fields {
                cells.push('\n');
                cells.push_str(&f.iter().collect::<Vec<_>>().join("\t"));
            }
        }
        out.push((path.join(format!("sheet {n}")), cells));
    }
    out
}

// ---------------------------------------------------------------------------------------
// PDF text. Typst writes each font as a subset with its own glyph codes (Identity-H, two
// bytes a glyph), so the text of a page is in compressed content streams as hex strings
// of codes, and only the font's ToUnicode map says which letters they are. Every
// FlateDecode stream is inflated, every ToUnicode map read, and the strings shown by the
// text operators (Tj, TJ, ', ") decoded with the map of the font selected by Tf (the
// page's /Font resource names resolved to their font objects).

/// One object of a PDF: its dictionary (or whole body), and a stream's inflated data.
struct PdfObject {
    dict: String,
    raw: Vec<u8>,
    data: Option<Vec<u8>>,
}

/// The PDF's objects by number.
fn pdf_objects(bytes: &[u8]) -> HashMap<u32, PdfObject> {
    let mut objects = HashMap::new();
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay.get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let mut p = 0;
    while let Some(at) = find(bytes, b" obj", p) {
        p = at + 4;
        // "N G obj": the object number is the first of the two integers before.
        let head = &bytes[at.saturating_sub(24)..at];
        let head = String::from_utf8_lossy(head);
        let mut words = head.split_ascii_whitespace().rev();
        let (Some(_gen), Some(num)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(num) = num.parse::<u32>() else {
            continue;
        };
        let end = find(bytes, b"endobj", p).unwrap_or(bytes.len());
        let body = &bytes[p..end];
        let (raw, data) = match find(body, b"stream", 0) {
            Some(s) if !body[..s].ends_with(b"end") => {
                let mut start = s + 6;
                if body.get(start) == Some(&b'\r') {
                    start += 1;
                }
                if body.get(start) == Some(&b'\n') {
                    start += 1;
                }
                let flate = find(&body[..s], b"/FlateDecode", 0).is_some();
                let raw = &body[start..];
                let data = if flate {
                    unzlib(raw).unwrap_or_else(|e| panic!("PDF object {num}: {e}"))
                } else {
                    let stop = find(raw, b"endstream", 0).unwrap_or(raw.len());
                    raw[..stop].to_vec()
                };
                (&body[..s], Some(data))
            }
            _ => (body, None),
        };
        let object = PdfObject {
            dict: String::from_utf8_lossy(raw).into_owned(),
            raw: raw.to_vec(),
            data,
        };
        objects.insert(num, object);
        p = end;
    }
    objects
}

/// A ToUnicode CMap: code (its bytes as a big-endian integer) → text, and code width.
fn cmap(data: &[u8]) -> (HashMap<u32, String>, usize) {
    let text = String::from_utf8_lossy(data);
    let hex = |h: &str| -> Vec<u8> {
        let h: Vec<u8> = h.bytes().filter(u8::is_ascii_hexdigit).collect();
        h.chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect()
    };
    let utf16 = |b: &[u8]| -> String {
        let units: Vec<u16> = b
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
            .collect();
        String::from_utf16_lossy(&units)
    };
    let int = |b: &[u8]| b.iter().fold(0u32, |a, &x| (a << 8) | u32::from(x));
    let tokens = |s: &str| -> Vec<String> {
        // <hex> and [ ] as tokens.
        let mut v = Vec::new();
        let mut cur = String::new();
        for c in s.chars() {
            match c {
                '<' => cur.clear(),
                '>' => v.push(std::mem::take(&mut cur)),
                '[' | ']' => v.push(c.to_string()),
                c => cur.push(c),
            }
        }
        v
    };
    let mut map = HashMap::new();
    let mut width = 2;
    for part in text.split("beginbfchar").skip(1) {
        let body = part.split("endbfchar").next().unwrap_or("");
        for pair in tokens(body).chunks(2) {
            if let [src, dst] = pair {
                let s = hex(src);
                width = s.len();
                map.insert(int(&s), utf16(&hex(dst)));
            }
        }
    }
    for part in text.split("beginbfrange").skip(1) {
        let body = part.split("endbfrange").next().unwrap_or("");
        let t = tokens(body);
        let mut i = 0;
        while i + 2 < t.len() {
            let (lo, hi) = (hex(&t[i]), hex(&t[i + 1]));
            width = lo.len();
            let (lo, hi) = (int(&lo), int(&hi));
            if t[i + 2] == "[" {
                let mut j = i + 3;
                let mut code = lo;
                while j < t.len() && t[j] != "]" {
                    map.insert(code, utf16(&hex(&t[j])));
                    code += 1;
                    j += 1;
                }
                i = j + 1;
            } else {
                let mut dst = hex(&t[i + 2]);
                for code in lo..=hi {
                    map.insert(code, utf16(&dst));
                    // The last byte counts up.
                    if let Some(b) = dst.last_mut() {
                        *b = b.wrapping_add(1);
                    }
                }
                i += 3;
            }
        }
    }
    (map, width)
}

/// A token of PDF syntax: a string (its bytes), or anything else (a name, a number, an
/// operator, a keyword). Dictionary and array brackets are dropped.
enum Token {
    Str(Vec<u8>),
    Word(String),
}

fn tokens(content: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let n = content.len();
    let mut i = 0;
    while i < n {
        let c = content[i];
        match c {
            b'%' => {
                while i < n && content[i] != b'\n' && content[i] != b'\r' {
                    i += 1;
                }
            }
            b'<' if content.get(i + 1) == Some(&b'<') => i += 2,
            b'>' if content.get(i + 1) == Some(&b'>') => i += 2,
            b'<' => {
                let end = content[i..]
                    .iter()
                    .position(|&b| b == b'>')
                    .map_or(n, |e| i + e);
                let mut h: Vec<u8> = content[i + 1..end]
                    .iter()
                    .copied()
                    .filter(u8::is_ascii_hexdigit)
                    .collect();
                if h.len() % 2 == 1 {
                    h.push(b'0');
                }
                let bytes = h
                    .chunks(2)
                    .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
                    .collect();
                out.push(Token::Str(bytes));
                i = end + 1;
            }
            b'(' => {
                let mut depth = 1;
                let mut s = Vec::new();
                i += 1;
                while i < n {
                    let b = content[i];
                    i += 1;
                    match b {
                        b'\\' if i < n => {
                            let e = content[i];
                            i += 1;
                            match e {
                                b'n' => s.push(b'\n'),
                                b'r' => s.push(b'\r'),
                                b't' => s.push(b'\t'),
                                b'b' => s.push(8),
                                b'f' => s.push(12),
                                b'0'..=b'7' => {
                                    let mut v = u32::from(e - b'0');
                                    for _ in 0..2 {
                                        if i < n && (b'0'..=b'7').contains(&content[i]) {
                                            v = v * 8 + u32::from(content[i] - b'0');
                                            i += 1;
                                        }
                                    }
                                    s.push(v as u8);
                                }
                                b'\n' => {}
                                b'\r' => {
                                    if content.get(i) == Some(&b'\n') {
                                        i += 1;
                                    }
                                }
                                other => s.push(other),
                            }
                        }
                        b'(' => {
                            depth += 1;
                            s.push(b);
                        }
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                            s.push(b);
                        }
                        _ => s.push(b),
                    }
                }
                out.push(Token::Str(s));
            }
            b'[' | b']' | b'{' | b'}' | b'>' | b')' => i += 1,
            c if c.is_ascii_whitespace() || c == 0 => i += 1,
            _ => {
                let start = i;
                i += 1;
                while i < n
                    && !content[i].is_ascii_whitespace()
                    && !b"[]()<>{}/%".contains(&content[i])
                {
                    i += 1;
                }
                out.push(Token::Word(
                    String::from_utf8_lossy(&content[start..i]).into_owned(),
                ));
            }
        }
    }
    out
}

/// A PDF text string (outline titles, document information, structure tags, alternate
/// text): UTF-16BE after a byte-order mark, UTF-8 after its mark, else PDFDocEncoding
/// (Latin-1 for letters and digits).
fn text_string(b: &[u8]) -> String {
    if let Some(u) = b.strip_prefix(&[0xfe, 0xff]) {
        let units: Vec<u16> = u
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
            .collect();
        String::from_utf16_lossy(&units)
    } else if let Some(u) = b.strip_prefix(&[0xef, 0xbb, 0xbf]) {
        String::from_utf8_lossy(u).into_owned()
    } else {
        b.iter().map(|&x| char::from(x)).collect()
    }
}

/// The strings a content stream shows, each with the font resource selected when shown;
/// a new line (Td, TD, T*, Tm, ', ", BT, ET) as `None`.
fn shown_strings(content: &[u8]) -> Vec<Option<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut font = String::new();
    let mut operands: Vec<String> = Vec::new();
    let mut strings: Vec<Vec<u8>> = Vec::new();
    for t in tokens(content) {
        let word = match t {
            Token::Str(s) => {
                strings.push(s);
                continue;
            }
            Token::Word(w) => w,
        };
        let operand = word.starts_with(|c: char| {
            c == '/' || c == '-' || c == '+' || c == '.' || c.is_ascii_digit()
        }) || matches!(word.as_str(), "true" | "false" | "null");
        if operand {
            operands.push(word);
            continue;
        }
        match word.as_str() {
            "Tf" => font = operands.iter().rev().nth(1).cloned().unwrap_or_default(),
            "Tj" | "TJ" | "'" | "\"" => {
                if word != "Tj" && word != "TJ" {
                    out.push(None);
                }
                for s in strings.drain(..) {
                    out.push(Some((font.clone(), s)));
                }
            }
            "Td" | "TD" | "T*" | "Tm" | "ET" | "BT" => out.push(None),
            _ => {}
        }
        operands.clear();
        strings.clear();
    }
    out
}

/// A dictionary's tokens as words (a string as `()`), for looking up keys.
fn words(raw: &[u8]) -> Vec<String> {
    tokens(raw)
        .into_iter()
        .map(|t| match t {
            Token::Word(w) => w,
            Token::Str(_) => "()".into(),
        })
        .collect()
}

/// The references `N G R` right after `key`: one, or an array's.
fn refs_after(w: &[String], key: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let Some(mut i) = w.iter().position(|x| x == key).map(|a| a + 1) else {
        return out;
    };
    while i + 2 < w.len() && w[i + 2] == "R" {
        let Ok(n) = w[i].parse() else { break };
        out.push(n);
        i += 3;
    }
    out
}

/// The entries `/name N G R` of a dictionary starting at `i`.
fn named_refs(w: &[String], mut i: usize) -> HashMap<String, u32> {
    let mut out = HashMap::new();
    while i + 3 < w.len() && w[i].starts_with('/') && w[i + 3] == "R" {
        let Ok(n) = w[i + 1].parse() else { break };
        out.insert(w[i].clone(), n);
        i += 4;
    }
    out
}

/// The fonts a content stream can select: its holder's (a page's, a form's) resources,
/// inline or by reference, their /Font dictionary inline or by reference.
fn fonts_of(objects: &HashMap<u32, PdfObject>, holder: &[String]) -> HashMap<String, u32> {
    let resources = match refs_after(holder, "/Resources")[..] {
        [r] => words(&objects[&r].raw),
        _ => holder.to_vec(),
    };
    let at = resources.iter().position(|x| x == "/Font");
    let inline = at
        .map(|a| named_refs(&resources, a + 1))
        .unwrap_or_default();
    match refs_after(&resources, "/Font")[..] {
        [r] if inline.is_empty() => named_refs(&words(&objects[&r].raw), 0),
        _ => inline,
    }
}

/// The text a content stream shows, decoded with its fonts' ToUnicode maps; one line per
/// text positioning.
fn shown_text(
    content: &[u8],
    fonts: &HashMap<String, u32>,
    maps: &HashMap<u32, (HashMap<u32, String>, usize)>,
) -> String {
    let mut text = String::new();
    for shown in shown_strings(content) {
        let Some((font, s)) = shown else {
            text.push('\n');
            continue;
        };
        let Some((map, width)) = fonts.get(&font).and_then(|f| maps.get(f)) else {
            // A font without a map: its bytes as they are.
            text.push_str(&String::from_utf8_lossy(&s));
            continue;
        };
        for code in s.chunks(*width) {
            let k = code.iter().fold(0u32, |a, &x| (a << 8) | u32::from(x));
            text.push_str(map.get(&k).map_or("\u{fffd}", String::as_str));
        }
    }
    text
}

/// The text of every page and form of a PDF, as a reader's "copy text" gives it; every
/// inflated stream and every object's strings (outline, document information, structure
/// tree) too. Charts are drawn from SVG with their labels as outlines, not text: the same
/// SVGs are in the HTML, searched there.
fn pdf_texts(path: &Path) -> Vec<(PathBuf, String)> {
    let bytes = std::fs::read(path).unwrap();
    let objects = pdf_objects(&bytes);
    let mut out = vec![(
        path.to_path_buf(),
        String::from_utf8_lossy(&bytes).into_owned(),
    )];
    let strings = |b: &[u8]| -> String {
        tokens(b)
            .into_iter()
            .filter_map(|t| match t {
                Token::Str(s) => Some(text_string(&s)),
                Token::Word(_) => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (num, o) in &objects {
        out.push((path.join(format!("obj {num}")), o.dict.clone()));
        out.push((path.join(format!("obj {num}, strings")), strings(&o.raw)));
        if let Some(d) = &o.data {
            out.push((
                path.join(format!("stream {num}")),
                String::from_utf8_lossy(d).into_owned(),
            ));
            // Objects compressed together in an object stream.
            if o.dict.contains("/ObjStm") {
                out.push((path.join(format!("stream {num}, strings")), strings(d)));
            }
        }
    }
    // Font object → its ToUnicode map.
    let maps: HashMap<u32, (HashMap<u32, String>, usize)> = objects
        .iter()
        .filter_map(|(&n, o)| {
            let w = words(&o.raw);
            if !w.windows(2).any(|p| p[0] == "/Type" && p[1] == "/Font") {
                return None;
            }
            let [to] = refs_after(&w, "/ToUnicode")[..] else {
                return None;
            };
            Some((n, cmap(objects.get(&to)?.data.as_deref()?)))
        })
        .collect();
    assert!(
        !maps.is_empty(),
        "{}: no font with a ToUnicode map",
        path.display()
    );
    let mut pages = 0;
    for (num, o) in &objects {
        let w = words(&o.raw);
        let is = |kind: &str| w.windows(2).any(|p| p[0] == "/Type" && p[1] == kind);
        let form = o.data.is_some() && w.windows(2).any(|p| p[0] == "/Subtype" && p[1] == "/Form");
        let contents: Vec<&[u8]> = if is("/Page") {
            pages += 1;
            refs_after(&w, "/Contents")
                .iter()
                .map(|r| objects[r].data.as_deref().unwrap())
                .collect()
        } else if form {
            vec![o.data.as_deref().unwrap()]
        } else {
            continue;
        };
        let fonts = fonts_of(&objects, &w);
        let text: String = contents
            .iter()
            .map(|c| shown_text(c, &fonts, &maps))
            .collect();
        if text.trim().is_empty() {
            continue;
        }
        out.push((path.join(format!("pdf text of object {num}")), text.clone()));
        // A name broken by hyphenation or set in two runs: letters and digits only.
        out.push((
            path.join(format!("pdf text of object {num}, letters only")),
            compact(&text).to_lowercase(),
        ));
    }
    assert!(pages > 0, "{}: no page", path.display());
    out
}

/// Every text of every file under `dir`, each file read as its reader reads it; fails on
/// a file of a kind it cannot read, so nothing written goes unsearched.
fn every_text(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = texts_under(dir);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            match ext {
                // Read by `texts_under` (text files also searched with references resolved).
                "parquet" => {}
                "csv" | "json" | "jsonl" | "md" | "txt" | "typ" => {}
                "html" | "svg" => {
                    let t = std::fs::read_to_string(&p).unwrap();
                    for t in xml_texts(&t) {
                        out.push((p.clone(), t));
                    }
                }
                "xlsx" => out.extend(xlsx_texts(&p)),
                "pdf" => out.extend(pdf_texts(&p)),
                // Anything else (keyed name hashes, locks): its bytes as text.
                _ => out.push((
                    p.clone(),
                    String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned(),
                )),
            }
        }
    }
    out
}

/// Every planted shape is in the exports before ingestion: the attack is real.
fn assert_planted_in(planted: &Planted, exports: &[(PathBuf, String)], code: &str) {
    let all: String = exports
        .iter()
        .map(|(_, t)| t.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let compacted = compact(&all);
    let lower = all.to_lowercase();
    for c in &planted.codes {
        assert!(compacted.contains(c.as_str()), "{c} was not planted");
    }
    for w in &planted.words {
        assert!(lower.contains(w.as_str()), "{w} was not planted");
    }
    let digits: String = all.chars().filter(char::is_ascii_digit).collect();
    for d in &planted.digits {
        assert!(digits.contains(d.as_str()), "{d} was not planted");
    }
    let spaced = format!(
        "{} {} {} {}",
        &code[..3],
        &code[3..6],
        &code[6..11],
        &code[11..]
    );
    for shape in [
        spaced,
        code.to_lowercase(),
        format!("rif{code}ok"),
        code[..15].to_string(),
        "ottorino.q@example.it".into(),
        "tel 333 765 4321".into(),
        "sig. Quaglierini".into(),
        "QUAGLIERINI OTTORINO".into(),
    ] {
        assert!(all.contains(&shape), "{shape:?} was not planted");
    }
}

#[test]
fn attack_planted_identifiers_never_reach_any_report_output() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut printed = Vec::new();
    run(t, &["key", "new", "--out", "k.key"], &mut printed);
    run(
        t,
        &[
            "simulate",
            "--out",
            "ex",
            "--persons",
            "2000",
            "--tenants",
            "3",
            "--seed",
            "7",
        ],
        &mut printed,
    );
    let exports = t.join("ex");
    // The data cover 2025 and the reports' quarter.
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(exports.join("truth.json")).unwrap()).unwrap();
    let window = &truth["observation_window"];
    assert!(
        window["intake_from"].as_str().unwrap() <= "2025-01-01"
            && window["end"].as_str().unwrap() >= "2026-09-30",
        "{window}"
    );
    let first = occupa_engine::read::read_file(&exports.join("t01/persons.csv")).unwrap();
    let code = first.rows[0].fields.as_ref().unwrap()[first
        .header
        .iter()
        .position(|h| h == "codice_fiscale")
        .unwrap()]
    .to_string();
    let planted = plant(&exports);
    // Read as ingestion reads them (some exports are not UTF-8, as in real life).
    let planted_files: Vec<(PathBuf, String)> = ["persons", "services", "asso"]
        .iter()
        .map(|table| {
            let path = exports.join(format!("t01/{table}.csv"));
            let t = occupa_engine::read::read_file(&path).unwrap();
            let mut text = t.header.join(",");
            for r in &t.rows {
                text.push('\n');
                text.push_str(
                    &r.fields
                        .as_ref()
                        .unwrap()
                        .iter()
                        .collect::<Vec<_>>()
                        .join(","),
                );
            }
            (path, text)
        })
        .collect();
    assert_planted_in(&planted, &planted_files, &code);

    for tenant in TENANTS {
        for table in TABLES {
            let file = format!("ex/{tenant}/{table}.csv");
            let args = [
                "ingest",
                "--data",
                "store",
                "--tenant",
                tenant,
                "--table",
                table,
                "--key-file",
                "k.key",
                &file,
            ];
            let out = run(t, &args, &mut printed);
            let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(s["stored"].as_u64().unwrap() > 0, "{tenant}/{table}: {s}");
        }
    }

    // Each authority's report before the pooled one that counts its part (the order in
    // which a store publishes them; the other order may be refused by the interval audit).
    let reports: [(&str, &[&str]); 5] = [
        (
            "q-t01",
            &[
                "report",
                "quarterly",
                "--period",
                "2026Q3",
                "--tenant",
                "t01",
            ],
        ),
        ("q-pooled", &["report", "quarterly", "--period", "2026Q3"]),
        (
            "y-t01",
            &["report", "annual", "--year", "2025", "--tenant", "t01"],
        ),
        ("y-pooled-it", &["report", "annual", "--year", "2025"]),
        (
            "y-pooled-en",
            &["report", "annual", "--year", "2025", "--lang", "en"],
        ),
    ];
    let mut searched = 0;
    for (out, args) in reports {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--data", "store", "--out", out]);
        let started = std::time::Instant::now();
        run(t, &a, &mut printed);
        eprintln!("{out}: {:.1} s", started.elapsed().as_secs_f64());
        let dir = t.join(out);
        // The outputs are real reports, not empty files.
        for f in ["report.html", "report.pdf", "report.xlsx", "report.json"] {
            assert!(
                std::fs::metadata(dir.join(f)).unwrap().len() > 1000,
                "{out}/{f}"
            );
        }
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
        let tables = report["tables"].as_array().unwrap();
        let with_rows = tables
            .iter()
            .filter(|t| t["rows"].as_array().is_some_and(|r| !r.is_empty()))
            .count();
        assert!(with_rows >= 5, "{out}: {with_rows} tables with rows");
        let csvs = std::fs::read_dir(dir.join("tables")).unwrap().count();
        assert!(csvs >= tables.len(), "{out}: {csvs} CSV files");
        let texts = every_text(&dir);
        // The PDF's text was really read: the tables' titles are in it (compared on
        // letters and digits: a long title may be set on two lines).
        let pdf: String = texts
            .iter()
            .filter(|(p, _)| p.to_string_lossy().contains("pdf text of object"))
            .map(|(_, t)| compact(t))
            .collect();
        let titles = tables
            .iter()
            .filter_map(|t| t["title"].as_str())
            .filter(|title| pdf.contains(&compact(title)))
            .count();
        assert!(
            4 * titles >= 3 * tables.len(),
            "{out}: {titles} of {} table titles in the PDF text",
            tables.len()
        );
        searched += texts.len();
        planted.assert_absent(&texts);
    }
    // The store: its tables, quarantine, audit, name registry, and the ledger of what the
    // reports published.
    let store = t.join("store");
    let ledger = std::fs::read_dir(store.join("ledger")).unwrap().count();
    assert!(ledger > 0, "the reports recorded nothing in the ledger");
    let texts = every_text(&store);
    assert!(
        texts
            .iter()
            .any(|(p, _)| p.to_string_lossy().contains("quarantine"))
    );
    searched += texts.len();
    planted.assert_absent(&texts);
    // Anything else the commands left in their folder or their temporary folder; only the
    // exports (the attacker's input) and the key are not output.
    for e in std::fs::read_dir(t).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if ["ex", "k.key", "store"].contains(&name.as_str())
            || reports.iter().any(|(out, _)| *out == name)
        {
            continue;
        }
        let texts = if p.is_dir() {
            every_text(&p)
        } else {
            vec![(
                p.clone(),
                String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned(),
            )]
        };
        searched += texts.len();
        planted.assert_absent(&texts);
    }
    // And every line the commands printed.
    planted.assert_absent(&printed);
    eprintln!("{searched} texts searched, {} printed", printed.len());
}

/// The search is not vacuous: an identifier in any shape, in any kind of output, is found.
#[test]
fn the_identifier_search_finds_a_leak_in_every_kind_of_output() {
    let planted = Planted {
        codes: vec!["RSSMRA85T10A562S".into(), "48151623420".into()],
        words: vec!["quaglierini".into(), "ottorino.q".into()],
        digits: vec!["3337654321".into()],
    };
    // Found in `texts`, and by the reader named `by` alone (the texts whose path has it).
    let caught = |name: &str, texts: Vec<(PathBuf, String)>, by: &str| {
        let hit = std::panic::catch_unwind(|| planted.assert_absent(&texts)).is_err();
        assert!(hit, "a leak in {name} was not found");
        let only: Vec<(PathBuf, String)> = texts
            .into_iter()
            .filter(|(p, _)| p.to_string_lossy().contains(by))
            .collect();
        assert!(!only.is_empty(), "{name}: nothing read by {by:?}");
        let hit = std::panic::catch_unwind(|| planted.assert_absent(&only)).is_err();
        assert!(hit, "a leak in {name} was not found by {by:?}");
    };
    let clean = vec![(
        PathBuf::from("clean"),
        "Rapporto trimestrale 2026Q3: 1.234 persone".into(),
    )];
    planted.assert_absent(&clean);
    for leak in [
        "CF RSS MRA 85T10 A562S",
        "rssmra85t10a562s",
        "RSSMRA85T10",
        "provv. 48151623420",
        "sig. Quaglierini",
        "scrivere a ottorino.q@example.it",
        "tel 333 765 4321",
    ] {
        caught(
            leak,
            vec![(PathBuf::from("text"), format!("prima {leak} dopo"))],
            "text",
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    // A workbook: a cell, and a sheet's name.
    let x = tmp.path().join("leak.xlsx");
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.write(0, 0, "operatore").unwrap();
    ws.write(1, 0, "Ottorino Quaglierini").unwrap();
    wb.save(&x).unwrap();
    caught("an XLSX cell", xlsx_texts(&x), "sheet 1");
    caught("an XLSX cell", xlsx_texts(&x), "sharedStrings.xml");
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("RSSMRA85T10A562S").unwrap();
    ws.write(0, 0, "x").unwrap();
    wb.save(&x).unwrap();
    caught("an XLSX sheet name", xlsx_texts(&x), "workbook.xml");
    std::fs::remove_file(&x).unwrap();
    // A PDF typeset as the reports are: in a table, in running text, in bold.
    let pdfs = tmp.path().join("pdf");
    std::fs::create_dir(&pdfs).unwrap();
    let p = pdfs.join("leak.pdf");
    for markup in [
        "#table(columns: 2, [Operatore], [Ottorino Quaglierini])",
        "#set par(justify: true)\n#lorem(40) tel 333 765 4321 #lorem(20)",
        "*RSS MRA 85T10 A562S*",
        "= Ottorino Quaglierini\n#lorem(10)",
    ] {
        let pdf = occupa_reports::pdf::render_pdf(markup, &[]).unwrap();
        std::fs::write(&p, pdf).unwrap();
        caught(markup, every_text(&pdfs), "pdf text of object");
    }
    // A clean PDF is clean, and its text is read: no false alarm, no blind search.
    let pdf = occupa_reports::pdf::render_pdf("= Rapporto\n#lorem(200)", &[]).unwrap();
    std::fs::write(&p, pdf).unwrap();
    let texts = every_text(&pdfs);
    assert!(
        texts
            .iter()
            .any(|(p, t)| p.to_string_lossy().contains("pdf text")
                && t.contains("Rapporto")
                && t.contains("Lorem ipsum"))
    );
    planted.assert_absent(&texts);
}
