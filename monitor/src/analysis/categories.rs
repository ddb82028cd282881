//! File categories: which kind of data a path holds (device identifiers, media, another app's
//! data, library noise, ...). The rules are a TOML file; the built-in one is
//! `categories.toml` beside this file, documented in docs/categories.md.
use std::path::Path;

use anyhow::{Context, Result, bail};
use glob::{MatchOptions, Pattern};
use serde::{Deserialize, Serialize};

pub const BUILTIN: &str = include_str!("categories.toml");
/// The category of a path no rule matches, and of an unknown path.
pub const OTHER: &str = "other";
const PACKAGE: &str = "{package}";

const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    include_builtin: bool,
    #[serde(default)]
    category: Vec<RuleEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    sensitive: bool,
    #[serde(default)]
    noise: bool,
    #[serde(default)]
    patterns: Vec<String>,
}

/// A category as reports describe it.
#[derive(Debug, Clone, Serialize)]
pub struct CategoryInfo {
    pub name: String,
    pub description: String,
    /// An access while the app is in background or closed is a finding.
    pub sensitive: bool,
    /// Collapsed in text and HTML reports.
    pub noise: bool,
}

struct Rule {
    /// Index into `Categories::info`.
    category: usize,
    /// The pattern text, with `{package}` not yet substituted.
    text: String,
    /// Compiled once when the pattern has no `{package}`.
    fixed: Option<Pattern>,
}

pub struct Categories {
    info: Vec<CategoryInfo>,
    rules: Vec<Rule>,
    /// `built-in` or the rule file's path.
    pub source: String,
}

impl Categories {
    pub fn builtin() -> Categories {
        Categories::parse(BUILTIN, "built-in")
            .expect("the built-in categories.toml is valid (unit-tested)")
    }

    /// Load a rule file (see docs/categories.md).
    pub fn load(path: &Path) -> Result<Categories> {
        let text = crate::safefs::read_regular_text(path, crate::safefs::TEXT_LIMIT)
            .with_context(|| format!("read categories file {}", path.display()))?;
        Categories::parse(&text, &path.display().to_string())
            .with_context(|| format!("categories file {}", path.display()))
    }

    pub fn parse(text: &str, source: &str) -> Result<Categories> {
        let file: RuleFile =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", one_line(&e.to_string())))?;
        let mut entries = file.category;
        if file.include_builtin {
            let builtin: RuleFile = toml::from_str(BUILTIN).expect("built-in categories parse");
            entries.extend(builtin.category);
        }
        let mut cats = Categories {
            info: Vec::new(),
            rules: Vec::new(),
            source: source.to_string(),
        };
        for e in entries {
            if e.name.is_empty()
                || !e
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                bail!(
                    "category name {:?}: use letters, digits, `_` and `-`",
                    e.name
                );
            }
            // A user file that redefines a built-in category (include_builtin) replaces its
            // description and flags; patterns from both are kept, the user's first.
            let idx = match cats.info.iter().position(|c| c.name == e.name) {
                Some(i) => i,
                None => {
                    cats.info.push(CategoryInfo {
                        name: e.name.clone(),
                        description: e.description.clone(),
                        sensitive: e.sensitive,
                        noise: e.noise,
                    });
                    cats.info.len() - 1
                }
            };
            for p in e.patterns {
                cats.add_rule(idx, &p)
                    .with_context(|| format!("category {}", e.name))?;
            }
        }
        if !cats.info.iter().any(|c| c.name == OTHER) {
            cats.info.push(CategoryInfo {
                name: OTHER.to_string(),
                description: "Everything no other category matched.".to_string(),
                sensitive: false,
                noise: false,
            });
        }
        Ok(cats)
    }

    fn add_rule(&mut self, category: usize, text: &str) -> Result<()> {
        if !text.starts_with('/') {
            bail!("pattern {text:?}: must be an absolute path pattern (start with `/`)");
        }
        let rest = text.replace(PACKAGE, "");
        if rest.contains('{') || rest.contains('}') {
            bail!("pattern {text:?}: the only placeholder is {PACKAGE}");
        }
        // Check the syntax now, with a stand-in package name.
        for variant in expand(&text.replace(PACKAGE, "p")) {
            Pattern::new(&variant).map_err(|e| anyhow::anyhow!("pattern {text:?}: {e}"))?;
        }
        let mut push = |t: String| {
            let fixed = (!t.contains(PACKAGE)).then(|| Pattern::new(&t).expect("checked above"));
            self.rules.push(Rule {
                category,
                text: t,
                fixed,
            });
        };
        for variant in expand(text) {
            push(variant);
        }
        Ok(())
    }

    /// Every category, in rule order, `other` last (unless a rule file placed it).
    pub fn all(&self) -> &[CategoryInfo] {
        &self.info
    }

    /// The rules with `{package}` filled in for one app.
    pub fn for_app(&self, app: &str) -> AppCategories<'_> {
        let package = app.split(':').next().unwrap_or(app);
        let escaped = Pattern::escape(package);
        let compiled = self
            .rules
            .iter()
            .map(|r| match &r.fixed {
                Some(p) => (r.category, p.clone()),
                None => (
                    r.category,
                    Pattern::new(&r.text.replace(PACKAGE, &escaped))
                        .expect("an escaped package keeps a valid pattern"),
                ),
            })
            .collect();
        AppCategories {
            cats: self,
            compiled,
        }
    }
}

/// `/a/**` also matches `/a`: the glob crate needs a separate pattern for that.
fn expand(text: &str) -> Vec<String> {
    match text.strip_suffix("/**") {
        Some(base) if !base.is_empty() => vec![text.to_string(), base.to_string()],
        _ => vec![text.to_string()],
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub struct AppCategories<'a> {
    cats: &'a Categories,
    compiled: Vec<(usize, Pattern)>,
}

impl AppCategories<'_> {
    /// The category of a path (`other` for an unknown path or one no rule matches), as an
    /// index into `Categories::all()`.
    pub fn classify(&self, path: Option<&str>) -> usize {
        let hit = path.and_then(|p| {
            self.compiled
                .iter()
                .find(|(_, pat)| pat.matches_with(p, MATCH))
                .map(|(i, _)| *i)
        });
        hit.unwrap_or_else(|| {
            self.cats
                .info
                .iter()
                .position(|c| c.name == OTHER)
                .expect("`other` always exists")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Categories {
        fn info(&self, name: &str) -> Option<&CategoryInfo> {
            self.info.iter().find(|c| c.name == name)
        }
    }

    impl AppCategories<'_> {
        fn name(&self, path: Option<&str>) -> &str {
            &self.cats.info[self.classify(path)].name
        }
    }

    fn cat(app: &str, path: &str) -> String {
        Categories::builtin()
            .for_app(app)
            .name(Some(path))
            .to_string()
    }

    #[test]
    fn builtin_rules_parse() {
        let c = Categories::builtin();
        let names: Vec<&str> = c.all().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "device_identifiers",
                "contacts_accounts_sms",
                "media",
                "own_app_data",
                "other_apps_data",
                "system_libraries_fonts",
                "other"
            ]
        );
        assert!(c.info("device_identifiers").unwrap().sensitive);
        assert!(c.info("system_libraries_fonts").unwrap().noise);
        assert!(!c.info("own_app_data").unwrap().sensitive);
        assert!(!c.info("other").unwrap().sensitive);
    }

    #[test]
    fn device_identifiers() {
        let app = "com.example.spyapp";
        for p in [
            "/proc/cpuinfo",
            "/sys/class/net/eth0/address",
            "/sys/class/net/wlan0/address",
            "/sys/devices/virtual/net/dummy0/address",
            "/proc/net/arp",
            "/proc/net/if_inet6",
            "/proc/1234/net/tcp6",
            "/system/build.prop",
            "/vendor/build.prop",
            "/sys/devices/soc0/serial_number",
            "/proc/sys/kernel/random/boot_id",
            "/etc/machine-id",
            "/sys/class/dmi/id/product_uuid",
        ] {
            assert_eq!(cat(app, p), "device_identifiers", "{p}");
        }
        // Not identifiers: a sibling file, and the directory of MAC addresses without a file.
        assert_eq!(cat(app, "/sys/class/net/eth0/mtu"), "other");
        assert_eq!(cat(app, "/proc/cpuinfo2"), "other");
    }

    #[test]
    fn own_and_other_app_data() {
        let app = "com.example.spyapp";
        assert_eq!(
            cat(app, "/data/data/com.example.spyapp/shared_prefs/a.xml"),
            "own_app_data"
        );
        assert_eq!(cat(app, "/data/data/com.example.spyapp"), "own_app_data");
        assert_eq!(
            cat(app, "/data/user/0/com.example.spyapp/files/x"),
            "own_app_data"
        );
        assert_eq!(
            cat(
                app,
                "/storage/emulated/0/Android/data/com.example.spyapp/cache/x"
            ),
            "own_app_data"
        );
        assert_eq!(
            cat(app, "/data/app/~~abc==/com.example.spyapp-xyz==/base.apk"),
            "own_app_data"
        );
        // Its own native libraries are its own data, not library noise.
        assert_eq!(
            cat(app, "/data/data/com.example.spyapp/lib/libx.so"),
            "own_app_data"
        );
        assert_eq!(
            cat(app, "/data/data/com.whatsapp/databases/msgstore.db"),
            "other_apps_data"
        );
        assert_eq!(
            cat(app, "/data/user/0/org.telegram.messenger/files/cache4.db"),
            "other_apps_data"
        );
        assert_eq!(
            cat(app, "/data/user/10/com.example.spyapp.other/x"),
            "other_apps_data"
        );
        // A package whose name is a prefix of another's does not own the other's data.
        assert_eq!(
            cat("com.example.spy", "/data/data/com.example.spyapp/x"),
            "other_apps_data"
        );
        // A process name `package:service` is the package's.
        assert_eq!(
            cat("com.example.spyapp:push", "/data/data/com.example.spyapp/x"),
            "own_app_data"
        );
        // Glob characters in an app name are literal.
        assert_eq!(
            cat("weird[app]*", "/data/data/weird[app]*/x"),
            "own_app_data"
        );
        assert_eq!(cat("weird[app]*", "/data/data/weirda/x"), "other_apps_data");
    }

    #[test]
    fn contacts_media_noise() {
        let app = "com.example.spyapp";
        assert_eq!(
            cat(
                app,
                "/data/data/com.android.providers.contacts/databases/contacts2.db"
            ),
            "contacts_accounts_sms"
        );
        assert_eq!(
            cat(
                app,
                "/data/user_de/0/com.android.providers.telephony/databases/mmssms.db"
            ),
            "contacts_accounts_sms"
        );
        assert_eq!(
            cat(app, "/data/system_ce/0/accounts_ce.db"),
            "contacts_accounts_sms"
        );
        assert_eq!(cat(app, "/sdcard/DCIM/Camera/IMG_0001.jpg"), "media");
        assert_eq!(
            cat(app, "/storage/emulated/0/Pictures/Screenshots/s.png"),
            "media"
        );
        assert_eq!(cat(app, "/system/lib64/libc.so"), "system_libraries_fonts");
        assert_eq!(
            cat(app, "/apex/com.android.runtime/lib64/bionic/libc.so"),
            "system_libraries_fonts"
        );
        assert_eq!(
            cat(app, "/usr/lib/x86_64-linux-gnu/libc.so.6"),
            "system_libraries_fonts"
        );
        assert_eq!(
            cat(app, "/system/fonts/Roboto-Regular.ttf"),
            "system_libraries_fonts"
        );
        assert_eq!(cat(app, "/etc/ld.so.cache"), "system_libraries_fonts");
        assert_eq!(cat(app, "/tmp/x.txt"), "other");
        assert_eq!(Categories::builtin().for_app(app).name(None), "other");
    }

    #[test]
    fn user_rules_replace_or_extend() {
        let own = Categories::parse(
            "[[category]]\nname = \"secrets\"\nsensitive = true\npatterns = [\"/home/*/.ssh/**\"]\n",
            "test",
        )
        .unwrap();
        let a = own.for_app("x");
        assert_eq!(a.name(Some("/home/u/.ssh/id_ed25519")), "secrets");
        // Without include_builtin the built-in rules are gone.
        assert_eq!(a.name(Some("/proc/cpuinfo")), "other");

        let ext = Categories::parse(
            "include_builtin = true\n[[category]]\nname = \"secrets\"\nsensitive = true\npatterns = [\"/home/*/.ssh/**\"]\n",
            "test",
        )
        .unwrap();
        let a = ext.for_app("x");
        assert_eq!(a.name(Some("/home/u/.ssh/id_ed25519")), "secrets");
        assert_eq!(a.name(Some("/proc/cpuinfo")), "device_identifiers");
        assert_eq!(ext.all()[0].name, "secrets");
    }

    #[test]
    fn bad_rule_files_are_errors() {
        for (text, want) in [
            (
                "[[category]]\nname = \"x\"\npatterns = [\"relative/*\"]\n",
                "absolute",
            ),
            (
                "[[category]]\nname = \"x\"\npatterns = [\"/a/[\"]\n",
                "pattern",
            ),
            (
                "[[category]]\nname = \"x\"\npatterns = [\"/a/{app}/x\"]\n",
                "placeholder",
            ),
            ("[[category]]\nname = \"x y\"\n", "category name"),
            (
                "[[category]]\nname = \"x\"\nsensitiv = true\n",
                "unknown field",
            ),
            ("not toml at all [", ""),
        ] {
            let e = Categories::parse(text, "t")
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            assert!(!e.is_empty() && e.contains(want), "{text:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }
}
