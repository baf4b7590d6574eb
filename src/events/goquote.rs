//! Go's `strconv.Quote`, because the kubelet formats hook output with `%q` and users compare
//! messages byte for byte. Rust's `{:?}` differs (`\u{1b}` vs `\x1b`, `\'` etc.). Also Go's
//! `time.Duration` text, for the same reason.

use std::time::Duration;

/// Quote `bytes` exactly as Go's `strconv.Quote(string(bytes))` does: printable runes as they
/// are, `\a \b \f \n \r \t \v \\ \"` escaped, other bytes below 0x80 and invalid UTF-8 as `\xNN`,
/// non-printable runes as `\uNNNN` / `\UNNNNNNNN`.
pub fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_rune(&mut out, c);
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

fn push_rune(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        c if is_go_printable(c) => out.push(c),
        c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// Go's `unicode.IsPrint` for the runes hook output contains in practice: ASCII graphic and
/// space are printable; controls (Cc), the non-ASCII spaces (Zs, Zl, Zp), the common format
/// characters (Cf) and private use (Co) are not. Unassigned code points (Cn) are treated as
/// printable, which is the one place this differs from Go: it needs Unicode tables.
fn is_go_printable(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    const NOT_PRINTABLE: &[(u32, u32)] = &[
        (0x80, 0xa0),        // C1 controls, NO-BREAK SPACE
        (0xad, 0xad),        // SOFT HYPHEN
        (0x600, 0x605),      // Arabic number signs
        (0x61c, 0x61c),      // ARABIC LETTER MARK
        (0x6dd, 0x6dd),      // ARABIC END OF AYAH
        (0x70f, 0x70f),      // SYRIAC ABBREVIATION MARK
        (0x1680, 0x1680),    // OGHAM SPACE MARK
        (0x180e, 0x180e),    // MONGOLIAN VOWEL SEPARATOR
        (0x2000, 0x200f),    // spaces, zero-width and direction marks
        (0x2028, 0x202f),    // line/paragraph separators, bidi embeddings, NNBSP
        (0x205f, 0x2064),    // MMSP, word joiner, invisible operators
        (0x2066, 0x206f),    // bidi isolates, deprecated format characters
        (0x3000, 0x3000),    // IDEOGRAPHIC SPACE
        (0xe000, 0xf8ff),    // private use
        (0xfeff, 0xfeff),    // BOM / ZWNBSP
        (0xfff9, 0xfffb),    // interlinear annotation
        (0xe0001, 0xe0001),  // LANGUAGE TAG
        (0xe0020, 0xe007f),  // tags
        (0xf0000, 0x10ffff), // supplementary private use
    ];
    !NOT_PRINTABLE.iter().any(|&(lo, hi)| (lo..=hi).contains(&u))
}

/// Go's `time.Duration.String()` (`%v`) for millisecond-grained durations: `10s`, `5m0s`,
/// `100ms`, `1.5s`. Back-off messages and probe texts print durations this way.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    let (m, s) = ((secs / 60.0).floor() as u64, secs % 60.0);
    let s = if s.fract() == 0.0 {
        format!("{}s", s as u64)
    } else {
        format!("{}s", (s * 1000.0).round() / 1000.0)
    };
    match m {
        0 => s,
        m if m >= 60 => format!("{}h{}m{s}", m / 60, m % 60),
        m => format!("{m}m{s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{go_duration, go_quote};
    use std::time::Duration;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn matches_go_strconv_quote() {
        // Expected values produced by Go 1.22 `strconv.Quote`.
        let cases: &[(&[u8], &str)] = &[
            (b"", r#""""#),
            (b"hello", r#""hello""#),
            (b"a\nb\tc\r", r#""a\nb\tc\r""#),
            (b"quote\" back\\", r#""quote\" back\\""#),
            (b"\x1b[31mred", r#""\x1b[31mred""#),
            (b"\x00\x7f", r#""\x00\x7f""#),
            (b"\xff\xfe", r#""\xff\xfe""#),
            ("héllo ✓".as_bytes(), "\"héllo ✓\""),
            ("\u{a0}".as_bytes(), r#""\u00a0""#),
            ("\u{200b}".as_bytes(), r#""\u200b""#),
            ("\u{feff}".as_bytes(), r#""\ufeff""#),
            ("\u{7}\u{8}\u{b}\u{c}".as_bytes(), r#""\a\b\v\f""#),
            ("'".as_bytes(), r#""'""#),
            ("😀".as_bytes(), "\"😀\""),
            ("\u{10ffff}".as_bytes(), r#""\U0010ffff""#),
        ];
        for (input, want) in cases {
            assert_eq!(go_quote(input), *want, "input {input:?}");
        }
    }
}
