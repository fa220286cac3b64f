//! The README's Layout table and `src/lib.rs`'s module map describe every module as it is:
//! a module added, moved or removed without its line in both fails here.

use std::path::Path;

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Top-level modules: `src/NAME.rs` files and `src/NAME/` directories with a `mod.rs`.
fn top_level_modules() -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&src).expect("src/") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name");
        if let Some(stem) = name.strip_suffix(".rs") {
            if stem != "lib" && stem != "main" {
                names.push(stem.to_string());
            }
        } else if path.join("mod.rs").is_file() {
            names.push(name.to_string());
        }
    }
    names.sort();
    names
}

/// The README's Layout section, up to the next heading.
fn layout_section() -> String {
    let readme = read("README.md");
    let start = readme
        .find("## Layout")
        .expect("README has a Layout section");
    let rest = &readme[start + 2..];
    let end = rest.find("\n## ").map_or(rest.len(), |i| i);
    rest[..end].to_string()
}

#[test]
fn every_top_level_module_is_in_the_readme_layout() {
    let layout = layout_section();
    for m in top_level_modules() {
        let file = format!("`src/{m}.rs`");
        let dir = format!("`src/{m}/`");
        assert!(
            layout.contains(&file) || layout.contains(&dir),
            "README's Layout table does not name src/{m}"
        );
    }
}

#[test]
fn every_phase_file_is_in_the_readme_layout() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/proxy");
    let layout = layout_section();
    for entry in std::fs::read_dir(dir).expect("src/proxy/") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("utf-8");
        let shown = if path.is_dir() {
            format!("`src/proxy/{name}/`")
        } else if name == "mod.rs" {
            "`src/proxy/`".to_string()
        } else {
            format!("`src/proxy/{name}`")
        };
        assert!(
            layout.contains(&shown),
            "README's Layout table does not name {shown}"
        );
    }
}

#[test]
fn readme_layout_names_no_module_that_is_gone() {
    let layout = layout_section();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for piece in layout.split('`') {
        if piece.starts_with("src/") {
            assert!(
                root.join(piece).exists(),
                "README's Layout table names {piece}, which does not exist"
            );
        }
    }
}

#[test]
fn lib_rs_module_map_links_every_module() {
    let lib = read("src/lib.rs");
    let doc: String = lib
        .lines()
        .filter(|l| l.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    for m in top_level_modules() {
        assert!(
            doc.contains(&format!("[`{m}`]")),
            "src/lib.rs's module map does not link [`{m}`]"
        );
        assert!(
            lib.contains(&format!("pub mod {m};")),
            "src/lib.rs does not declare {m}"
        );
    }
    // every phase file the map names exists
    for piece in doc.split('`') {
        if piece.starts_with("proxy/") {
            assert!(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("src")
                    .join(piece)
                    .exists(),
                "src/lib.rs's map names src/{piece}, which does not exist"
            );
        }
    }
}
