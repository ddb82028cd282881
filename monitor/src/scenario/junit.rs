//! JUnit XML for a scenario run: one `<testcase>` per expectation and per baseline rule, plus
//! one for the run itself (steps and recording). CI systems (GitLab, Jenkins, GitHub actions)
//! show these per test. quick-xml escapes markup characters; characters XML 1.0 cannot carry
//! at all (most control characters) are written as visible `\u{..}` escapes first.
use std::fmt::Write as _;

use quick_xml::{
    Writer,
    events::{BytesDecl, BytesText, Event},
};

pub enum CaseResult {
    Pass,
    /// The check ran and did not hold.
    Failure {
        message: String,
        text: String,
    },
    /// The check could not be made.
    Error {
        message: String,
        text: String,
    },
}

pub struct Case {
    pub name: String,
    pub classname: String,
    pub result: CaseResult,
    /// Extra text for a passing case (`<system-out>`).
    pub output: String,
}

pub struct Suite {
    pub name: String,
    pub timestamp: String,
    pub hostname: String,
    pub time_s: f64,
    pub properties: Vec<(String, String)>,
    pub cases: Vec<Case>,
}

/// Characters allowed in XML 1.0 documents.
fn xml_char(c: char) -> bool {
    matches!(c as u32, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if xml_char(c) {
            out.push(c);
        } else {
            let _ = write!(out, "\\u{{{:04x}}}", c as u32);
        }
    }
    out
}

impl Suite {
    pub fn failures(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| matches!(c.result, CaseResult::Failure { .. }))
            .count()
    }

    pub fn errors(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| matches!(c.result, CaseResult::Error { .. }))
            .count()
    }

    pub fn render(&self) -> String {
        let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
        self.write(&mut w)
            .expect("writing XML to memory cannot fail");
        let mut s = String::from_utf8(w.into_inner()).expect("the writer emits UTF-8");
        s.push('\n');
        s
    }

    fn write(&self, w: &mut Writer<Vec<u8>>) -> std::io::Result<()> {
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        let tests = self.cases.len().to_string();
        let failures = self.failures().to_string();
        let errors = self.errors().to_string();
        let time = format!("{:.3}", self.time_s);
        let name = clean(&self.name);
        w.create_element("testsuites")
            .with_attribute(("name", name.as_str()))
            .with_attribute(("tests", tests.as_str()))
            .with_attribute(("failures", failures.as_str()))
            .with_attribute(("errors", errors.as_str()))
            .with_attribute(("time", time.as_str()))
            .write_inner_content(|w| {
                w.create_element("testsuite")
                    .with_attribute(("name", name.as_str()))
                    .with_attribute(("tests", tests.as_str()))
                    .with_attribute(("failures", failures.as_str()))
                    .with_attribute(("errors", errors.as_str()))
                    .with_attribute(("skipped", "0"))
                    .with_attribute(("time", time.as_str()))
                    .with_attribute(("timestamp", clean(&self.timestamp).as_str()))
                    .with_attribute(("hostname", clean(&self.hostname).as_str()))
                    .write_inner_content(|w| {
                        w.create_element("properties").write_inner_content(|w| {
                            for (k, v) in &self.properties {
                                w.create_element("property")
                                    .with_attribute(("name", clean(k).as_str()))
                                    .with_attribute(("value", clean(v).as_str()))
                                    .write_empty()?;
                            }
                            Ok(())
                        })?;
                        for c in &self.cases {
                            write_case(w, c)?;
                        }
                        Ok(())
                    })?;
                Ok(())
            })?;
        Ok(())
    }
}

fn write_case(w: &mut Writer<Vec<u8>>, c: &Case) -> std::io::Result<()> {
    let el = w
        .create_element("testcase")
        .with_attribute(("name", clean(&c.name).as_str()))
        .with_attribute(("classname", clean(&c.classname).as_str()))
        .with_attribute(("time", "0"));
    let (tag, message, text) = match &c.result {
        CaseResult::Pass if c.output.is_empty() => {
            el.write_empty()?;
            return Ok(());
        }
        CaseResult::Pass => {
            el.write_inner_content(|w| {
                w.create_element("system-out")
                    .write_text_content(BytesText::new(&clean(&c.output)))?;
                Ok(())
            })?;
            return Ok(());
        }
        CaseResult::Failure { message, text } => ("failure", message, text),
        CaseResult::Error { message, text } => ("error", message, text),
    };
    el.write_inner_content(|w| {
        w.create_element(tag)
            .with_attribute(("message", clean(message).as_str()))
            .with_attribute((
                "type",
                if tag == "failure" {
                    "violation"
                } else {
                    "error"
                },
            ))
            .write_text_content(BytesText::new(&clean(text)))?;
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_invalid_characters() {
        let s = Suite {
            name: "demo <&>".into(),
            timestamp: "2025-01-01T00:00:00Z".into(),
            hostname: "h".into(),
            time_s: 1.5,
            properties: vec![("session".into(), "/tmp/\"s\"".into())],
            cases: vec![
                Case {
                    name: "no connect in closed".into(),
                    classname: "emuwatch.expect".into(),
                    result: CaseResult::Failure {
                        message: "3 connects (limit 0)".into(),
                        text: "file /tmp/a\u{1b}[31m<b>]]>&\u{0}".into(),
                    },
                    output: String::new(),
                },
                Case {
                    name: "ok".into(),
                    classname: "emuwatch.expect".into(),
                    result: CaseResult::Pass,
                    output: String::new(),
                },
            ],
        };
        let x = s.render();
        assert!(
            x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
            "{x}"
        );
        assert!(x.contains("name=\"demo &lt;&amp;&gt;\""), "{x}");
        assert!(x.contains("value=\"/tmp/&quot;s&quot;\""), "{x}");
        assert!(
            x.contains("/tmp/a\\u{001b}[31m&lt;b&gt;]]&gt;&amp;\\u{0000}"),
            "{x}"
        );
        assert!(x.contains("tests=\"2\" failures=\"1\" errors=\"0\""), "{x}");
        assert!(!x.contains('\u{1b}') && !x.contains('\u{0}'));
        // Well-formed: a reader walks it to the end.
        let mut r = quick_xml::Reader::from_str(&x);
        loop {
            match r.read_event().unwrap() {
                Event::Eof => break,
                _ => continue,
            }
        }
    }
}
