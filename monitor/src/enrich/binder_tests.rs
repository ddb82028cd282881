//! Tests of the binder rules and decoding: parcel layouts, rule files, the built-in tables.
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
    // ... but not the methods it excepts (the carrier's IMSI-encryption key, code 24 at API
    // 34), while its neighbours stay identifiers.
    let iphone = "com.android.internal.telephony.IPhoneSubInfo";
    for (code, method, cap) in [
        (
            22,
            "getVoiceMailNumberForSubscriber",
            Some(Capability::DeviceIdentifier),
        ),
        (23, "getCarrierInfoForImsiEncryption", None),
        (24, "setCarrierInfoForImsiEncryption", None),
        (25, "resetCarrierKeysForImsiEncryption", None),
        (
            26,
            "getVoiceMailAlphaTag",
            Some(Capability::DeviceIdentifier),
        ),
    ] {
        let m = r.meaning(iphone, code, 34, None);
        assert_eq!((m.method.as_deref(), m.capability), (Some(method), cap));
    }
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
fn except_needs_any_and_listed_methods() {
    let rules = |extra: &str| {
        Rules::parse(
            &format!(
                "default_api = 34\n[[interface]]\nname = \"a.B\"\n{extra}\n[[interface.table]]\napis = [34]\nsource = \"x\"\nmethods = [\"getSecret\", \"setKey\"]\n"
            ),
            "f",
        )
    };
    let e = rules("except = [\"setKey\"]").unwrap_err();
    assert!(e.to_string().contains("a.B: `except` without `any`"), "{e}");
    let e = rules("any = \"accounts\"\nexcept = [\"setKye\"]").unwrap_err();
    assert!(e.to_string().contains("a.B.setKye"), "{e}");
    let r = rules("any = \"accounts\"\nexcept = [\"setKey\"]").unwrap();
    assert_eq!(
        r.meaning("a.B", 1, 34, None).capability,
        Some(Capability::Accounts)
    );
    assert_eq!(r.meaning("a.B", 2, 34, None).capability, None);
    assert_eq!(
        r.meaning("a.B", 9, 34, None).capability,
        Some(Capability::Accounts)
    );
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
