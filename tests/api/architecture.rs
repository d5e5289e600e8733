//! The dependency rules of `docs/architecture.md`, checked on the source: the domain
//! names nothing of the HTTP wing or actix, the leaves import nothing from the crate,
//! the policy stays pure, and the files import each other without a cycle.
//!
//! The check reads `use` lines and inline `crate::`/`super::` paths, with comments
//! stripped; it is grep-level on purpose (no parser), so a rule it checks is one a
//! reviewer can check by eye the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// Another tree's `src/` to measure instead (an older commit's, checked out
/// elsewhere): `ATTRGATE_ARCHITECTURE_SRC=/tmp/old/src cargo test --test api
/// architecture -- --nocapture` prints its figures (its rules may then fail).
fn src_dir() -> PathBuf {
    std::env::var_os("ATTRGATE_ARCHITECTURE_SRC").map_or_else(|| PathBuf::from(SRC), PathBuf::from)
}

/// The domain: what the HTTP wing calls and what must never call it.
const DOMAIN: &[&str] = &[
    "update/",
    "policy/",
    "audit/",
    "events/",
    "cognito.rs",
    "identity.rs",
    "report.rs",
    "input.rs",
    "schema.rs",
    "schema_cache.rs",
    "attribute.rs",
    "quota.rs",
    "limit.rs",
];

/// Files that import nothing from the crate, so anything may depend on them.
const LEAVES: &[&str] = &["identity.rs", "policy/facts.rs"];

#[test]
fn no_domain_file_names_actix_or_the_http_wing() {
    let files = source_files();
    let mut offences = Vec::new();
    for (path, code) in &files {
        if !DOMAIN.iter().any(|prefix| path.starts_with(prefix)) {
            continue;
        }
        for (number, line) in code.lines().enumerate() {
            if line.contains("actix") || line.contains("crate::http") {
                offences.push(format!("src/{path}:{}: {}", number + 1, line.trim()));
            }
        }
    }
    assert!(
        files.len() > 30,
        "read too few files ({}) to mean anything",
        files.len()
    );
    assert!(offences.is_empty(), "{}", offences.join("\n"));
}

#[test]
fn the_policy_names_neither_aws_nor_tokio_nor_the_filesystem() {
    let offences: Vec<String> = source_files()
        .into_iter()
        .filter(|(path, _)| path.starts_with("policy/"))
        .flat_map(|(path, code)| {
            code.lines()
                .enumerate()
                .filter(|(_, line)| {
                    [
                        "aws_sdk_",
                        "aws_config",
                        "aws_smithy",
                        "aws_types",
                        "tokio",
                        "std::fs",
                        "actix",
                        "reqwest",
                    ]
                    .iter()
                    .any(|name| line.contains(name))
                })
                .map(|(number, line)| format!("src/{path}:{}: {}", number + 1, line.trim()))
                .collect::<Vec<_>>()
        })
        .collect();

    assert!(offences.is_empty(), "{}", offences.join("\n"));
}

#[test]
fn the_leaves_import_nothing_from_the_crate() {
    let files = source_files();
    for leaf in LEAVES {
        let code = files
            .get(*leaf)
            .unwrap_or_else(|| panic!("src/{leaf} is gone"));
        let imports = imports_of(leaf, code, &Tree::new(&files));
        assert!(imports.is_empty(), "src/{leaf} imports {imports:?}");
    }
}

#[test]
fn the_files_of_the_crate_import_each_other_without_a_cycle() {
    let files = source_files();
    let graph = Tree::new(&files).graph();
    let edges: usize = graph.values().map(BTreeSet::len).sum();

    let cycle = find_cycle(&graph);

    let cycles = cycles(&graph);
    eprintln!(
        "src/: {} files, {edges} imports between them, {} import cycle(s) (groups of files \
         that import each other): {cycles:?}",
        graph.len(),
        cycles.len()
    );
    assert!(
        edges > 50,
        "found only {edges} imports: the reading is broken"
    );
    assert_eq!(cycle, None, "an import cycle among the files of src/");
}

#[test]
fn the_cycle_finder_finds_a_cycle_through_super_and_crate_paths() {
    let files: BTreeMap<String, String> = [
        (
            "a/mod.rs",
            "mod b;\nmod d;\nuse crate::c::Thing;\npub use d::E;\n",
        ),
        ("a/d.rs", "pub struct E;\n"),
        ("a/b.rs", "use super::Other;\n"),
        ("c.rs", "pub(crate) fn f() { crate::a::b::g(); }\n"),
    ]
    .into_iter()
    .map(|(path, code)| (path.to_owned(), code.to_owned()))
    .collect();
    let graph = Tree::new(&files).graph();

    let cycle = find_cycle(&graph);

    assert_eq!(
        graph["a/mod.rs"],
        BTreeSet::from(["c.rs".to_owned(), "a/d.rs".to_owned()]),
        "a `mod` line alone is not an import; a re-export is"
    );
    assert_eq!(graph["a/b.rs"], BTreeSet::from(["a/mod.rs".to_owned()]));
    let cycle = cycle.expect("a/mod.rs -> c.rs -> a/b.rs -> a/mod.rs");
    assert_eq!(cycle.len(), 3, "{cycle:?}");
    assert_eq!(
        cycles(&graph),
        vec![BTreeSet::from(
            ["a/b.rs", "a/mod.rs", "c.rs"].map(str::to_owned)
        )]
    );
}

/// Every `.rs` file under `src/`, by its path relative to `src/`, comments removed
/// (`#[cfg(test)]` modules are kept: tests obey the rules too).
type Files = BTreeMap<String, String>;

fn source_files() -> Files {
    let mut files = BTreeMap::new();
    let root = src_dir();
    collect(&root, &root, &mut files);
    files
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let relative = path
                .strip_prefix(root)
                .expect("under src/")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&path).expect("a source file is UTF-8");
            files.insert(relative, without_comments(&text));
        }
    }
}

/// The code without `//` comments (line, doc and module doc comments).
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string (a URL) is rare in this crate's code; cut anyway:
            // a false "no import" there cannot hide a `use` line, which has no strings.
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The files and the module each one is.
struct Tree<'a> {
    files: &'a Files,
    modules: BTreeMap<&'a str, Vec<String>>,
}

impl<'a> Tree<'a> {
    fn new(files: &'a Files) -> Self {
        let modules = files
            .keys()
            .map(|path| (path.as_str(), module_of(path, files)))
            .collect();
        Self { files, modules }
    }

    /// The file a module path lives in, taking the longest prefix that is a file:
    /// `policy::decide::Decision` → `policy/decide.rs`.
    fn file_of(&self, module: &[String]) -> Option<String> {
        (1..=module.len()).rev().find_map(|length| {
            self.modules
                .iter()
                .find(|(_, each)| **each == module[..length])
                .map(|(file, _)| (*file).to_owned())
        })
    }

    /// The files each file imports.
    fn graph(&self) -> BTreeMap<&'a str, BTreeSet<String>> {
        self.files
            .iter()
            .map(|(path, code)| (path.as_str(), imports_of(path, code, self)))
            .collect()
    }
}

/// The module path of a file: `policy/decide.rs` → `["policy", "decide"]`,
/// `policy/mod.rs` → `["policy"]`, `lib.rs` → `[]`; a file another one includes with
/// `#[path = "decide_tests.rs"] mod tests;` is that file's module `tests`.
fn module_of(path: &str, files: &Files) -> Vec<String> {
    for (parent, code) in files {
        let lines: Vec<&str> = code.lines().map(str::trim).collect();
        for (at, line) in lines.iter().enumerate() {
            let Some(target) = line
                .strip_prefix("#[path = \"")
                .and_then(|rest| rest.strip_suffix("\"]"))
            else {
                continue;
            };
            let dir = parent.rsplit_once('/').map_or("", |(dir, _)| dir);
            let included = if dir.is_empty() {
                target.to_owned()
            } else {
                format!("{dir}/{target}")
            };
            let name = lines[at + 1..]
                .iter()
                .find(|line| !line.starts_with("#["))
                .and_then(|line| children_of(line).pop());
            if included == path
                && let Some(name) = name
            {
                let mut module = module_of(parent, files);
                module.push(name);
                return module;
            }
        }
    }
    let trimmed = path.trim_end_matches(".rs");
    let mut parts: Vec<String> = trimmed.split('/').map(str::to_owned).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The files one file imports: every `crate::…` and `super::…` path in its code,
/// with `{…}` groups expanded one level (`crate::policy::{decide::X, facts}`).
fn imports_of(path: &str, code: &str, tree: &Tree<'_>) -> BTreeSet<String> {
    let own = tree.modules[path].clone();
    let mut found = BTreeSet::new();
    // An inline module (`mod tests {`) and all after it: `super::` there is this file.
    let lines: Vec<&str> = code.lines().collect();
    let inline = lines.iter().position(|line| {
        let line = line.trim();
        line.ends_with('{')
            && children_of(&format!("{};", line.trim_end_matches('{').trim())).len() == 1
    });
    let (outer, inner) = lines.split_at(inline.unwrap_or(lines.len()));
    let mut inner_module = own.clone();
    if let Some(first) = inner.first() {
        inner_module.extend(children_of(&format!(
            "{};",
            first.trim().trim_end_matches('{').trim()
        )));
    }
    for (part, module) in [
        (outer.join("\n"), own.clone()),
        (inner.join("\n"), inner_module),
    ] {
        found.extend(paths_in(path, &part, &module, tree));
    }
    // A parent that re-exports or calls its own child (`pub use decide::Decision;`).
    for child in children_of(code) {
        let mut module = own.clone();
        module.push(child.clone());
        let named = code.match_indices(&format!("{child}::")).any(|(at, _)| {
            !code[..at]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
        });
        if named
            && let Some(file) = tree.file_of(&module)
            && file != path
        {
            found.insert(file);
        }
    }
    found
}

/// The files named by the `crate::…` and `super::…` paths of `code`, which is in the
/// module `own`.
fn paths_in(path: &str, code: &str, own: &[String], tree: &Tree<'_>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for start in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(at) = rest.find(start) {
            let before = rest[..at].chars().last();
            rest = &rest[at..];
            let taken = path_at(rest);
            let advance = taken.len().max(start.len());
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                rest = &rest[advance..];
                continue;
            }
            for full in expand(&taken) {
                let mut segments: Vec<String> = full.split("::").map(str::to_owned).collect();
                let base = if segments[0] == "crate" {
                    segments.remove(0);
                    Vec::new()
                } else {
                    let mut base = own.to_vec();
                    while segments.first().map(String::as_str) == Some("super") {
                        segments.remove(0);
                        base.pop();
                    }
                    base
                };
                let module: Vec<String> = base.into_iter().chain(segments).collect();
                if let Some(file) = tree.file_of(&module)
                    && file != path
                {
                    found.insert(file);
                }
            }
            rest = &rest[advance..];
        }
    }
    found
}

/// The modules a file declares in files of their own (`mod decide;`, `pub mod facts;`).
fn children_of(code: &str) -> Vec<String> {
    code.lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line.strip_suffix(';')?;
            let name = rest.rsplit_once("mod ")?.1;
            let prefix = &rest[..rest.len() - name.len() - "mod ".len()];
            let only_visibility = prefix.is_empty() || prefix.trim_end().starts_with("pub");
            (only_visibility && name.chars().all(|c| c.is_alphanumeric() || c == '_'))
                .then(|| name.to_owned())
        })
        .collect()
}

/// The path starting at the head of `text`, with one `{…}` group if it has one.
fn path_at(text: &str) -> String {
    let mut end = 0;
    let bytes = text.as_bytes();
    while end < bytes.len() {
        let c = bytes[end] as char;
        if c.is_alphanumeric() || c == '_' || c == ':' {
            end += 1;
        } else if c == '{' {
            let close = text[end..].find('}').map_or(text.len(), |at| end + at + 1);
            end = close;
            break;
        } else {
            break;
        }
    }
    text[..end].to_owned()
}

/// `a::{b::C, d}` → `a::b::C`, `a::d`; a path without braces stays as it is.
fn expand(path: &str) -> Vec<String> {
    match path.find('{') {
        None => vec![path.trim_end_matches(':').to_owned()],
        Some(open) => {
            let prefix = &path[..open];
            path[open + 1..]
                .trim_end_matches('}')
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| {
                    let item = item.split_whitespace().next().unwrap_or(item);
                    if item == "self" {
                        prefix.trim_end_matches(':').to_owned()
                    } else {
                        format!("{prefix}{item}")
                    }
                })
                .collect()
        }
    }
}

/// The groups of files that reach each other through imports (the strongly connected
/// components of more than one file).
fn cycles(graph: &BTreeMap<&str, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = graph.get(from).into_iter().flatten().cloned().collect();
        while let Some(node) = todo.pop() {
            if seen.insert(node.clone()) {
                todo.extend(graph.get(node.as_str()).into_iter().flatten().cloned());
            }
        }
        seen
    };
    let reached: BTreeMap<&str, BTreeSet<String>> =
        graph.keys().map(|node| (*node, reach(node))).collect();
    let mut groups: Vec<BTreeSet<String>> = Vec::new();
    for (node, from_node) in &reached {
        if !from_node.contains(*node) || groups.iter().any(|group| group.contains(*node)) {
            continue;
        }
        let group: BTreeSet<String> = from_node
            .iter()
            .filter(|other| {
                reached
                    .get(other.as_str())
                    .is_some_and(|back| back.contains(*node))
            })
            .cloned()
            .collect();
        groups.push(group);
    }
    groups
}

/// One cycle of the graph, as its files, if there is one.
fn find_cycle(graph: &BTreeMap<&str, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<&str, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = stack.iter().position(|n| n == node).unwrap_or(0);
                return Some(stack[from..].to_vec());
            }
            None => {}
        }
        marks.insert(node.to_owned(), Mark::Open);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut marks, &mut Vec::new()))
}
