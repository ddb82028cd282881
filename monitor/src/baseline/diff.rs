//! `emuwatch diff`: two baselines compared rule by rule (destinations, countries, ASNs, file
//! categories, paths, devices, volumes), per app and phase.
use super::*;

/// What a baseline rule checks; one JUnit test case per app and rule.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    Destinations,
    Countries,
    Asns,
    FileCategories,
    Paths,
    Devices,
    Volumes,
}

pub const RULES: [Rule; 7] = [
    Rule::Destinations,
    Rule::Countries,
    Rule::Asns,
    Rule::FileCategories,
    Rule::Paths,
    Rule::Devices,
    Rule::Volumes,
];

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Destinations => "destinations",
            Rule::Countries => "countries",
            Rule::Asns => "asns",
            Rule::FileCategories => "file_categories",
            Rule::Paths => "paths",
            Rule::Devices => "devices",
            Rule::Volumes => "volumes",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Rule::Destinations => "no new destination (address, port, protocol)",
            Rule::Countries => "no new destination country",
            Rule::Asns => "no new destination ASN",
            Rule::FileCategories => "no new file category",
            Rule::Paths => "no new path in a sensitive file category",
            Rule::Devices => "no new camera/microphone/Android-service use",
            Rule::Volumes => "no volume growth beyond the threshold",
        }
    }
}

#[derive(Serialize, Debug, Clone)]
pub struct Item {
    pub rule: Rule,
    pub what: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct Change {
    pub rule: Rule,
    pub what: String,
    pub from: String,
    pub to: String,
    /// An increase beyond the threshold (or a destination's new country/ASN).
    pub regression: bool,
}

#[derive(Serialize, Debug, Clone)]
pub struct PhaseDiff {
    pub phase: Phase,
    pub new: Vec<Item>,
    pub gone: Vec<Item>,
    pub changed: Vec<Change>,
}

#[derive(Serialize, Debug, Clone)]
pub struct AppDiff {
    pub app: String,
    /// `new` (not in the baseline), `gone` (only in the baseline) or `both`.
    pub status: &'static str,
    pub phases: Vec<PhaseDiff>,
}

#[derive(Serialize, Debug, Clone)]
pub struct Diff {
    pub baseline: String,
    pub session: String,
    pub threshold_pct: f64,
    /// New items plus volume increases beyond the threshold.
    pub regressions: usize,
    pub apps: Vec<AppDiff>,
}

/// Items of one profile, per rule, keyed for comparison, with their volumes.
fn items(p: &Profile) -> BTreeMap<(Rule, String), Vec<(String, u64)>> {
    let mut m: BTreeMap<(Rule, String), Vec<(String, u64)>> = BTreeMap::new();
    for d in &p.destinations {
        m.insert(
            (Rule::Destinations, d.label()),
            vec![("connects".into(), d.connects)],
        );
        if d.scope == Some(Scope::Public) {
            m.insert(
                (
                    Rule::Countries,
                    d.country
                        .clone()
                        .unwrap_or_else(|| "(unknown country)".into()),
                ),
                vec![],
            );
            m.insert(
                (
                    Rule::Asns,
                    d.asn
                        .map_or_else(|| "(unknown ASN)".into(), |a| format!("AS{a}")),
                ),
                vec![],
            );
        }
    }
    for (cat, f) in &p.files {
        m.insert(
            (Rule::FileCategories, cat.clone()),
            vec![
                ("opens".into(), f.opens),
                ("bytes read".into(), f.bytes_read),
            ],
        );
        for path in &f.paths {
            m.insert((Rule::Paths, format!("{path} [{cat}]")), vec![]);
        }
    }
    for d in &p.devices {
        for (op, n) in &d.ops {
            m.insert(
                (Rule::Devices, format!("{} {} {op}", d.kind, d.path)),
                vec![("count".into(), *n)],
            );
        }
    }
    m
}

fn grew(from: u64, to: u64, threshold_pct: f64) -> bool {
    to > from && (to as f64) > (from as f64) * (1.0 + threshold_pct / 100.0)
}

/// Compare `cur` with `base`.
pub fn diff(
    base: &Baseline,
    cur: &Baseline,
    base_name: &str,
    cur_name: &str,
    threshold_pct: f64,
) -> Diff {
    let empty = BTreeMap::new();
    let names: BTreeSet<&String> = base.apps.keys().chain(cur.apps.keys()).collect();
    let mut apps = Vec::new();
    let mut regressions = 0;
    for app in names {
        let (b, c) = (base.apps.get(app), cur.apps.get(app));
        let status = match (b, c) {
            (None, _) => "new",
            (_, None) => "gone",
            _ => "both",
        };
        let (b, c) = (b.unwrap_or(&empty), c.unwrap_or(&empty));
        let phases: BTreeSet<&Phase> = b.keys().chain(c.keys()).collect();
        let mut pds = Vec::new();
        for ph in phases {
            let none = Profile::default();
            let bi = items(b.get(ph).unwrap_or(&none));
            let ci = items(c.get(ph).unwrap_or(&none));
            let mut pd = PhaseDiff {
                phase: *ph,
                new: Vec::new(),
                gone: Vec::new(),
                changed: Vec::new(),
            };
            for ((rule, what), vols) in &ci {
                match bi.get(&(*rule, what.clone())) {
                    None => pd.new.push(Item {
                        rule: *rule,
                        what: what.clone(),
                    }),
                    Some(old) => {
                        for ((field, to), (_, from)) in vols.iter().zip(old) {
                            let up = grew(*from, *to, threshold_pct);
                            if up || grew(*to, *from, threshold_pct) {
                                pd.changed.push(Change {
                                    rule: Rule::Volumes,
                                    what: format!("{what}: {field}"),
                                    from: from.to_string(),
                                    to: to.to_string(),
                                    regression: up,
                                });
                            }
                        }
                    }
                }
            }
            for (rule, what) in bi.keys() {
                if !ci.contains_key(&(*rule, what.clone())) {
                    pd.gone.push(Item {
                        rule: *rule,
                        what: what.clone(),
                    });
                }
            }
            regressions += pd.new.len() + pd.changed.iter().filter(|c| c.regression).count();
            if !(pd.new.is_empty() && pd.gone.is_empty() && pd.changed.is_empty()) {
                pds.push(pd);
            }
        }
        if !pds.is_empty() || status != "both" {
            apps.push(AppDiff {
                app: app.clone(),
                status,
                phases: pds,
            });
        }
    }
    Diff {
        baseline: base_name.to_string(),
        session: cur_name.to_string(),
        threshold_pct,
        regressions,
        apps,
    }
}

impl Diff {
    /// Per app and rule: the regressions (failures) and the other differences, as lines.
    pub fn by_rule(&self, app: &str, rule: Rule) -> (Vec<String>, Vec<String>) {
        let (mut bad, mut other) = (Vec::new(), Vec::new());
        for a in self.apps.iter().filter(|a| a.app == app) {
            for p in &a.phases {
                let ph = p.phase.as_str();
                for i in p.new.iter().filter(|i| i.rule == rule) {
                    bad.push(format!("new in {ph}: {}", escape(&i.what)));
                }
                for i in p.gone.iter().filter(|i| i.rule == rule) {
                    other.push(format!("gone from {ph}: {}", escape(&i.what)));
                }
                for c in p.changed.iter().filter(|c| c.rule == rule) {
                    let line = format!("{ph}: {} {} -> {}", escape(&c.what), c.from, c.to);
                    if c.regression {
                        bad.push(line);
                    } else {
                        other.push(line);
                    }
                }
            }
        }
        (bad, other)
    }

    pub fn render_text(&self) -> String {
        let mut out = format!(
            "emuwatch diff: {} -> {} (volume threshold {}%)\n",
            escape(&self.baseline),
            escape(&self.session),
            self.threshold_pct
        );
        if self.apps.is_empty() {
            out.push_str("no differences\n");
            return out;
        }
        for a in &self.apps {
            let status = match a.status {
                "new" => " (new app: not in the baseline)",
                "gone" => " (gone: only in the baseline)",
                _ => "",
            };
            out.push_str(&format!("{}{status}\n", escape(&a.app)));
            for p in &a.phases {
                out.push_str(&format!("  {}\n", p.phase.as_str()));
                for i in &p.new {
                    out.push_str(&format!(
                        "    + {:<15} {}\n",
                        i.rule.as_str(),
                        escape(&i.what)
                    ));
                }
                for i in &p.gone {
                    out.push_str(&format!(
                        "    - {:<15} {}\n",
                        i.rule.as_str(),
                        escape(&i.what)
                    ));
                }
                for c in &p.changed {
                    out.push_str(&format!(
                        "    {} {:<15} {} {} -> {}\n",
                        if c.regression { "!" } else { "~" },
                        c.rule.as_str(),
                        escape(&c.what),
                        c.from,
                        c.to
                    ));
                }
            }
        }
        out.push_str(&format!(
            "{} regression{} (+ new, ! grew beyond the threshold; - gone and ~ shrank are not regressions)\n",
            self.regressions,
            if self.regressions == 1 { "" } else { "s" }
        ));
        out
    }
}
