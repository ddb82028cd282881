//! The values a scenario file holds, each checked while the TOML is read: templates with
//! placeholders, durations, sizes, bands, globs, commands, host name patterns.
use super::*;

/// Placeholders a string in a scenario may use.
pub const PLACEHOLDERS: &[&str] = &["work", "session", "bin_dir", "scenario_dir"];

/// Values for the placeholders of one run.
#[derive(Debug, Clone)]
pub struct Vars {
    /// A scratch directory created for the run and removed at its end.
    pub work: PathBuf,
    /// The session directory.
    pub session: PathBuf,
    /// The directory of the running `emuwatch` (where `emuwatch-simapp` is installed too).
    pub bin_dir: PathBuf,
    /// The directory holding the scenario file.
    pub scenario_dir: PathBuf,
}

/// Expand `{name}` placeholders with `var`; `{{` and `}}` are literal braces.
fn expand_with(
    s: &str,
    mut var: impl FnMut(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
        } else if tail.starts_with('}') {
            return Err(format!(
                "unmatched `}}` in {s:?} (write `}}}}` for a literal brace)"
            ));
        } else {
            let end = tail.find('}').ok_or_else(|| {
                format!("unclosed `{{` in {s:?} (write `{{{{` for a literal brace)")
            })?;
            out.push_str(&var(&tail[1..end])?);
            rest = &tail[end + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn env_name(name: &str) -> Option<&str> {
    let n = name.strip_prefix("env:")?;
    (!n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(n)
}

/// A string with placeholders (`{work}`, `{session}`, `{bin_dir}`, `{scenario_dir}`,
/// `{env:NAME}`), checked when the scenario is read.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Template(String);

impl TryFrom<String> for Template {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        expand_with(&s, |name| {
            if PLACEHOLDERS.contains(&name) || env_name(name).is_some() {
                Ok(String::new())
            } else {
                Err(format!(
                    "unknown placeholder {{{name}}} (known: {}, {{env:NAME}}; write {{{{ for a literal brace)",
                    PLACEHOLDERS
                        .iter()
                        .map(|p| format!("{{{p}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
        })?;
        Ok(Template(s))
    }
}

impl Template {
    pub fn expand(&self, vars: &Vars) -> anyhow::Result<String> {
        expand_with(&self.0, |name| {
            let p = match name {
                "work" => &vars.work,
                "session" => &vars.session,
                "bin_dir" => &vars.bin_dir,
                "scenario_dir" => &vars.scenario_dir,
                _ => {
                    let n = env_name(name).expect("checked when the scenario was read");
                    return std::env::var(n)
                        .map_err(|_| format!("environment variable {n} is not set ({{{name}}})"));
                }
            };
            Ok(p.to_string_lossy().into_owned())
        })
        .map_err(anyhow::Error::msg)
    }

    /// The text as written in the scenario.
    pub fn raw(&self) -> &str {
        &self.0
    }
}

/// `"30s"`, `"500ms"`, `"2m"`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct Dur(pub Duration);

impl TryFrom<String> for Dur {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        crate::record::parse_duration(&s).map(Dur)
    }
}

/// A recording's maximum duration: a `Dur` above zero.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct RecordDur(pub Duration);

impl TryFrom<String> for RecordDur {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        crate::record::parse_record_duration(&s).map(RecordDur)
    }
}

/// A poll period: a `Dur` above zero, at most 1s.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct PollDur(pub Duration);

impl TryFrom<String> for PollDur {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        crate::record::parse_poll(&s).map(PollDur)
    }
}

/// A ring buffer size: `"8M"`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct Size(pub u32);

impl TryFrom<String> for Size {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        crate::record::parse_size(&s).map(Size)
    }
}

/// An ActivityManager band name (docs/events.md), with its lowest oom_score_adj.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Band {
    pub name: String,
    pub floor: i32,
}

impl TryFrom<String> for Band {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        use crate::enrich::android::band;
        // The lowest score in the band, from the one table of bands.
        let floor = (-1000..=1000).find(|adj| band(*adj) == s).ok_or_else(|| {
            let mut names: Vec<&str> = (-1000..=1000).map(band).collect();
            names.dedup();
            format!("unknown band {s:?} (one of {})", names.join(", "))
        })?;
        Ok(Band { name: s, floor })
    }
}

/// A path glob (`*`, `?`, `[...]`, `**`).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Glob(pub glob::Pattern);

impl TryFrom<String> for Glob {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        glob::Pattern::new(&s)
            .map(Glob)
            .map_err(|e| format!("bad path pattern {s:?}: {e}"))
    }
}

/// A command: a string (run with `sh -c`) or an array (program and arguments, no shell).
#[derive(Debug, Clone)]
pub enum Cmd {
    Shell(Template),
    Argv(Vec<Template>),
}

impl<'de> Deserialize<'de> for Cmd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Cmd;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command: a string (run with sh -c) or an array of strings")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Cmd, E> {
                if s.trim().is_empty() {
                    return Err(E::custom("empty command"));
                }
                Template::try_from(s.to_string())
                    .map(Cmd::Shell)
                    .map_err(E::custom)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Cmd, A::Error> {
                let mut v = Vec::new();
                while let Some(t) = seq.next_element::<Template>()? {
                    v.push(t);
                }
                if v.is_empty() {
                    return Err(de::Error::custom("empty command"));
                }
                Ok(Cmd::Argv(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl Cmd {
    /// The argv to execute.
    pub fn argv(&self, vars: &Vars) -> anyhow::Result<Vec<String>> {
        Ok(match self {
            Cmd::Shell(t) => vec!["sh".into(), "-c".into(), t.expand(vars)?],
            Cmd::Argv(v) => v.iter().map(|t| t.expand(vars)).collect::<Result<_, _>>()?,
        })
    }

    /// The command as written, for messages.
    pub fn text(&self) -> String {
        match self {
            Cmd::Shell(t) => t.raw().to_string(),
            Cmd::Argv(v) => v.iter().map(Template::raw).collect::<Vec<_>>().join(" "),
        }
    }
}

/// A destination name pattern of `hosts`: `name` matches that name, `*.suffix` any name
/// ending in `.suffix` (not `suffix` itself); both ignore case and a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern(String);

impl HostPattern {
    pub fn parse(s: &str) -> Result<HostPattern, String> {
        let t = s.trim().trim_end_matches('.').to_ascii_lowercase();
        let body = t.strip_prefix("*.").unwrap_or(&t);
        if body.is_empty()
            || body.contains('*')
            || !body
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "`hosts`: {s:?} is not a host name or `*.domain` pattern"
            ));
        }
        Ok(HostPattern(t))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, host: &str) -> bool {
        let h = host.trim_end_matches('.').to_ascii_lowercase();
        match self.0.strip_prefix("*.") {
            Some(suffix) => h
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
            None => h == self.0,
        }
    }
}
