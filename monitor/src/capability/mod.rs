//! The vocabulary of what emuwatch reports an app doing: one declaration per capability
//! ([`SPECS`]). Its name (in findings, scenario expectations, baselines), the event kinds that
//! carry it, the probe families that produce those events, the report category it is counted
//! under, how a finding and a count of it read, and which scenario expectation fields apply to
//! it are all read from here; the rest of the program derives from the table. Tests check that
//! each capability has its probe-table rows, schema doc entry, category and wording.
//!
//! The closed sets of values that events carry (connect protocol, where a path came from, why a
//! read total was taken, device operations, ...) are here too, as enums whose serde names are
//! the strings of the schema (docs/events.md).
use serde::{Deserialize, Serialize};

use crate::kernel::probes::Family;

/// Something an app does that a report finds and a scenario can expect: the `kind` of a
/// finding, of a device access, of a baseline device and of an `[[expect]]`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Connect,
    Camera,
    Microphone,
    File,
    /// Android services reached over binder (`enrich/binder.rs`, rules in `rules/binder.toml`).
    Location,
    DeviceIdentifier,
    Clipboard,
    Contacts,
    InstalledApps,
    Wifi,
    Accounts,
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Where a capability is counted in a report (and what kind of data it reveals).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// Destinations and countries.
    Network,
    /// Camera and microphone accesses.
    Devices,
    /// File categories (docs/categories.md).
    Files,
    /// Android system services asked over binder (location, identifiers, clipboard, ...).
    Services,
}

/// A field of a scenario `[[expect]]` besides `name`, `kind`, `phases`, `app` and `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectField {
    Countries,
    AllowedCountries,
    Asns,
    AllowedAsns,
    Scopes,
    Hosts,
    Category,
    Categories,
    MaxBytes,
    Ops,
    Path,
}

impl ExpectField {
    #[cfg(test)]
    pub const ALL: [ExpectField; 11] = [
        ExpectField::Countries,
        ExpectField::AllowedCountries,
        ExpectField::Asns,
        ExpectField::AllowedAsns,
        ExpectField::Scopes,
        ExpectField::Hosts,
        ExpectField::Category,
        ExpectField::Categories,
        ExpectField::MaxBytes,
        ExpectField::Ops,
        ExpectField::Path,
    ];

    /// Its name in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            ExpectField::Countries => "countries",
            ExpectField::AllowedCountries => "allowed_countries",
            ExpectField::Asns => "asns",
            ExpectField::AllowedAsns => "allowed_asns",
            ExpectField::Scopes => "scopes",
            ExpectField::Hosts => "hosts",
            ExpectField::Category => "category",
            ExpectField::Categories => "categories",
            ExpectField::MaxBytes => "max_bytes",
            ExpectField::Ops => "ops",
            ExpectField::Path => "path",
        }
    }
}

/// Everything the program knows about one capability.
#[derive(Debug)]
pub struct Spec {
    pub capability: Capability,
    /// Its name in findings, scenario files and baselines.
    pub name: &'static str,
    /// The event kinds (`kind` in events.jsonl) that carry it.
    pub event_kinds: &'static [&'static str],
    /// Probe families whose programs produce those events (any attached one will do; the
    /// raw-syscalls programs serve every syscall family).
    pub families: &'static [Family],
    pub category: Category,
    /// One occurrence and several, in counts ("1 connect", "3 camera accesses").
    pub one: &'static str,
    pub many: &'static str,
    /// Scenario expectation fields that apply to it.
    pub expect_fields: &'static [ExpectField],
    /// The target of a finding whose path/address is unknown.
    pub unknown_target: &'static str,
    /// Its marks on the HTML timeline: CSS class and colour (files: the sensitive ones).
    pub mark_class: &'static str,
    pub mark_color: &'static str,
}

use ExpectField as F;

pub const SPECS: [Spec; 11] = [
    Spec {
        capability: Capability::Connect,
        name: "connect",
        event_kinds: &["connect", "dns", "tls", "http"],
        families: &[Family::Connect],
        category: Category::Network,
        one: "connect",
        many: "connects",
        expect_fields: &[
            F::Countries,
            F::AllowedCountries,
            F::Asns,
            F::AllowedAsns,
            F::Scopes,
            F::Hosts,
        ],
        unknown_target: "(unknown destination)",
        mark_class: "k-conn",
        mark_color: "#2563eb",
    },
    Spec {
        capability: Capability::Camera,
        name: "camera",
        event_kinds: &["camera"],
        families: &[Family::File, Family::Camera],
        category: Category::Devices,
        one: "camera access",
        many: "camera accesses",
        expect_fields: &[F::Ops, F::Path],
        unknown_target: "(unknown device)",
        mark_class: "k-cam",
        mark_color: "#dc2626",
    },
    Spec {
        capability: Capability::Microphone,
        name: "microphone",
        event_kinds: &["microphone"],
        families: &[Family::File, Family::Camera],
        category: Category::Devices,
        one: "microphone access",
        many: "microphone accesses",
        expect_fields: &[F::Ops, F::Path],
        unknown_target: "(unknown device)",
        mark_class: "k-mic",
        mark_color: "#ea580c",
    },
    Spec {
        capability: Capability::File,
        name: "file",
        event_kinds: &["file_open", "file_read"],
        families: &[Family::File],
        category: Category::Files,
        one: "file open",
        many: "file opens",
        expect_fields: &[F::Category, F::Categories, F::MaxBytes, F::Path],
        unknown_target: "(unknown path)",
        mark_class: "k-sfile",
        mark_color: "#7c3aed",
    },
    Spec {
        capability: Capability::Location,
        name: "location",
        event_kinds: &["location"],
        families: &[Family::Camera],
        category: Category::Services,
        one: "location request",
        many: "location requests",
        expect_fields: &[F::Ops, F::Path],
        unknown_target: "(unknown service)",
        mark_class: "k-loc",
        mark_color: "#0d9488",
    },
    Spec {
        capability: Capability::DeviceIdentifier,
        name: "device_identifier",
        event_kinds: &["device_identifier"],
        families: &[Family::Camera],
        category: Category::Services,
        one: "device identifier read",
        many: "device identifier reads",
        expect_fields: &[F::Ops, F::Path],
        unknown_target: "(unknown service)",
        mark_class: "k-ident",
        mark_color: "#be185d",
    },
    Spec {
        capability: Capability::Clipboard,
        name: "clipboard",
        event_kinds: &["clipboard"],
        families: &[Family::Camera],
        category: Category::Services,
        one: "clipboard access",
        many: "clipboard accesses",
        expect_fields: &[F::Ops, F::Path],
        unknown_target: "(unknown service)",
        mark_class: "k-clip",
        mark_color: "#ca8a04",
    },
    Spec {
        capability: Capability::Contacts,
        name: "contacts",
        event_kinds: &["contacts"],
        families: &[Family::Camera],
        category: Category::Services,
        one: "contacts query",
        many: "contacts queries",
        expect_fields: &[F::Ops, F::Path],
        unknown_target: "(unknown service)",
        mark_class: "k-contacts",
        mark_color: "#4d7c0f",
    },
    Spec {
        capability: Capability::InstalledApps,
        name: "installed_apps",
        event_kinds: &["installed_apps"],
        families: &[Family::Camera],
        category: Category::Services,
        one: "installed-apps query",
        many: "installed-apps queries",
        expect_fields: &[F::Ops, F::Path],
        unknown_target: "(unknown service)",
        mark_class: "k-apps",
        mark_color: "#0369a1",
    },
    Spec {
        capability: Capability::Wifi,
        name: "wifi",
        event_kinds: &["wifi"],
        families: &[Family::Camera],
        category: Category::Services,
        one: "Wi-Fi query",
        many: "Wi-Fi queries",
        expect_fields: &[F::Ops, F::Path],
        unknown_target: "(unknown service)",
        mark_class: "k-wifi",
        mark_color: "#6d28d9",
    },
    Spec {
        capability: Capability::Accounts,
        name: "accounts",
        event_kinds: &["accounts"],
        families: &[Family::Camera],
        category: Category::Services,
        one: "accounts query",
        many: "accounts queries",
        expect_fields: &[F::Ops, F::Path],
        unknown_target: "(unknown service)",
        mark_class: "k-accounts",
        mark_color: "#9f1239",
    },
];

impl Capability {
    pub const ALL: [Capability; 11] = [
        Capability::Connect,
        Capability::Camera,
        Capability::Microphone,
        Capability::File,
        Capability::Location,
        Capability::DeviceIdentifier,
        Capability::Clipboard,
        Capability::Contacts,
        Capability::InstalledApps,
        Capability::Wifi,
        Capability::Accounts,
    ];

    pub fn spec(self) -> &'static Spec {
        &SPECS[self as usize]
    }

    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// "1 connect", "3 camera accesses".
    pub fn count_text(self, n: u64) -> String {
        let s = self.spec();
        format!("{n} {}", if n == 1 { s.one } else { s.many })
    }

    /// What one occurrence is, for people: `connect to 1.2.3.4:443/tcp`, `camera /dev/video0`,
    /// `file /proc/cpuinfo` (`None`: the path or address is unknown).
    pub fn subject(self, target: Option<&str>) -> String {
        let target = target.unwrap_or(self.spec().unknown_target);
        match self {
            Capability::Connect => format!("connect to {target}"),
            c if c.spec().category == Category::Services => format!("{}: {target}", c.action()),
            _ => format!("{self} {target}"),
        }
    }

    /// What the app did, for the report's headline: "read the clipboard" (3 times after close).
    pub fn action(self) -> &'static str {
        match self {
            Capability::Connect => "connected",
            Capability::Camera => "used the camera",
            Capability::Microphone => "used the microphone",
            Capability::File => "read files",
            Capability::Location => "asked for the location",
            Capability::DeviceIdentifier => "read a device identifier",
            Capability::Clipboard => "read the clipboard",
            Capability::Contacts => "queried the contacts",
            Capability::InstalledApps => "listed the installed apps",
            Capability::Wifi => "queried Wi-Fi",
            Capability::Accounts => "queried the accounts",
        }
    }

    /// Does this scenario expectation field apply to it?
    pub fn takes(self, field: ExpectField) -> bool {
        self.spec().expect_fields.contains(&field)
    }

    /// The capabilities a field applies to.
    pub fn taking(field: ExpectField) -> Vec<Capability> {
        Capability::ALL
            .into_iter()
            .filter(|c| c.takes(field))
            .collect()
    }
}

mod values;

pub(crate) use self::values::values;
pub use values::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_declaration_order() {
        for (i, s) in SPECS.iter().enumerate() {
            assert_eq!(s.capability as usize, i, "{}", s.name);
            assert_eq!(Capability::ALL[i], s.capability);
        }
    }

    #[test]
    fn names_are_the_serde_names() {
        for c in Capability::ALL {
            assert_eq!(
                serde_json::to_value(c).unwrap(),
                serde_json::Value::String(c.as_str().into())
            );
        }
        for op in DeviceOp::DOC_ORDER {
            assert_eq!(
                serde_json::to_value(op).unwrap(),
                serde_json::Value::String(op.as_str().into())
            );
        }
    }

    #[test]
    fn every_expectation_field_applies_to_some_capability() {
        for f in ExpectField::ALL {
            assert!(!Capability::taking(f).is_empty(), "{}", f.name());
        }
    }

    #[test]
    fn values_pad_like_strings() {
        assert_eq!(format!("[{:<6}]", Proto::Tcp), "[tcp   ]");
        assert_eq!(format!("[{:>8}]", Capability::File), "[    file]");
    }

    #[test]
    fn counts_read_in_singular_and_plural() {
        assert_eq!(Capability::Connect.count_text(1), "1 connect");
        assert_eq!(Capability::Camera.count_text(2), "2 camera accesses");
    }
}

#[cfg(test)]
mod completeness_tests;
