//! How Go's `gopkg.in/yaml.v3` writes one string in block context, which is what a schematic's ID
//! depends on.
//!
//! The encoder first asks whether the text would read back as something other than a string
//! (`true`, `10`, `1.5`, `~`, `2024-01-02`, YAML 1.1's `yes`/`off`, sexagesimal `1:30`); such text
//! is double-quoted. Otherwise it asks for a plain scalar and the emitter falls back to single
//! quotes when the text cannot be plain (a leading indicator such as `{` or `*`, `: `, ` #`,
//! surrounding spaces), and to double quotes when single quotes cannot hold it either (control
//! characters). Lines are never folded: yaml.v3 writes with an unlimited width.

/// The text as yaml.v3 writes it as a mapping value or sequence item. `None` for text with a
/// line break, which yaml.v3 writes as a literal block: schematics have no use for one.
pub fn scalar(s: &str) -> Option<String> {
    if s.contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']) {
        return None;
    }
    let analysis = Analysis::of(s);
    if resolves_to_other_type(s) || !analysis.single_allowed {
        return Some(double_quoted(s));
    }
    if analysis.plain_allowed {
        Some(s.to_owned())
    } else {
        Some(format!("'{}'", s.replace('\'', "''")))
    }
}

/// Whether yaml.v3 would read `s`, unquoted, as a non-string (its `resolve` plus the YAML 1.1
/// booleans and base-60 floats it still quotes for older readers).
fn resolves_to_other_type(s: &str) -> bool {
    const NON_STRINGS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", ".nan",
        ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf",
        "-.INF",
    ];
    const OLD_BOOLS: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N", "no", "No", "NO", "off", "Off",
        "OFF",
    ];
    if NON_STRINGS.contains(&s) || OLD_BOOLS.contains(&s) || is_base60_float(s) {
        return true;
    }
    match s.as_bytes()[0] {
        b'.' => is_float(s),
        b'0'..=b'9' | b'+' | b'-' => {
            let plain = s.replace('_', "");
            is_timestamp(s) || is_go_int(&plain) || is_float(&plain) || is_prefixed_int(&plain)
        }
        _ => false,
    }
}

fn digits(s: &str, radix: u32) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_digit(radix))
}

fn unsigned(s: &str) -> &str {
    s.strip_prefix(['+', '-']).unwrap_or(s)
}

/// Go's `strconv.ParseInt(s, 0, 64)` syntax: decimal, `0x`, `0o`, `0b`, or a leading-zero octal.
fn is_go_int(s: &str) -> bool {
    let u = unsigned(s);
    if let Some(rest) = u.strip_prefix("0x").or_else(|| u.strip_prefix("0X")) {
        return digits(rest, 16);
    }
    if let Some(rest) = u.strip_prefix("0o").or_else(|| u.strip_prefix("0O")) {
        return digits(rest, 8);
    }
    if let Some(rest) = u.strip_prefix("0b").or_else(|| u.strip_prefix("0B")) {
        return digits(rest, 2);
    }
    match u.strip_prefix('0') {
        Some(rest) => rest.is_empty() || digits(rest, 8),
        None => digits(u, 10),
    }
}

/// yaml.v3's own `0b`/`0o` forms after a sign, which `ParseInt` refuses but the resolver takes.
fn is_prefixed_int(s: &str) -> bool {
    let u = s.strip_prefix('-').unwrap_or(s);
    u.strip_prefix("0b").is_some_and(|r| digits(r, 2))
        || u.strip_prefix("0o").is_some_and(|r| digits(r, 8))
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_float(s: &str) -> bool {
    let u = unsigned(s);
    let (mantissa, exponent) = match u.find(['e', 'E']) {
        Some(i) => (&u[..i], Some(&u[i + 1..])),
        None => (u, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac, 10),
        Some((int, frac)) => digits(int, 10) && (frac.is_empty() || digits(frac, 10)),
        None => digits(mantissa, 10),
    };
    mantissa_ok && exponent.is_none_or(|e| digits(unsigned(e), 10))
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`
fn is_base60_float(s: &str) -> bool {
    let u = unsigned(s);
    let (body, frac) = match u.split_once('.') {
        Some((b, f)) => (b, Some(f)),
        None => (u, None),
    };
    let mut parts = body.split(':');
    let head = parts.next().unwrap_or("");
    let head_ok = head.starts_with(|c: char| c.is_ascii_digit())
        && head.chars().all(|c| c.is_ascii_digit() || c == '_');
    let mut sixties = 0;
    for p in parts {
        let ok =
            matches!(p.len(), 1 | 2) && digits(p, 10) && (p.len() == 1 || p.as_bytes()[0] <= b'5');
        if !ok {
            return false;
        }
        sixties += 1;
    }
    head_ok && sixties > 0 && frac.is_none_or(|f| f.chars().all(|c| c.is_ascii_digit() || c == '_'))
}

/// The date and date-time forms yaml.v3 reads as timestamps (`2006-1-2`, `2006-1-2T15:4:5Z`…).
fn is_timestamp(s: &str) -> bool {
    let (date, time) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut d = date.split('-');
    let date_ok = matches!(
        (d.next(), d.next(), d.next(), d.next()),
        (Some(y), Some(m), Some(day), None)
            if y.len() == 4 && digits(y, 10)
                && (1..=2).contains(&m.len()) && digits(m, 10)
                && (1..=2).contains(&day.len()) && digits(day, 10)
    );
    let time_ok = time.is_none_or(|t| {
        let t = t.trim_end_matches('Z');
        let t = t.split(['+', '-']).next().unwrap_or(t);
        let t = t.split('.').next().unwrap_or(t);
        let mut hms = t.split(':');
        [hms.next(), hms.next(), hms.next()]
            .iter()
            .all(|p| p.is_some_and(|p| (1..=2).contains(&p.len()) && digits(p, 10)))
            && hms.next().is_none()
    });
    date_ok && time_ok
}

/// What libyaml's `yaml_emitter_analyze_scalar` concludes, for block context.
struct Analysis {
    plain_allowed: bool,
    single_allowed: bool,
}

impl Analysis {
    fn of(s: &str) -> Analysis {
        let chars: Vec<char> = s.chars().collect();
        let blank = |c: Option<&char>| c.is_none_or(|c| *c == ' ' || *c == '\t');
        let mut block_indicators = s.starts_with("---") || s.starts_with("...");
        let mut special = false;
        let mut preceded_by_whitespace = true;
        for (i, &c) in chars.iter().enumerate() {
            let followed_by_whitespace = blank(chars.get(i + 1));
            if i == 0 {
                block_indicators |= "#,[]{}&*!|>'\"%@`".contains(c)
                    || (matches!(c, '?' | ':' | '-') && followed_by_whitespace);
            } else {
                block_indicators |=
                    (c == ':' && followed_by_whitespace) || (c == '#' && preceded_by_whitespace);
            }
            special |= !printable(c);
            preceded_by_whitespace = c == ' ' || c == '\t';
        }
        let edge_space = chars.first() == Some(&' ') || chars.last() == Some(&' ');
        Analysis {
            plain_allowed: !block_indicators && !special && !edge_space,
            single_allowed: !special,
        }
    }
}

/// libyaml's `is_printable`: what may stand unescaped (tab is not among it).
fn printable(c: char) -> bool {
    matches!(c as u32,
        0x0A | 0x20..=0x7E | 0x85 | 0xA0..=0xD7FF | 0x10000..=0x10FFFF)
        || matches!(c as u32, 0xE000..=0xFFFD if c != '\u{FEFF}')
}

fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\u{1b}' => out.push_str("\\e"),
            '\u{a0}' => out.push_str("\\_"),
            '\u{feff}' => out.push_str("\\uFEFF"),
            c if printable(c) => out.push(c),
            c if (c as u32) <= 0xFF => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::scalar;

    #[track_caller]
    fn writes(input: &str, expected: &str) {
        assert_eq!(scalar(input).as_deref(), Some(expected), "{input:?}");
    }

    #[test]
    fn ordinary_text_is_plain() {
        for s in [
            "siderolabs/qemu-guest-agent",
            "console=ttyS0,115200",
            "net.ifnames=0",
            "-talos.halt_if_installed",
            "a:b",
            "a#b",
            "foo bar",
            "<<",
        ] {
            writes(s, s);
        }
    }

    #[test]
    fn text_that_reads_as_another_type_is_double_quoted() {
        for s in [
            "",
            "true",
            "No",
            "off",
            "y",
            "~",
            "null",
            "10",
            "-3",
            "0x1F",
            "0o17",
            "017",
            "1_000",
            "1.5",
            ".5",
            "1e3",
            "+.inf",
            ".NaN",
            "1:30",
            "2024-01-02",
            "2024-1-2T10:00:00Z",
        ] {
            writes(s, &format!("\"{s}\""));
        }
    }

    #[test]
    fn text_that_cannot_be_plain_is_single_quoted() {
        writes("{}", "'{}'");
        writes("*star", "'*star'");
        writes("- item", "'- item'");
        writes("key: value", "'key: value'");
        writes("a #comment", "'a #comment'");
        writes(" padded", "' padded'");
        writes("it's: x", "'it''s: x'");
        writes("---", "'---'");
    }

    #[test]
    fn control_characters_are_escaped_in_double_quotes() {
        writes("a\tb", "\"a\\tb\"");
        writes("bell\u{7}", "\"bell\\a\"");
    }

    #[test]
    fn line_breaks_are_refused() {
        assert_eq!(scalar("a\nb"), None);
    }

    #[test]
    fn numbers_go_refuses_stay_plain() {
        // Go's ParseInt does not take `08` (octal) but the float pattern does.
        writes("08", "\"08\"");
        writes("1.2.3", "1.2.3");
        writes("v1.13.0", "v1.13.0");
        writes("0xZZ", "0xZZ");
    }
}
