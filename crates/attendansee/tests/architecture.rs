//! The architecture's invariants (ARCHITECTURE.md, issue 13), checked against the resolved
//! dependency graph (`cargo metadata`, normal dependencies: what ends up in the program, not what
//! only its tests use) and against the sources, with comments left out. Each test names the crate,
//! file and line at fault, and first checks that its probe sees what it must see where it is
//! allowed, so that it cannot pass because it looked at nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

const API: &str = "attendansee-api";
const BINARY: &str = "attendansee";
const SERVICES: &str = "attendansee-services";
const STORE: &str = "attendansee-store";
const POOL: &str = "attendansee-pool";
const FACES: &str = "attendansee-faces";
const RECOGNITION: &str = "attendansee-recognition";
const VOCABULARY: &str = "attendansee-vocabulary";

/// The crates that make a program serve HTTP. Only the api (and the binary, whose `serve` mounts
/// its router) may have them. (`http` itself is not here: object_store's types use it.)
const WEB_STACK: &[&str] = &["axum", "axum-core", "tower-http", "utoipa", "utoipa-axum"];

/// What only the worker processes (and one-shot CLI commands) may link: ONNX Runtime, the image
/// decoders, and the face engine built on both.
const INFERENCE_STACK: &[&str] = &["ort", "image", FACES];

/// The crates linked into the server process besides the binary itself.
const SERVER_CRATES: &[&str] = &[API, SERVICES, STORE, POOL];

/// The layering: each workspace crate and the workspace crates it may depend on (normal
/// dependencies). A crate missing here fails the layering test until it is placed.
const LAYERS: &[(&str, &[&str])] = &[
    (VOCABULARY, &[]),
    (RECOGNITION, &[VOCABULARY]),
    (STORE, &[VOCABULARY]),
    (POOL, &[VOCABULARY]),
    (FACES, &[VOCABULARY]),
    (SERVICES, &[VOCABULARY, RECOGNITION, STORE, POOL]),
    (API, &[VOCABULARY, RECOGNITION, STORE, POOL, SERVICES]),
    (
        BINARY,
        &[VOCABULARY, RECOGNITION, STORE, POOL, FACES, SERVICES, API],
    ),
];

/// Keywords that open an SQL statement, as they appear in a string literal holding a query.
const SQL_KEYWORDS: &[&str] = &[
    "SELECT ",
    "INSERT INTO",
    "UPDATE ",
    "DELETE FROM",
    "CREATE TABLE",
    "CREATE INDEX",
    "ALTER TABLE",
    "DROP TABLE",
    "PRAGMA ",
];

fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize()
        .unwrap_or_else(|e| panic!("workspace root {}: {e}", root.display()))
}

/// The workspace as `cargo metadata` resolves it for this machine's platform.
struct Workspace {
    /// Workspace member name → package id.
    members: BTreeMap<String, String>,
    /// Package id → name.
    names: HashMap<String, String>,
    /// Package id → ids of its resolved normal dependencies.
    normal_deps: HashMap<String, Vec<String>>,
    /// Workspace member name → names of the packages its Cargo.toml lists as normal
    /// dependencies, optional ones included (a feature could switch them on).
    declared: BTreeMap<String, BTreeSet<String>>,
    /// Workspace member name → its directory.
    dirs: BTreeMap<String, PathBuf>,
}

fn workspace() -> &'static Workspace {
    static WORKSPACE: OnceLock<Workspace> = OnceLock::new();
    WORKSPACE.get_or_init(load_workspace)
}

fn load_workspace() -> Workspace {
    // `host-tuple`: only this platform's dependencies, which are the ones the offline registry
    // cache holds (resolving for every platform would need crates for Android, Windows…).
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
            "host-tuple",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata's JSON");

    let str_of = |value: &Value, what: &str| -> String {
        value
            .as_str()
            .unwrap_or_else(|| panic!("cargo metadata: {what} is not a string: {value}"))
            .to_owned()
    };
    let array_of = |value: &Value, what: &str| -> Vec<Value> {
        value
            .as_array()
            .unwrap_or_else(|| panic!("cargo metadata: {what} is not an array"))
            .clone()
    };

    let member_ids: BTreeSet<String> =
        array_of(&metadata["workspace_members"], "workspace_members")
            .iter()
            .map(|id| str_of(id, "a workspace member"))
            .collect();

    let mut names = HashMap::new();
    let mut members = BTreeMap::new();
    let mut declared = BTreeMap::new();
    let mut dirs = BTreeMap::new();
    for package in array_of(&metadata["packages"], "packages") {
        let id = str_of(&package["id"], "package id");
        let name = str_of(&package["name"], "package name");
        names.insert(id.clone(), name.clone());
        if member_ids.contains(&id) {
            let normal: BTreeSet<String> = array_of(&package["dependencies"], "dependencies")
                .iter()
                .filter(|dep| dep["kind"].is_null())
                .map(|dep| str_of(&dep["name"], "dependency name"))
                .collect();
            let manifest = PathBuf::from(str_of(&package["manifest_path"], "manifest_path"));
            let dir = manifest
                .parent()
                .expect("a manifest has a directory")
                .to_owned();
            members.insert(name.clone(), id);
            declared.insert(name.clone(), normal);
            dirs.insert(name, dir);
        }
    }

    let mut normal_deps = HashMap::new();
    for node in array_of(&metadata["resolve"]["nodes"], "resolve.nodes") {
        let id = str_of(&node["id"], "node id");
        let deps = array_of(&node["deps"], "node deps")
            .iter()
            .filter(|dep| {
                dep["dep_kinds"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|kind| kind["kind"].is_null()))
            })
            .map(|dep| str_of(&dep["pkg"], "dep pkg"))
            .collect();
        normal_deps.insert(id, deps);
    }

    let workspace = Workspace {
        members,
        names,
        normal_deps,
        declared,
        dirs,
    };
    for expected in [
        API,
        BINARY,
        SERVICES,
        STORE,
        POOL,
        FACES,
        RECOGNITION,
        VOCABULARY,
    ] {
        assert!(
            workspace.members.contains_key(expected),
            "{expected} is not a workspace member any more: update tests/architecture.rs"
        );
    }
    workspace
}

impl Workspace {
    fn name<'a>(&'a self, id: &'a str) -> &'a str {
        self.names.get(id).map_or(id, String::as_str)
    }

    fn id(&self, member: &str) -> &str {
        &self.members[member]
    }

    /// Every package `member` links, by normal dependencies, each with the shortest chain of
    /// crates that brings it in.
    fn reaches(&self, member: &str) -> BTreeMap<String, Vec<String>> {
        let root = self.id(member).to_owned();
        let mut parent: HashMap<String, Option<String>> = HashMap::from([(root.clone(), None)]);
        let mut queue = VecDeque::from([root]);
        while let Some(id) = queue.pop_front() {
            for dep in self.normal_deps.get(&id).into_iter().flatten() {
                if !parent.contains_key(dep) {
                    parent.insert(dep.clone(), Some(id.clone()));
                    queue.push_back(dep.clone());
                }
            }
        }
        let mut chains = BTreeMap::new();
        for id in parent.keys() {
            let mut chain = vec![self.name(id).to_owned()];
            let mut at = id;
            while let Some(Some(up)) = parent.get(at) {
                chain.push(self.name(up).to_owned());
                at = up;
            }
            chain.reverse();
            // Keep the shortest chain when a name resolves to several versions.
            chains
                .entry(self.name(id).to_owned())
                .and_modify(|known: &mut Vec<String>| {
                    if chain.len() < known.len() {
                        *known = chain.clone();
                    }
                })
                .or_insert(chain);
        }
        chains
    }

    /// The workspace crates `member` depends on directly (resolved, normal dependencies).
    fn workspace_deps(&self, member: &str) -> BTreeSet<String> {
        self.normal_deps
            .get(self.id(member))
            .into_iter()
            .flatten()
            .map(|id| self.name(id).to_owned())
            .filter(|name| self.members.contains_key(name))
            .collect()
    }

    /// `member`'s Cargo.toml, relative to the workspace root.
    fn manifest(&self, member: &str) -> String {
        let manifest = self.dirs[member].join("Cargo.toml");
        let root = workspace_root();
        manifest
            .strip_prefix(&root)
            .unwrap_or(&manifest)
            .display()
            .to_string()
    }

    /// Every `.rs` file under `member`'s `src`, lexed.
    fn sources(&self, member: &str) -> Vec<SourceFile> {
        let mut files = Vec::new();
        rust_files(&self.dirs[member].join("src"), &mut files);
        files.sort();
        assert!(!files.is_empty(), "{member} has no sources under src/");
        files.iter().map(|path| SourceFile::read(path)).collect()
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// A Rust source file split into what the tests look at: its identifiers outside comments and
/// string literals, and its string literals, each with its line.
struct SourceFile {
    /// Relative to the workspace root, for messages.
    path: String,
    text: String,
    identifiers: Located,
    strings: Located,
}

impl SourceFile {
    fn read(path: &Path) -> Self {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let (identifiers, strings) = lex(&text);
        let root = workspace_root();
        let shown = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        Self {
            path: shown,
            text,
            identifiers,
            strings,
        }
    }

    fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// `path:line: identifier` for each use of one of `names` in code.
    fn mentions(&self, names: &[&str]) -> Vec<String> {
        self.identifiers
            .iter()
            .filter(|(_, ident)| names.contains(&ident.as_str()))
            .map(|(line, ident)| format!("{}:{line}: `{ident}`", self.path))
            .collect()
    }

    /// The line where the file's unit tests begin (`#[cfg(test)]`), if it has any.
    fn tests_start(&self) -> Option<usize> {
        self.text
            .lines()
            .position(|line| line.trim() == "#[cfg(test)]")
            .map(|index| index + 1)
    }

    /// Like [`Self::mentions`], but only in the code the crate ships (before its unit tests).
    fn mentions_outside_tests(&self, names: &[&str]) -> Vec<String> {
        let end = self.tests_start().unwrap_or(usize::MAX);
        self.identifiers
            .iter()
            .filter(|(line, ident)| *line < end && names.contains(&ident.as_str()))
            .map(|(line, ident)| format!("{}:{line}: `{ident}`", self.path))
            .collect()
    }

    /// `path:line: "…"` for each string literal that holds an SQL statement.
    fn sql_strings(&self) -> Vec<String> {
        self.strings
            .iter()
            .filter(|(_, text)| {
                SQL_KEYWORDS
                    .iter()
                    .any(|keyword| starts_word(text, keyword))
            })
            .map(|(line, text)| {
                let shown: String = text.trim().chars().take(60).collect();
                format!("{}:{line}: {shown:?}", self.path)
            })
            .collect()
    }
}

/// Whether `keyword` occurs in `text` at the start of a word (so `"UPDATE "` is not found in
/// `"AUTOUPDATE "`).
fn starts_word(text: &str, keyword: &str) -> bool {
    text.match_indices(keyword).any(|(at, _)| {
        text[..at]
            .chars()
            .next_back()
            .is_none_or(|before| !before.is_alphanumeric() && before != '_')
    })
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Pieces of a source file, each with its 1-based line.
type Located = Vec<(usize, String)>;

/// A small Rust lexer, enough to tell code from comments and string literals: line and (nested)
/// block comments, plain, byte, C and raw strings, char literals versus lifetimes. Returns the
/// identifiers of the code and the contents of the string literals, with their 1-based lines.
fn lex(text: &str) -> (Located, Located) {
    let chars: Vec<char> = text.chars().collect();
    let mut identifiers = Vec::new();
    let mut strings = Vec::new();
    let mut line = 1;
    let mut i = 0;
    // The line breaks inside chars[from..to], to keep `line` right across a skipped span.
    let count_lines =
        |from: usize, to: usize| chars[from..to].iter().filter(|&&c| c == '\n').count();
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let start = i;
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            line += count_lines(start, i);
        } else if c == '"' {
            let start_line = line;
            let start = i + 1;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            let end = i.min(chars.len());
            strings.push((start_line, chars[start..end].iter().collect()));
            line += count_lines(start, end);
            i = end + 1;
        } else if c == '\'' {
            // A char literal is `'x'` or `'\…'`; anything else is a lifetime or a label.
            if next == Some('\\') {
                // Past the quote, the backslash and the escaped character (which may be a quote).
                i += 3;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if is_ident_char(c) {
            let start = i;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            let ident: String = chars[start..i].iter().collect();
            let raw_prefix = matches!(ident.as_str(), "r" | "br" | "cr");
            let mut hashes = 0;
            while raw_prefix && chars.get(i + hashes) == Some(&'#') {
                hashes += 1;
            }
            if raw_prefix && chars.get(i + hashes) == Some(&'"') {
                let start_line = line;
                let start = i + hashes + 1;
                let closing: Vec<char> = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let mut end = start;
                while end < chars.len() && !chars[end..].starts_with(&closing) {
                    end += 1;
                }
                strings.push((start_line, chars[start..end].iter().collect()));
                line += count_lines(start, end);
                i = (end + closing.len()).min(chars.len());
            } else if ident == "r" && hashes == 1 {
                // A raw identifier, `r#type`: the identifier is what follows.
                i += 1;
            } else if !ident.starts_with(|c: char| c.is_ascii_digit()) {
                identifiers.push((line, ident));
            }
        } else {
            if c == '\n' {
                line += 1;
            }
            i += 1;
        }
    }
    (identifiers, strings)
}

fn assert_none(violations: &[String], rule: &str) {
    assert!(
        violations.is_empty(),
        "{rule}\n  broken by:\n    {}",
        violations.join("\n    ")
    );
}

/// Only `attendansee-api` (and the binary, whose `serve` mounts its router) depends on the web
/// stack, and no other workspace crate links it, not even through another crate.
#[test]
fn only_the_api_and_the_binary_depend_on_the_web_stack() {
    let ws = workspace();
    assert!(
        ws.declared[API].contains("axum") && ws.reaches(API).contains_key("axum"),
        "the probe is broken: it does not see attendansee-api's dependency on axum"
    );
    let mut violations = Vec::new();
    for member in ws.members.keys().filter(|m| *m != API && *m != BINARY) {
        for web in WEB_STACK {
            if ws.declared[member].contains(*web) {
                violations.push(format!("{} lists `{web}`", ws.manifest(member)));
            }
        }
        let reaches = ws.reaches(member);
        for web in WEB_STACK {
            // The S3 client (`object_store` → reqwest) follows redirects with tower-http's
            // middleware: a client's plumbing, not a server's web stack.
            let through_client =
                |chain: &&Vec<String>| *web == "tower-http" && chain.iter().any(|c| c == "reqwest");
            if let Some(chain) = reaches.get(*web).filter(|c| !through_client(c)) {
                violations.push(format!("{member} links `{web}`: {}", chain.join(" → ")));
            }
        }
    }
    assert_none(
        &violations,
        "only attendansee-api and the binary may depend on axum, tower-http or utoipa(-axum)",
    );
}

/// Inside the binary only `serve` (`src/serve.rs`) knows the HTTP crate: the other commands —
/// `attend`, `users`, the face commands, benchmarks — work without `attendansee-api` or axum.
#[test]
fn only_serve_in_the_binary_mentions_axum_or_the_http_crate() {
    let sources = workspace().sources(BINARY);
    let serve = sources
        .iter()
        .find(|file| file.path == "crates/attendansee/src/serve.rs")
        .expect("crates/attendansee/src/serve.rs exists");
    assert!(
        !serve.mentions(&["attendansee_api"]).is_empty(),
        "the probe is broken: it does not see serve.rs's use of attendansee_api"
    );
    let violations: Vec<String> = sources
        .iter()
        .filter(|file| file.path != serve.path)
        .flat_map(|file| file.mentions(&["axum", "attendansee_api"]))
        .collect();
    assert_none(
        &violations,
        "in the binary, only src/serve.rs may use axum or attendansee_api",
    );
}

/// The CLI's attendance and account commands use the services, never the HTTP crate (issue 13:
/// the command line must not depend on axum to compute attendance).
#[test]
fn attend_and_users_use_the_services_not_the_http_crate() {
    let sources = workspace().sources(BINARY);
    for name in ["attend.rs", "users.rs"] {
        let file = sources
            .iter()
            .find(|file| file.file_name() == name)
            .unwrap_or_else(|| panic!("crates/attendansee/src/{name} exists"));
        assert!(
            !file.mentions(&["attendansee_services"]).is_empty(),
            "{} does not use attendansee_services any more: update this test",
            file.path
        );
        assert_none(
            &file.mentions(&["attendansee_api", "axum"]),
            "the CLI's attend and users commands may not use attendansee_api or axum",
        );
    }
}

/// API handlers never go around the services: no module of the api names the store, the blob
/// store, the pool's job submission or the blob-key layout; only `lib.rs`
/// (which builds the state from a store and a pool) and `system.rs` (the pool's health) may name
/// `Store`, `BlobStore` or `Pool`.
#[test]
fn api_handlers_go_through_the_services() {
    let sources = workspace().sources(API);
    let lib = sources
        .iter()
        .find(|file| file.path == "crates/api/src/lib.rs")
        .expect("crates/api/src/lib.rs exists");
    assert!(
        !lib.mentions(&["Store"]).is_empty(),
        "the probe is broken: it does not see lib.rs building the state from a Store"
    );
    let violations: Vec<String> = sources
        .iter()
        .filter(|file| !["lib.rs", "system.rs"].contains(&file.file_name()))
        .flat_map(|file| {
            // A unit test may build a state from a store, as lib.rs does.
            file.mentions_outside_tests(&[
                "Store",
                "BlobStore",
                "StoreError",
                "Pool",
                "submit",
                "blob_keys",
            ])
        })
        .collect();
    assert_none(
        &violations,
        "api handlers call the services; only lib.rs and system.rs may name the store or the pool",
    );
}

/// The services know neither HTTP nor SQL: no axum or sqlx among their dependencies, no axum in
/// what they link, and no sqlx type named anywhere in their code, so none can be in their API.
#[test]
fn the_services_know_neither_http_nor_sql() {
    let ws = workspace();
    let mut violations = Vec::new();
    for forbidden in WEB_STACK.iter().chain(&["sqlx"]) {
        if ws.declared[SERVICES].contains(*forbidden) {
            violations.push(format!("{} lists `{forbidden}`", ws.manifest(SERVICES)));
        }
    }
    if let Some(chain) = ws.reaches(SERVICES).get("axum") {
        violations.push(format!(
            "attendansee-services links axum: {}",
            chain.join(" → ")
        ));
    }
    let sources = ws.sources(SERVICES);
    assert!(
        sources
            .iter()
            .any(|file| !file.mentions(&["attendansee_store"]).is_empty()),
        "the probe is broken: it does not see the services' use of attendansee_store"
    );
    violations.extend(
        sources
            .iter()
            .flat_map(|file| file.mentions(&["sqlx", "axum"])),
    );
    assert_none(
        &violations,
        "attendansee-services may depend on neither axum nor sqlx, nor name their types",
    );
}

/// Only `crates/store` contains SQL: no other crate depends on sqlx, names it, or holds a query in
/// a string literal.
#[test]
fn only_the_store_contains_sql() {
    let ws = workspace();
    let store_sql: usize = ws
        .sources(STORE)
        .iter()
        .map(|file| file.sql_strings().len() + file.mentions(&["sqlx"]).len())
        .sum();
    assert!(
        store_sql > 0,
        "the probe is broken: it finds no SQL and no sqlx in crates/store/src"
    );
    let mut violations = Vec::new();
    for member in ws.members.keys().filter(|m| *m != STORE) {
        if ws.declared[member].contains("sqlx") {
            violations.push(format!("{} lists `sqlx`", ws.manifest(member)));
        }
        for file in ws.sources(member) {
            violations.extend(file.mentions(&["sqlx"]));
            violations.extend(file.sql_strings());
        }
    }
    assert_none(&violations, "only crates/store may contain SQL or use sqlx");
}

/// The server process never loads ONNX Runtime nor decodes an image: the crates it is made of
/// link neither `ort`, `image` nor the face engine. Only the workers (and one-shot commands) do.
#[test]
fn the_server_crates_never_link_onnx_runtime_or_image_decoding() {
    let ws = workspace();
    let faces = ws.reaches(FACES);
    assert!(
        faces.contains_key("ort") && faces.contains_key("image"),
        "the probe is broken: it does not see attendansee-faces linking ort and image"
    );
    let mut violations = Vec::new();
    for member in SERVER_CRATES {
        let reaches = ws.reaches(member);
        for forbidden in INFERENCE_STACK {
            if let Some(chain) = reaches.get(*forbidden) {
                violations.push(format!(
                    "{member} links `{forbidden}`: {}",
                    chain.join(" → ")
                ));
            }
        }
    }
    assert_none(
        &violations,
        "attendansee-api, -services, -store and -pool may not link ort, image or attendansee-faces",
    );
}

/// No dependency points up the layers: vocabulary at the bottom; recognition, store, pool and
/// faces on it alone; services on those but the face engine; the api on the services; the binary
/// on everything.
#[test]
fn the_layers_only_point_down() {
    let ws = workspace();
    let layers: BTreeMap<&str, BTreeSet<&str>> = LAYERS
        .iter()
        .map(|(krate, allowed)| (*krate, allowed.iter().copied().collect()))
        .collect();
    assert!(
        !ws.workspace_deps(API).is_empty(),
        "the probe is broken: it sees no workspace dependency of attendansee-api"
    );
    let mut violations = Vec::new();
    for member in ws.members.keys() {
        let Some(allowed) = layers.get(member.as_str()) else {
            violations.push(format!(
                "{member} is not in the layering table (LAYERS in tests/architecture.rs): place it"
            ));
            continue;
        };
        for dep in ws.workspace_deps(member) {
            if !allowed.contains(dep.as_str()) {
                violations.push(format!("{member} → {dep}"));
            }
        }
    }
    assert_none(
        &violations,
        "a workspace crate depends on one it may not (see LAYERS in tests/architecture.rs)",
    );
}

/// Every module says what it is for: the first line of every `.rs` file under `crates/*/src` is
/// a `//!` doc comment (the house style has nothing before it, not even a blank line).
#[test]
fn every_module_starts_with_its_doc() {
    let ws = workspace();
    let mut checked = 0;
    let mut violations = Vec::new();
    for member in ws.members.keys() {
        for file in ws.sources(member) {
            checked += 1;
            let first = file.text.lines().next().unwrap_or("");
            if !first.starts_with("//!") {
                violations.push(format!("{}:1: {first:?}", file.path));
            }
        }
    }
    assert!(
        checked > 50,
        "the probe is broken: only {checked} source files found"
    );
    assert_none(
        &violations,
        "every .rs file under crates/*/src must start with a `//!` line saying what it is for",
    );
}

#[test]
fn the_lexer_tells_code_from_comments_and_strings() {
    let (identifiers, strings) = lex(concat!(
        "// axum in a comment\n",
        "/* nested /* axum */ still comment */ let a = 'x';\n",
        "let b = \"sqlx:: \\\" SELECT x\"; let c = '\\'';\n",
        "fn f<'a>(s: &'a str) -> &'a str { r#\"INSERT INTO t \"quoted\"\"# }\n",
        "use attendansee_api::router;\n",
        "let q = ('\\'','\"'); axum;\n",
    ));
    let idents: Vec<&str> = identifiers.iter().map(|(_, i)| i.as_str()).collect();
    assert!(
        !identifiers
            .iter()
            .any(|(line, ident)| ident == "axum" && *line < 6),
        "axum only appears in comments before line 6: {identifiers:?}"
    );
    assert!(!idents.contains(&"sqlx"), "{idents:?}");
    assert!(
        !idents.contains(&"x"),
        "a char literal is not an identifier: {idents:?}"
    );
    assert!(
        identifiers.contains(&(5, "attendansee_api".to_owned())),
        "{identifiers:?}"
    );
    assert_eq!(
        strings,
        vec![
            (3, "sqlx:: \\\" SELECT x".to_owned()),
            (4, "INSERT INTO t \"quoted\"".to_owned()),
        ]
    );
    assert!(starts_word(&strings[0].1, "SELECT "));
    assert!(!starts_word("AUTOUPDATE ", "UPDATE "));
}
