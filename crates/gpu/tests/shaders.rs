//! Every `.wgsl` file under `shaders/` parses and validates with naga (the compiler wgpu uses),
//! and opens with the documentation comment the project asks for.

use std::path::Path;

fn shader_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shaders"))
}

#[test]
fn every_shader_parses_and_validates() {
    let mut seen = 0;
    for entry in std::fs::read_dir(shader_dir()).expect("shaders/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_none_or(|e| e != "wgsl") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("readable shader");
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&source)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&source)));
        let header: String = source.lines().take_while(|l| l.starts_with("//")).collect();
        for needle in ["Bindings", "CPU twin", "orkgroup size"] {
            assert!(
                header.contains(needle),
                "{}: header lacks {needle:?}",
                path.display()
            );
        }
        seen += 1;
    }
    assert!(seen >= 3, "expected the three shaders, found {seen}");
}
