//! Strings from the monitored app (paths, process names, labels) made safe for output: for a
//! terminal (`escape`: nothing can move the cursor, change colours or fake a line) and for
//! HTML (`esc`). Shared by the renderers, the scenario runner and the baseline diff.
use std::fmt::Write;

/// Make a string safe and unambiguous on a terminal: control characters (newline, ESC, ...)
/// and invisible formatting characters (bidirectional overrides, zero-width) become visible
/// escapes; a backslash is doubled so an escape cannot be faked.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || is_invisible_format(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Characters that change how text around them is displayed without being seen:
/// bidirectional embeddings/overrides/isolates, zero-width characters, the BOM.
fn is_invisible_format(c: char) -> bool {
    matches!(c as u32, 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x2069 | 0xfeff | 0x061c)
}

/// Shorten to `max` characters, keeping both ends (paths differ at the end).
pub fn ellipsize(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max || max < 5 {
        return s.to_string();
    }
    let head = (max - 1) / 2;
    let tail = max - 1 - head;
    let start: String = s.chars().take(head).collect();
    let end: String = s.chars().skip(n - tail).collect();
    format!("{start}…{end}")
}

/// HTML-escape text or an attribute value (quoted with `"` or `'`).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_controls_and_invisible() {
        assert_eq!(escape("plain /proc/cpuinfo"), "plain /proc/cpuinfo");
        assert_eq!(escape("a\nb"), "a\\nb");
        assert_eq!(escape("\x1b[31mred"), "\\x1b[31mred");
        assert_eq!(escape("\u{202e}gpj.exe"), "\\u{202e}gpj.exe");
        assert_eq!(escape("back\\slash"), "back\\\\slash");
        assert_eq!(escape("\u{9b}"), "\\x9b");
        assert_eq!(escape("naïve café 中文"), "naïve café 中文");
    }

    #[test]
    fn html_escapes_markup() {
        assert_eq!(
            esc("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
    }

    #[test]
    fn ellipsis_keeps_both_ends() {
        assert_eq!(ellipsize("abcdefghij", 20), "abcdefghij");
        assert_eq!(ellipsize("/very/long/path/to/file.db", 11), "/very…le.db");
        assert_eq!(
            ellipsize("/very/long/path/to/file.db", 11).chars().count(),
            11
        );
    }
}
