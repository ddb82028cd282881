//! Binder calls: the interface token at the start of a parcel, service-manager lookups (which
//! name the handles of each process), and the rule file that turns (interface, method) into a
//! capability. docs/binder.md describes what is decoded and what is not.
use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::capability::{Capability, TokenLayout};

/// The interface of handle 0.
pub const SERVICE_MANAGER: &str = "android.os.IServiceManager";
/// `B_PACK_CHARS('S','Y','S','T')` / `('V','N','D','R')`: the header libbinder writes after the
/// work-source uid from Android 11 on (system and vendor binder).
const SYST: u32 = 0x5359_5354;
const VNDR: u32 = 0x564e_4452;

/// The interface token of a parcel and where the data after it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub interface: String,
    pub layout: TokenLayout,
    /// Offset of the first byte after the token.
    pub end: usize,
}

fn u32_at(d: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(off..off + 4)?.try_into().ok()?))
}

/// A `String16` (int32 length in UTF-16 units, the units, a NUL unit, padding to 4 bytes) at
/// `off`, if it looks like a name: printable ASCII, NUL-terminated. Returns it and its end.
pub fn string16_at(d: &[u8], off: usize) -> Option<(String, usize)> {
    let len = u32_at(d, off)? as usize;
    if len == 0 || len > 512 {
        return None;
    }
    let start = off + 4;
    let nul = start + 2 * len;
    if d.get(nul..nul + 2)? != [0, 0] {
        return None;
    }
    let mut s = String::with_capacity(len);
    for c in d[start..nul].chunks_exact(2) {
        let u = u16::from_le_bytes([c[0], c[1]]);
        let ch = char::from_u32(u as u32).filter(|c| c.is_ascii_graphic())?;
        s.push(ch);
    }
    Some((s, (nul + 2 + 3) & !3))
}

/// The interface token, its layout detected: strict-mode policy; Android 10+ the work-source
/// uid; Android 11+ the `SYST`/`VNDR` header; then the name as a `String16`.
pub fn token(d: &[u8]) -> Option<Token> {
    let named = |s: &str| s.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let at = |off: usize, layout: TokenLayout| {
        string16_at(d, off)
            .filter(|(s, _)| named(s))
            .map(|(interface, end)| Token {
                interface,
                layout,
                end,
            })
    };
    match u32_at(d, 8) {
        Some(SYST) => return at(12, TokenLayout::System),
        Some(VNDR) => return at(12, TokenLayout::Vendor),
        _ => {}
    }
    at(8, TokenLayout::WorkSource).or_else(|| at(4, TokenLayout::StrictMode))
}

/// The handle a service-manager reply hands over: a `flat_binder_object` of type
/// `BINDER_TYPE_HANDLE` at the start (Android 10's hand-written service manager) or after the
/// int32 status of an AIDL reply (Android 11+). `None`: no service (null binder) or not seen.
pub fn reply_handle(r: &[u8]) -> Option<u32> {
    use monitor_common::binder::BINDER_TYPE_HANDLE;
    [0usize, 4]
        .into_iter()
        .find(|&o| u32_at(r, o) == Some(BINDER_TYPE_HANDLE))
        .and_then(|o| u32_at(r, o + 8))
}

/// `--binder-rules FILE` and `--android-api N` (record and run).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct BinderChoice {
    /// Binder rules (TOML) to use instead of the built-in ones (docs/binder.md).
    #[arg(long, value_name = "FILE")]
    pub binder_rules: Option<std::path::PathBuf>,
    /// Android API level whose method tables apply (default: the guest's
    /// ro.build.version.sdk when `getprop` answers, else the rules' default_api).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..100))]
    pub android_api: Option<u32>,
}

/// The API level the binder rules are read for, and where it came from.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct AndroidApi {
    pub level: u32,
    /// `option` (--android-api), `getprop` (the guest's ro.build.version.sdk) or `default`
    /// (the rules' default_api).
    pub source: String,
}

impl BinderChoice {
    /// The rules and the API level to read them for.
    pub fn resolve(&self) -> Result<(Rules, AndroidApi)> {
        let rules = match &self.binder_rules {
            Some(p) => Rules::load(p)?,
            None => Rules::builtin(),
        };
        let api = match self.android_api {
            Some(level) => AndroidApi {
                level,
                source: "option".into(),
            },
            None => match getprop_sdk() {
                Some(level) => AndroidApi {
                    level,
                    source: "getprop".into(),
                },
                None => AndroidApi {
                    level: rules.default_api,
                    source: "default".into(),
                },
            },
        };
        Ok((rules, api))
    }
}

/// `getprop ro.build.version.sdk`, on an Android guest.
fn getprop_sdk() -> Option<u32> {
    let out = std::process::Command::new("getprop")
        .arg("ro.build.version.sdk")
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The rule file: `monitor/rules/binder.toml` is built in; `--binder-rules FILE` replaces it.
pub const BUILTIN_RULES: &str = include_str!("../../rules/binder.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    /// API level used when neither `--android-api` nor the guest says.
    default_api: u32,
    #[serde(default)]
    interface: Vec<InterfaceFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InterfaceFile {
    name: String,
    /// The service manager name it is usually registered under (documentation).
    #[serde(default)]
    service: Option<String>,
    /// Method -> capability of a call to it.
    #[serde(default)]
    kinds: BTreeMap<String, String>,
    /// The capability of every call, whatever its code.
    #[serde(default)]
    any: Option<String>,
    /// Methods `any` does not cover (their calls stay `binder_call` events).
    #[serde(default)]
    except: Vec<String>,
    /// Content-provider authority -> capability.
    #[serde(default)]
    authorities: BTreeMap<String, String>,
    /// Methods whose codes are hand-written and do not change between releases.
    #[serde(default)]
    fixed: BTreeMap<String, u32>,
    /// Methods in declaration order (code = 1 + index) for the API levels listed.
    #[serde(default)]
    table: Vec<TableFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    apis: Vec<u32>,
    /// Where the order was taken from.
    source: String,
    methods: Vec<String>,
}

#[derive(Debug)]
struct Interface {
    kinds: BTreeMap<String, Capability>,
    any: Option<Capability>,
    except: Vec<String>,
    authorities: BTreeMap<String, Capability>,
    fixed: HashMap<u32, String>,
    /// API level -> methods in code order.
    tables: HashMap<u32, Vec<String>>,
}

/// What a call is, once its interface and code are looked up.
#[derive(Debug, Clone, PartialEq)]
pub struct Meaning {
    pub method: Option<String>,
    pub capability: Option<Capability>,
}

#[derive(Debug)]
pub struct Rules {
    pub default_api: u32,
    interfaces: HashMap<String, Interface>,
}

impl Rules {
    pub fn builtin() -> Rules {
        Rules::parse(BUILTIN_RULES, "built-in binder rules").expect("the built-in rules parse")
    }

    pub fn load(path: &std::path::Path) -> Result<Rules> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("binder rules {}", path.display()))?;
        Rules::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, what: &str) -> Result<Rules> {
        let f: RulesFile = toml::from_str(text).map_err(|e| {
            anyhow::anyhow!("{what}: {}", e.to_string().lines().next().unwrap_or(""))
        })?;
        let mut interfaces = HashMap::new();
        for i in f.interface {
            let cap = |m: &str, k: &str| -> Result<Capability> {
                serde_json::from_value::<Capability>(serde_json::Value::String(k.to_string()))
                    .ok()
                    .filter(|c| !matches!(c, Capability::Connect | Capability::File))
                    .with_context(|| format!("{what}: {}.{m}: unknown kind {k:?}", i.name))
            };
            let mut kinds = BTreeMap::new();
            for (m, k) in &i.kinds {
                kinds.insert(m.clone(), cap(m, k)?);
            }
            let mut authorities = BTreeMap::new();
            for (a, k) in &i.authorities {
                authorities.insert(a.clone(), cap(a, k)?);
            }
            let any = i.any.as_deref().map(|k| cap("any", k)).transpose()?;
            let mut tables = HashMap::new();
            for t in &i.table {
                for &api in &t.apis {
                    if tables.insert(api, t.methods.clone()).is_some() {
                        bail!("{what}: {}: two tables for API {api}", i.name);
                    }
                }
                let _ = &t.source;
            }
            if !i.except.is_empty() && i.any.is_none() {
                bail!("{what}: {}: `except` without `any`", i.name);
            }
            // A rule for a method no table or fixed code lists would never match: a typo.
            for m in i.kinds.keys().chain(&i.except) {
                let listed = i.fixed.contains_key(m)
                    || i.table.iter().any(|t| t.methods.iter().any(|x| x == m));
                if !listed {
                    bail!(
                        "{what}: {}.{m}: no table or fixed code lists this method",
                        i.name
                    );
                }
            }
            let fixed = i.fixed.iter().map(|(m, c)| (*c, m.clone())).collect();
            let _ = &i.service;
            if interfaces
                .insert(
                    i.name.clone(),
                    Interface {
                        kinds,
                        any,
                        except: i.except.clone(),
                        authorities,
                        fixed,
                        tables,
                    },
                )
                .is_some()
            {
                bail!("{what}: interface {} is listed twice", i.name);
            }
        }
        Ok(Rules {
            default_api: f.default_api,
            interfaces,
        })
    }

    pub fn knows(&self, interface: &str) -> bool {
        self.interfaces.contains_key(interface)
    }

    /// The method a code of `interface` is at `api`, and the capability a call to it shows
    /// (`authority`: of the content:// URI in a content-provider call's parcel).
    pub fn meaning(
        &self,
        interface: &str,
        code: u32,
        api: u32,
        authority: Option<&str>,
    ) -> Meaning {
        let Some(i) = self.interfaces.get(interface) else {
            return Meaning {
                method: None,
                capability: None,
            };
        };
        let method = i.fixed.get(&code).cloned().or_else(|| {
            let t = i.tables.get(&api)?;
            t.get((code as usize).checked_sub(1)?).cloned()
        });
        let capability = method
            .as_ref()
            .and_then(|m| i.kinds.get(m).copied())
            .or(i
                .any
                .filter(|_| method.as_ref().is_none_or(|m| !i.except.contains(m))))
            .or_else(|| {
                // A content-provider call reaches data only through query/insert/call... with
                // a known code; the authority says whose data.
                method.as_ref()?;
                i.authorities.get(authority?).copied()
            });
        Meaning { method, capability }
    }
}

/// The authority of the first `content://` URI written as a `String16` in `d` (4-byte
/// aligned, as parcels are) at or after `from`.
pub fn content_authority(d: &[u8], from: usize) -> Option<String> {
    (from..d.len().saturating_sub(8))
        .step_by(4)
        .filter_map(|o| string16_at(d, o))
        .find_map(|(s, _)| {
            let rest = s.strip_prefix("content://")?;
            let auth = rest.split('/').next().unwrap_or(rest);
            (!auth.is_empty()).then(|| auth.to_string())
        })
}

/// Service names of the handles of each process, learnt from its service-manager lookups.
#[derive(Default)]
pub struct Handles {
    by_proc: HashMap<u32, HashMap<u32, String>>,
}

impl Handles {
    pub fn learn(&mut self, tgid: u32, handle: u32, service: String) {
        self.by_proc
            .entry(tgid)
            .or_default()
            .insert(handle, service);
    }

    pub fn name(&self, tgid: u32, handle: u32) -> Option<&str> {
        if handle == 0 {
            return Some("servicemanager");
        }
        self.by_proc.get(&tgid)?.get(&handle).map(String::as_str)
    }

    /// A process exec'd or ended: its handles are gone.
    pub fn forget(&mut self, tgid: u32) {
        self.by_proc.remove(&tgid);
    }
}

#[cfg(test)]
#[path = "binder_tests.rs"]
pub mod tests;
