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
            // A rule for a method no table or fixed code lists would never match: a typo.
            for m in i.kinds.keys() {
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
            .or(i.any)
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
pub mod tests {
    use super::*;

    /// A parcel as libbinder writes it: `writeInterfaceToken` then a `String16`.
    pub fn parcel(layout: TokenLayout, interface: &str, then: Option<&str>) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend(0x4000_0000u32.to_le_bytes()); // strict mode | STRICT_MODE_PENALTY_GATHER
        if layout != TokenLayout::StrictMode {
            p.extend((-1i32).to_le_bytes()); // work source: none
        }
        match layout {
            TokenLayout::System => p.extend(SYST.to_le_bytes()),
            TokenLayout::Vendor => p.extend(VNDR.to_le_bytes()),
            _ => {}
        }
        let mut s16 = |s: &str| {
            p.extend((s.len() as u32).to_le_bytes());
            for u in s.encode_utf16() {
                p.extend(u.to_le_bytes());
            }
            p.extend([0, 0]);
            while !p.len().is_multiple_of(4) {
                p.push(0);
            }
        };
        s16(interface);
        if let Some(t) = then {
            s16(t);
        }
        p
    }

    #[test]
    fn tokens_of_every_layout() {
        for layout in [
            TokenLayout::System,
            TokenLayout::Vendor,
            TokenLayout::WorkSource,
            TokenLayout::StrictMode,
        ] {
            let p = parcel(layout, "android.content.IClipboard", Some("x"));
            let t = token(&p).unwrap();
            assert_eq!(t.interface, "android.content.IClipboard");
            assert_eq!(t.layout, layout);
            assert_eq!(string16_at(&p, t.end).unwrap().0, "x");
        }
    }

    #[test]
    fn garbage_and_truncated_parcels_have_no_token() {
        assert_eq!(token(&[]), None);
        assert_eq!(token(&[0xff; 64]), None);
        let p = parcel(TokenLayout::System, "android.content.IClipboard", None);
        assert_eq!(token(&p[..30]), None);
        // A hostile name: not printable ASCII.
        let mut q = parcel(TokenLayout::System, "a\u{7}b", None);
        assert_eq!(token(&q), None);
        q.truncate(4);
        assert_eq!(token(&q), None);
    }

    #[test]
    fn reply_handles_of_both_service_managers() {
        let mut aidl = 0u32.to_le_bytes().to_vec();
        aidl.extend(monitor_common::binder::BINDER_TYPE_HANDLE.to_le_bytes());
        aidl.extend(0x17fu32.to_le_bytes());
        aidl.extend(5u64.to_le_bytes());
        assert_eq!(reply_handle(&aidl), Some(5));
        assert_eq!(reply_handle(&aidl[4..]), Some(5));
        assert_eq!(reply_handle(&[0u8; 24]), None);
    }

    #[test]
    fn builtin_rules_name_methods_per_api() {
        let r = Rules::builtin();
        let m = r.meaning("android.content.IClipboard", 3, 30, None);
        assert_eq!(m.method.as_deref(), Some("getPrimaryClip"));
        assert_eq!(m.capability, Some(Capability::Clipboard));
        let m = r.meaning("android.content.IClipboard", 4, 34, None);
        assert_eq!(m.method.as_deref(), Some("getPrimaryClip"));
        let m = r.meaning("android.content.IContentProvider", 1, 35, None);
        assert_eq!(m.method.as_deref(), Some("query"));
        let m = r.meaning("android.content.IClipboard", 999, 30, None);
        assert_eq!(m.method, None);
        assert_eq!(m.capability, None);
        let m = r.meaning(
            "android.content.IContentProvider",
            1,
            34,
            Some("com.android.contacts"),
        );
        assert_eq!(m.capability, Some(Capability::Contacts));
        let m = r.meaning("android.content.IContentProvider", 1, 34, Some("media"));
        assert_eq!(m.capability, None);
        // `any`: every code, known or not.
        let m = r.meaning("com.android.internal.telephony.IPhoneSubInfo", 77, 34, None);
        assert_eq!(
            (m.method, m.capability),
            (None, Some(Capability::DeviceIdentifier))
        );
        assert!(r.knows("android.content.IClipboard"));
        assert!(!r.knows("com.example.INothing"));
    }

    /// The codes of the methods the built-in rules make capabilities, per API level, as read
    /// from the AIDL files named in the rules' `source`s (written out here by hand, so that an
    /// edit of the tables that moves one of them fails).
    #[test]
    fn builtin_rules_codes_of_mapped_methods_per_api() {
        let r = Rules::builtin();
        /// (interface, method, [(API level, code)]).
        type Case<'a> = (&'a str, &'a str, &'a [(u32, u32)]);
        let cases: &[Case] = &[
            (
                "android.content.IClipboard",
                "getPrimaryClip",
                &[(30, 3), (31, 4), (32, 4), (33, 4), (34, 4), (35, 4)],
            ),
            (
                "android.content.IClipboard",
                "hasClipboardText",
                &[(30, 8), (33, 9), (35, 9)],
            ),
            (
                "android.content.IClipboard",
                "getPrimaryClipSource",
                &[(32, 10), (34, 10)],
            ),
            (
                "android.location.ILocationManager",
                "getLastLocation",
                &[(30, 1), (31, 1), (35, 1)],
            ),
            (
                "android.location.ILocationManager",
                "requestLocationUpdates",
                &[(30, 3)],
            ),
            (
                "android.location.ILocationManager",
                "registerLocationListener",
                &[(31, 3), (34, 3), (35, 3)],
            ),
            (
                "android.location.ILocationManager",
                "requestGeofence",
                &[(30, 5), (32, 10), (35, 10)],
            ),
            (
                "android.content.pm.IPackageManager",
                "getInstalledPackages",
                &[(29, 54), (30, 35), (31, 36), (33, 36), (34, 36), (35, 36)],
            ),
            (
                "android.content.pm.IPackageManager",
                "getInstalledApplications",
                &[(29, 56), (30, 37), (32, 38), (33, 38), (34, 39), (35, 39)],
            ),
            (
                "android.content.pm.IPackageManager",
                "getPackagesHoldingPermissions",
                &[(30, 36), (33, 37), (34, 38)],
            ),
            (
                "android.content.pm.IPackageManager",
                "getAllPackages",
                &[(29, 36), (30, 18), (31, 19), (35, 19)],
            ),
            (
                "android.net.wifi.IWifiManager",
                "getScanResults",
                &[(30, 25), (31, 26), (32, 26), (33, 32), (34, 36), (35, 36)],
            ),
            (
                "android.net.wifi.IWifiManager",
                "getConnectionInfo",
                &[(30, 29), (31, 30), (33, 36), (34, 41), (35, 42)],
            ),
            (
                "android.net.wifi.IWifiManager",
                "getConfiguredNetworks",
                &[(30, 3), (32, 3), (33, 5), (34, 9), (35, 9)],
            ),
            (
                "android.net.wifi.IWifiManager",
                "getDhcpInfo",
                &[(30, 36), (31, 42), (33, 50), (34, 57), (35, 58)],
            ),
            (
                "android.hardware.ICameraService",
                "connect",
                &[(30, 3), (31, 3), (35, 3)],
            ),
            (
                "android.hardware.ICameraService",
                "connectDevice",
                &[(30, 4), (35, 4)],
            ),
            (
                "android.hardware.ICameraService",
                "connectLegacy",
                &[(30, 5)],
            ),
            (
                "android.media.IAudioFlingerService",
                "createRecord",
                &[(31, 2), (35, 2)],
            ),
            (
                "android.media.IAudioFlinger",
                "createRecord",
                &[(28, 2), (30, 2)],
            ),
            (
                "com.android.internal.telephony.ITelephony",
                "getImeiForSlot",
                &[(30, 154), (31, 150), (32, 150), (33, 146), (34, 149)],
            ),
            (
                "com.android.internal.telephony.ITelephony",
                "getAllCellInfo",
                &[(30, 69), (33, 69), (34, 72)],
            ),
            (
                "com.android.internal.telephony.ITelephony",
                "getPrimaryImei",
                &[(34, 150)],
            ),
        ];
        for (iface, method, at) in cases {
            for &(api, code) in *at {
                let m = r.meaning(iface, code, api, None);
                assert_eq!(
                    m.method.as_deref(),
                    Some(*method),
                    "{iface} code {code} at API {api}"
                );
                assert!(
                    m.capability.is_some(),
                    "{iface}.{method} at API {api} is a capability"
                );
            }
        }
        // The same code is another method at another level: IClipboard 3 is getPrimaryClip
        // in Android 11, clearPrimaryClip from 12 on (setPrimaryClipAsPackage came second).
        let m = r.meaning("android.content.IClipboard", 3, 34, None);
        assert_eq!(m.method.as_deref(), Some("clearPrimaryClip"));
        assert_eq!(m.capability, None);
        // IWifiManager 41: getConnectionInfo in 14, something else in 15.
        let m = r.meaning("android.net.wifi.IWifiManager", 41, 35, None);
        assert_ne!(m.method.as_deref(), Some("getConnectionInfo"));
        assert_eq!(m.capability, None, "{m:?}");
        // No table: ITelephony at API 35; the call is still known, without a method.
        let m = r.meaning("com.android.internal.telephony.ITelephony", 149, 35, None);
        assert_eq!((m.method, m.capability), (None, None));
        assert!(r.knows("com.android.internal.telephony.ITelephony"));
        // Past the end of a table (tables stop after the last mapped method).
        let m = r.meaning("android.content.IClipboard", 11, 34, None);
        assert_eq!((m.method, m.capability), (None, None));
    }

    #[test]
    fn every_table_of_the_builtin_rules_says_where_it_comes_from() {
        let f: RulesFile = toml::from_str(BUILTIN_RULES).unwrap();
        for i in &f.interface {
            for t in &i.table {
                assert!(t.source.len() > 40, "{}: {:?}", i.name, t.source);
                assert!(
                    t.apis.iter().all(|a| (29..=35).contains(a)),
                    "{}: {:?}",
                    i.name,
                    t.apis
                );
            }
        }
        // Android 11-15 for every interface the rules map by method, except where the rules
        // say there is no source (ITelephony at 35) or the interface did not exist
        // (IAudioFlingerService before 12; the hand-written IAudioFlinger has fixed codes).
        let r = Rules::builtin();
        for (name, i) in &r.interfaces {
            if i.kinds.is_empty() || !i.fixed.is_empty() {
                continue;
            }
            for api in 30..=35 {
                let absent = (name == "com.android.internal.telephony.ITelephony" && api == 35)
                    || (name == "android.media.IAudioFlingerService" && api == 30);
                assert_eq!(i.tables.contains_key(&api), !absent, "{name} at API {api}");
            }
        }
    }

    #[test]
    fn a_rule_for_a_method_no_table_lists_is_an_error() {
        let e = Rules::parse(
            "default_api = 34\n[[interface]]\nname = \"a.B\"\nkinds = { getSecrt = \"clipboard\" }\n[[interface.table]]\napis = [34]\nsource = \"x\"\nmethods = [\"getSecret\"]\n",
            "f",
        )
        .unwrap_err();
        assert!(e.to_string().contains("a.B.getSecrt"), "{e}");
    }

    #[test]
    fn content_uris_give_their_authority() {
        let p = parcel(
            TokenLayout::System,
            "android.content.IContentProvider",
            Some("content://com.android.contacts/contacts"),
        );
        let t = token(&p).unwrap();
        assert_eq!(
            content_authority(&p, t.end).as_deref(),
            Some("com.android.contacts")
        );
        assert_eq!(content_authority(&p[..t.end + 8], t.end), None);
    }

    #[test]
    fn bad_rules_are_one_line_errors() {
        let e = Rules::parse(
            "default_api = 30\n[[interface]]\nname = \"a.B\"\nkinds = { m = \"teleport\" }\n",
            "f",
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown kind \"teleport\""), "{e}");
        let e = Rules::parse("nonsense", "f").unwrap_err();
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}
