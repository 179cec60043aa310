//! Contracts between the WGSL files and the Rust that drives them, checked rather than trusted:
//! every kernel (with `common.wgsl` prepended, as it is loaded) parses and validates with naga;
//! each `.wgsl` opens with the header the project asks for and the CPU twin it names exists in
//! psa-core; and every `Pod` struct the host uploads has the size and field offsets of its
//! WGSL twin.

use std::path::{Path, PathBuf};

use psa_gpu::kernels::coupling::CouplingParams;
use psa_gpu::kernels::sinkhorn_lse::Params;
use psa_gpu::kernels::{GroupState, source};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shaders() -> Vec<(PathBuf, String)> {
    let mut out: Vec<(PathBuf, String)> = std::fs::read_dir(repo().join("shaders"))
        .expect("shaders/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable shader");
            (p, text)
        })
        .collect();
    out.sort();
    out
}

fn parse(label: &Path, source: &str) -> (naga::Module, naga::valid::ModuleInfo) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{}: {}", label.display(), e.emit_to_string(source)));
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{}: {}", label.display(), e.emit_to_string(source)));
    (module, info)
}

#[test]
fn every_kernel_parses_and_validates_with_common_prepended() {
    let mut kernels = 0;
    for (path, text) in shaders() {
        if path.ends_with("common.wgsl") {
            continue;
        }
        parse(&path, &source(&text));
        kernels += 1;
    }
    assert_eq!(kernels, 2, "sinkhorn_lse.wgsl and coupling.wgsl");
}

/// The header: the comment lines before the first line of code.
fn header(text: &str) -> String {
    text.lines()
        .take_while(|l| l.starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `psa_core::a::b::Name` or `psa_core::a::Type::{m1, m2}` paths of a header's "CPU twin".
fn twins(header: &str) -> Vec<String> {
    let from = header.find("CPU twin").expect("a CPU twin line");
    let text: String = header[from..]
        .lines()
        .map(|l| l.trim_start_matches("//").trim())
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = Vec::new();
    for start in text.match_indices("psa_core::").map(|(i, _)| i) {
        let rest = &text[start..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || "_:{}, ".contains(c)))
            .unwrap_or(rest.len());
        let path = rest[..end].trim_end_matches([',', ' ']);
        // Expand `Type::{a, b}` into `Type::a`, `Type::b`.
        if let Some((base, list)) = path.split_once("::{") {
            for item in list.split('}').next().unwrap_or("").split(',') {
                out.push(format!("{base}::{}", item.trim()));
            }
        } else {
            out.push(path.split(' ').next().unwrap_or(path).to_string());
        }
    }
    out
}

/// The source files of a psa-core module path (`a/b.rs`, `a/b/mod.rs`, and for a folder
/// module the files beside its `mod.rs`, where re-exports come from).
fn module_files(segments: &[&str]) -> Vec<PathBuf> {
    let src = repo().join("crates/core/src");
    let dir = segments.iter().fold(src.clone(), |d, s| d.join(s));
    let mut files = vec![dir.with_extension("rs")];
    if dir.is_dir() {
        files.extend(
            std::fs::read_dir(&dir)
                .expect("module folder")
                .map(|e| e.expect("entry").path()),
        );
    }
    if segments.is_empty() {
        files.push(src.join("lib.rs"));
    }
    files.into_iter().filter(|f| f.is_file()).collect()
}

/// Whether `name` is defined (fn, struct, enum, trait, type, const) in one of `files`.
fn defines(files: &[PathBuf], name: &str) -> bool {
    let kinds = ["fn", "struct", "enum", "trait", "type", "const"];
    files.iter().any(|f| {
        let text = std::fs::read_to_string(f).expect("readable source");
        kinds.iter().any(|k| {
            text.match_indices(&format!("{k} {name}")).any(|(i, m)| {
                let next = text[i + m.len()..].chars().next().unwrap_or(' ');
                !(next.is_alphanumeric() || next == '_')
            })
        })
    })
}

/// Whether a `psa_core::…` path names something that exists: its last item is defined in the
/// module the path names (for `module::Type::method`, the type and the method in that module).
fn exists(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches("psa_core::").split("::").collect();
    let (item, modules) = segments.split_last().expect("a path");
    let type_at = modules
        .iter()
        .position(|s| s.starts_with(|c: char| c.is_uppercase()));
    match type_at {
        Some(t) => {
            let files = module_files(&modules[..t]);
            defines(&files, modules[t]) && defines(&files, item)
        }
        None => defines(&module_files(modules), item),
    }
}

#[test]
fn every_shader_header_says_what_it_is_and_its_cpu_twin_exists() {
    for (path, text) in shaders() {
        let header = header(&text);
        for needle in ["Bindings", "CPU twin", "orkgroup size"] {
            assert!(
                header.contains(needle),
                "{}: header lacks {needle:?}",
                path.display()
            );
        }
        let named = twins(&header);
        assert!(!named.is_empty(), "{}: names no CPU twin", path.display());
        for twin in named {
            assert!(
                exists(&twin),
                "{}: CPU twin {twin} not found",
                path.display()
            );
        }
    }
}

#[test]
fn the_twin_check_rejects_names_that_do_not_exist() {
    assert!(exists("psa_core::sinkhorn::soft_min_rows"));
    assert!(exists("psa_core::coupling::Coupling::row_into"));
    assert!(!exists("psa_core::sinkhorn::row_lse"));
    assert!(!exists("psa_core::coupling::Coupling::no_such_method"));
    assert_eq!(
        twins("// CPU twin: psa_core::coupling::Coupling::{top_k, row}, psa_core::Metric::cost."),
        vec![
            "psa_core::coupling::Coupling::top_k",
            "psa_core::coupling::Coupling::row",
            "psa_core::Metric::cost"
        ]
    );
}

/// Size and member offsets of struct `name` in a validated module.
fn wgsl_layout(module: &naga::Module, name: &str) -> (u32, Vec<(String, u32)>) {
    let mut layouter = naga::proc::Layouter::default();
    layouter
        .update(module.to_ctx())
        .expect("layouts of every type");
    let (handle, ty) = module
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no struct {name} in the WGSL"));
    match &ty.inner {
        naga::TypeInner::Struct { members, span } => {
            let offsets = members
                .iter()
                .map(|m| (m.name.clone().unwrap_or_default(), m.offset))
                .collect();
            assert_eq!(*span, layouter[handle].size);
            (*span, offsets)
        }
        other => panic!("{name} is not a struct: {other:?}"),
    }
}

/// Rust field offsets, listed by hand with `offset_of!` (a field added on one side only
/// fails the comparison).
macro_rules! rust_layout {
    ($ty:ty { $($field:ident),* $(,)? }) => {
        (
            std::mem::size_of::<$ty>() as u32,
            vec![$((stringify!($field).to_string(), std::mem::offset_of!($ty, $field) as u32)),*],
        )
    };
}

#[test]
fn every_pod_struct_has_the_layout_of_its_wgsl_twin() {
    let sinkhorn = parse(
        Path::new("sinkhorn_lse.wgsl"),
        &source(psa_gpu::kernels::sinkhorn_lse::OWN_SOURCE),
    )
    .0;
    let coupling = parse(
        Path::new("coupling.wgsl"),
        &source(psa_gpu::kernels::coupling::OWN_SOURCE),
    )
    .0;
    let group_state = rust_layout!(GroupState {
        off1,
        n1,
        off2,
        n2,
        chunks1,
        chunks2,
        chunk_cols1,
        chunk_cols2,
        part1,
        part2,
        sched_off,
        n_stages,
        stage,
        iterations,
        max_iter,
        is_active,
        converged,
        stall,
        floored,
        accel,
        kappa,
        tau,
        tol,
        stage_tol,
        error,
        best,
        floor,
        mean_cost,
        s_hi,
        s_lo,
        one,
        overrelax,
        stage_iters,
        fallbacks,
        mark_err,
        mark_iter,
    });
    assert_eq!(wgsl_layout(&sinkhorn, "GroupState"), group_state);
    assert_eq!(wgsl_layout(&coupling, "GroupState"), group_state);
    assert_eq!(
        wgsl_layout(&sinkhorn, "Params"),
        rust_layout!(Params {
            half,
            n_blocks,
            n_rows,
            row_base,
            col_base,
            mode,
            n_groups,
            _pad
        })
    );
    assert_eq!(
        wgsl_layout(&coupling, "CouplingParams"),
        rust_layout!(CouplingParams {
            n_rows,
            col_base,
            k,
            y_width,
            y_block,
            group,
            first_row,
            draws
        })
    );
}
