//! The shape of the crate (docs/architecture.md): no module imports one that imports it back
//! (directly or round a longer circle), and only the commands that print reports import the
//! renderers in `report/`. Read from the sources: `crate::` and `super::` paths, use-groups
//! included, outside `#[cfg(test)]` code.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Modules (`report::html`) and their files, `bin/` and test-only files left out.
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "bin") {
                    walk(&p, out);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&root).unwrap().with_extension("");
        let mut parts: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        if matches!(parts.last().map(String::as_str), Some("mod" | "main")) {
            parts.pop();
        }
        if parts.last().is_some_and(|p| p.ends_with("_tests")) {
            continue;
        }
        out.insert(parts.join("::"), f);
    }
    out
}

fn ident(s: &[u8], mut i: usize) -> (String, usize) {
    let start = i;
    while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'_') {
        i += 1;
    }
    (String::from_utf8_lossy(&s[start..i]).into_owned(), i)
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The paths starting at `i` (after `crate::`): `a::b`, or `{a::b, c::{d, e}}`.
fn paths(s: &[u8], i: usize, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let mut i = skip_ws(s, i);
    if i < s.len() && s[i] == b'{' {
        i += 1;
        loop {
            i = skip_ws(s, i);
            if i >= s.len() || s[i] == b'}' {
                return i + 1;
            }
            let next = paths(s, i, prefix, out);
            // A glob (`*`) or `self` names no further module: step over it.
            i = skip_ws(s, if next == i { i + 1 } else { next });
            if i < s.len() && s[i] == b',' {
                i += 1;
            }
        }
    }
    let mut path = prefix.to_vec();
    loop {
        let (id, j) = ident(s, i);
        if id.is_empty() {
            break;
        }
        path.push(id);
        i = j;
        if s[i..].starts_with(b"::") {
            i += 2;
            if i < s.len() && s[i] == b'{' {
                return paths(s, i, &path, out);
            }
        } else {
            break;
        }
    }
    out.push(path);
    i
}

/// Which modules each module imports.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    let mut graph = BTreeMap::new();
    for (m, file) in &mods {
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        let code: String = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let s = code.as_bytes();
        let here: Vec<String> = m.split("::").map(str::to_string).collect();
        let parent: Vec<String> = here[..here.len().saturating_sub(1)].to_vec();
        let mut found = Vec::new();
        for (token, base) in [("crate::", Vec::new()), ("super::", parent)] {
            let mut from = 0;
            while let Some(at) = code[from..].find(token) {
                let at = from + at;
                from = at + token.len();
                if at > 0 && (s[at - 1].is_ascii_alphanumeric() || s[at - 1] == b'_') {
                    continue;
                }
                paths(s, from, &base, &mut found);
            }
        }
        let mut deps = BTreeSet::new();
        for p in found {
            // The longest prefix that is a module (an item's module).
            if let Some(dep) = (1..=p.len())
                .rev()
                .map(|k| p[..k].join("::"))
                .find(|c| mods.contains_key(c))
                && dep != *m
                && !m.starts_with(&format!("{dep}::"))
            {
                deps.insert(dep);
            }
        }
        graph.insert(m.clone(), deps);
    }
    graph
}

/// Modules from which `to` can be reached (a path of imports), `to` excluded.
fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(m) = todo.pop() {
        for d in graph.get(&m).into_iter().flatten() {
            if d == to {
                return true;
            }
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    false
}

#[test]
fn the_import_graph_is_read() {
    let g = imports();
    assert!(g["report::html"].contains("report::timeline"), "{g:?}");
    assert!(g["scenario::run"].contains("baseline"), "{g:?}");
    assert!(
        g["analysis::summary::build"].contains("analysis::history"),
        "{g:?}"
    );
}

#[test]
fn no_import_circles() {
    let g = imports();
    let circles: Vec<&String> = g.keys().filter(|m| reaches(&g, m, m)).collect();
    assert!(
        circles.is_empty(),
        "modules on an import circle: {circles:?}"
    );
}

#[test]
fn no_import_circles_between_top_level_modules() {
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, deps) in imports() {
        let a = m.split("::").next().unwrap().to_string();
        let entry = top.entry(a.clone()).or_default();
        for d in deps {
            let b = d.split("::").next().unwrap().to_string();
            if a != b {
                entry.insert(b);
            }
        }
    }
    let circles: Vec<&String> = top.keys().filter(|m| reaches(&top, m, m)).collect();
    assert!(
        circles.is_empty(),
        "top-level modules on an import circle: {circles:?}"
    );
}

#[test]
fn only_the_commands_import_the_renderers() {
    let g = imports();
    // The `report` and `run` commands print reports; `main` dispatches to them.
    let allowed = ["", "report", "scenario::run"];
    for (m, deps) in &g {
        if m.starts_with("report") || allowed.contains(&m.as_str()) {
            continue;
        }
        let renderers: Vec<&String> = deps.iter().filter(|d| d.starts_with("report")).collect();
        assert!(renderers.is_empty(), "{m} imports {renderers:?}");
    }
}
