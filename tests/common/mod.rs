//! Helpers more than one integration test crate needs. Each crate includes this file with
//! `#[path = "common/mod.rs"] mod common;` and uses what it needs of it.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The simulated app, built with the tests.
pub const SIMAPP: &str = env!("CARGO_BIN_EXE_emuwatch-simapp");

/// A copy of simapp at `dst`, made by `cp` in a child process. A copy written from this
/// multi-threaded test process leaves its write fd in every child another test forks
/// meanwhile, until that child execs, and an exec of the copy in that window fails with
/// ETXTBSY ("Text file busy"; seen in the 6.12 guest).
pub fn simapp_copy(dst: &Path) {
    let st = Command::new("cp").arg(SIMAPP).arg(dst).status().unwrap();
    assert!(st.success(), "cp {SIMAPP} {}: {st}", dst.display());
}

/// A scenario file `dir/file` running the simulated app (`emuwatch-simapp app`: two rounds,
/// camera device under the scenario's work directory, loopback servers) under `name`;
/// `without`: a behaviour of the app's service turned off (`--without`, e.g. `service-camera`),
/// so two scenarios can differ in exactly one behaviour.
pub fn simapp_app_scenario(dir: &Path, file: &str, name: &str, without: Option<&str>) -> PathBuf {
    let f = dir.join(file);
    let without = without.map_or(String::new(), |b| format!(r#", "--without", "{b}""#));
    std::fs::write(
        &f,
        format!(
            r#"name = "{name}"
[target]
command = ["{{bin_dir}}/emuwatch-simapp", "app", "--ports-file", "{{work}}/ports.txt", "--data", "{{work}}/device",
           "--camera", "{{work}}/dev/video0", "--rounds", "2" {without}]
[record]
devices = ["camera={{work}}/dev/video*"]
[[setup]]
run = ["{{bin_dir}}/emuwatch-simapp", "prepare", "--data", "{{work}}/device", "--camera", "{{work}}/dev/video0"]
[[setup]]
run = ["{{bin_dir}}/emuwatch-simapp", "serve", "--ports-file", "{{work}}/ports.txt"]
background = true
[[setup]]
wait_for = "file"
path = "{{work}}/ports.txt"
[[step]]
wait_for = "exited"
"#
        ),
    )
    .unwrap();
    f
}
