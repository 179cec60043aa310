//! The counted proxy of the Sinkhorn hot loop (the log-sum-exp over pairs of METHOD.md step 3,
//! Eq. 8): what each pair costs in instructions, read off the SPIR-V that wgpu hands a Vulkan
//! driver, so that kernel changes can be judged without a GPU (a GPU measurement calibrates
//! it; benches/RESULTS.md, "GPU kernel").
//!
//! Each kernel variant is compiled as wgpu compiles it for Vulkan — naga with the pipeline's
//! override constants, the module's bounds-check policy (array indices clamped when checked;
//! buffer accesses unchecked, as on drivers with robust buffer access 2) and no loop-bounding
//! counters — to SPIR-V 1.6. The counter walks the entry point's structured control flow:
//! * the hot loop is the innermost loop with a run-time trip count that executes `exp2`;
//!   everything is counted per iteration of it, divided by the pairs one iteration evaluates
//!   (its `exp2` lanes: one per pair);
//! * loops with a constant trip count (after the overrides) count their body that many times
//!   and nothing for their control: drivers unroll them, and index arithmetic that depends
//!   only on their counters and on values from outside the hot loop folds into addresses;
//! * branches on a constant follow the taken side; other branches inside the hot loop are
//!   rare paths (the exact recomputation of a few pairs) and count only their condition;
//! * function calls count their callee's body;
//! * an operation counts once per lane of its result (a vec4 FMA is 4), unless all its inputs
//!   are invariant in the hot loop (hoisted).
//!
//! Categories per pair: arithmetic (ALU lane operations), special (`exp2`, `sqrt`, `log2`, …
//! on the special-function units), workgroup loads (instructions, any width), clamps (`UMin`
//! that bounds checks insert on indices). Their sum is the proxy.

use std::collections::{HashMap, HashSet};

use psa_core::Metric;

use crate::GpuError;
use crate::kernels::sinkhorn_lse::OWN_SOURCE;
use crate::kernels::{KernelVariant, Specialisation, default_rows, source};

/// Per-pair instruction counts of one kernel variant's hot loop.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelStats {
    /// Which variant (`rows=4 expanded fixed-shift`, …).
    pub name: String,
    /// Pairs one iteration of the hot loop evaluates (its `exp2` lanes).
    pub pairs_per_iteration: f64,
    /// Scalarised ALU operations per pair.
    pub arithmetic: f64,
    /// `exp2`, `sqrt` and other special-function operations per pair.
    pub special: f64,
    /// Loads from workgroup memory per pair (instructions, of any width).
    pub workgroup_loads: f64,
    /// Index clamps per pair (`UMin` from bounds checks).
    pub clamps: f64,
    /// Loads from storage buffers per pair (the tile fill, amortised).
    pub global_loads: f64,
    /// Data-dependent branches in the hot loop whose bodies were not counted (rare paths).
    pub rare_branches: usize,
}

impl KernelStats {
    /// The proxy: everything issued per pair.
    pub fn total(&self) -> f64 {
        self.arithmetic + self.special + self.workgroup_loads + self.clamps
    }
}

/// The proxy for each step of issue 15 at `dim` score coordinates, in order: one row per
/// invocation with direct differences and a running max (the shape of the original kernel,
/// on the new tiles); several rows per invocation; the row frame as a fixed shift; the
/// expanded distance (the production kernel); then the production kernel with 1, 2 and 8 rows.
pub fn kernel_stats(dim: usize, metric: Metric) -> Result<Vec<KernelStats>, GpuError> {
    let rows = default_rows(dim);
    let step = |rows, expanded, fixed_shift| KernelVariant {
        rows: Some(rows),
        expanded: Some(expanded),
        fixed_shift: Some(fixed_shift),
        ..KernelVariant::default()
    };
    let mut variants = vec![
        ("step 0: 1 row, direct, running max", step(1, false, false)),
        ("step 1: rows per invocation", step(rows, false, false)),
        (
            "step 2: + row frame as fixed shift",
            step(rows, false, true),
        ),
        ("step 3: + expanded distance", step(rows, true, true)),
    ];
    for r in [1, 2, 8] {
        if r != rows {
            variants.push(("production, other rows", step(r, true, true)));
        }
    }
    variants
        .into_iter()
        .map(|(label, variant)| {
            let spec = Specialisation::new(dim, metric).with(&variant);
            let mut stats = count(
                &source(OWN_SOURCE),
                "lse",
                &spec.sinkhorn_constants(),
                false,
            )?;
            stats.name = format!("{label} ({})", spec.describe());
            Ok(stats)
        })
        .collect()
}

/// Counts the hot loop of entry point `entry` of a WGSL source compiled with `constants`,
/// with bounds checks on array indices when `checked`.
pub fn count(
    source: &str,
    entry: &str,
    constants: &[(&str, f64)],
    checked: bool,
) -> Result<KernelStats, GpuError> {
    let words = compile(source, entry, constants, checked)?;
    let module = Module::parse(&words).map_err(stats_error)?;
    module.count_entry(entry).map_err(stats_error)
}

fn stats_error(message: String) -> GpuError {
    GpuError::Input {
        what: "kernel stats",
        message,
    }
}

/// SPIR-V 1.6 of one entry point, as wgpu's Vulkan backend would produce it.
pub fn compile(
    source: &str,
    entry: &str,
    constants: &[(&str, f64)],
    checked: bool,
) -> Result<Vec<u32>, GpuError> {
    use naga::back::spv;
    use naga::proc::{BoundsCheckPolicies, BoundsCheckPolicy};
    let module =
        naga::front::wgsl::parse_str(source).map_err(|e| stats_error(e.emit_to_string(source)))?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .map_err(|e| stats_error(e.emit_to_string(source)))?;
    let constants: naga::back::PipelineConstants =
        constants.iter().map(|&(k, v)| (k.to_string(), v)).collect();
    let (module, info) = naga::back::pipeline_constants::process_overrides(
        &module,
        &info,
        Some((naga::ShaderStage::Compute, entry)),
        &constants,
    )
    .map_err(|e| stats_error(e.to_string()))?;
    let index = if checked {
        BoundsCheckPolicy::Restrict
    } else {
        BoundsCheckPolicy::Unchecked
    };
    let options = spv::Options {
        lang_version: (1, 6),
        bounds_check_policies: BoundsCheckPolicies {
            index,
            buffer: BoundsCheckPolicy::Unchecked,
            image_load: index,
            binding_array: BoundsCheckPolicy::Unchecked,
        },
        zero_initialize_workgroup_memory: spv::ZeroInitializeWorkgroupMemoryMode::None,
        force_loop_bounding: false,
        ..spv::Options::default()
    };
    let pipeline = spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: entry.to_string(),
    };
    spv::write_vec(&module, &info, &options, Some(&pipeline))
        .map_err(|e| stats_error(e.to_string()))
}

/// One instruction: its opcode and operand words.
#[derive(Clone, Debug)]
struct Inst {
    op: spirv::Op,
    words: Vec<u32>,
}

#[derive(Clone, Copy, Debug)]
enum Merge {
    Loop { merge: u32, cont: u32 },
    Selection { merge: u32 },
}

#[derive(Clone, Debug)]
struct Block {
    body: Vec<Inst>,
    merge: Option<Merge>,
    term: Inst,
}

#[derive(Clone, Debug, Default)]
struct Function {
    params: Vec<u32>,
    entry: u32,
    blocks: HashMap<u32, Block>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Type {
    Scalar,
    Vector(u32),
    Pointer(spirv::StorageClass),
    Other,
}

/// What the counter needs of a SPIR-V module.
#[derive(Debug, Default)]
struct Module {
    types: HashMap<u32, Type>,
    /// Result type of every value.
    value_type: HashMap<u32, u32>,
    /// Integer and boolean constants.
    constants: HashMap<u32, i64>,
    functions: HashMap<u32, Function>,
    entry_points: HashMap<String, u32>,
    /// Root variable of every pointer (variables are their own root).
    roots: HashMap<u32, u32>,
    /// Storage class of every variable.
    classes: HashMap<u32, spirv::StorageClass>,
}

/// Operation counts, weighted by how often they run.
#[derive(Clone, Debug, Default)]
struct Tally {
    arithmetic: f64,
    special: f64,
    workgroup_loads: f64,
    clamps: f64,
    global_loads: f64,
    exp2: f64,
    rare_branches: usize,
}

impl Module {
    fn parse(words: &[u32]) -> Result<Module, String> {
        if words.len() < 5 || words[0] != spirv::MAGIC_NUMBER {
            return Err("not SPIR-V".into());
        }
        let mut m = Module::default();
        let mut at = 5;
        let mut current: Option<(u32, Function)> = None;
        let mut label: Option<u32> = None;
        let mut body = Vec::new();
        let mut merge = None;
        while at < words.len() {
            let count = (words[at] >> 16) as usize;
            let code = words[at] & 0xffff;
            if count == 0 || at + count > words.len() {
                return Err(format!("malformed instruction at word {at}"));
            }
            let op = spirv::Op::from_u32(code).ok_or(format!("unknown opcode {code}"))?;
            let inst = Inst {
                op,
                words: words[at + 1..at + count].to_vec(),
            };
            at += count;
            m.declare(&inst);
            use spirv::Op as O;
            match op {
                O::Function => current = Some((inst.words[1], Function::default())),
                O::FunctionParameter => {
                    if let Some((_, f)) = current.as_mut() {
                        f.params.push(inst.words[1]);
                    }
                }
                O::FunctionEnd => {
                    if let Some((id, f)) = current.take() {
                        m.functions.insert(id, f);
                    }
                }
                O::Label => {
                    label = Some(inst.words[0]);
                    if let Some((_, f)) = current.as_mut()
                        && f.blocks.is_empty()
                    {
                        f.entry = inst.words[0];
                    }
                }
                O::LoopMerge => {
                    merge = Some(Merge::Loop {
                        merge: inst.words[0],
                        cont: inst.words[1],
                    })
                }
                O::SelectionMerge => {
                    merge = Some(Merge::Selection {
                        merge: inst.words[0],
                    })
                }
                O::Branch
                | O::BranchConditional
                | O::Switch
                | O::Return
                | O::ReturnValue
                | O::Kill
                | O::Unreachable => {
                    if let (Some((_, f)), Some(l)) = (current.as_mut(), label.take()) {
                        f.blocks.insert(
                            l,
                            Block {
                                body: std::mem::take(&mut body),
                                merge: merge.take(),
                                term: inst,
                            },
                        );
                    }
                }
                _ if current.is_some() && label.is_some() => body.push(inst),
                _ => {}
            }
        }
        Ok(m)
    }

    /// Records types, constants, variables and the result type of values.
    fn declare(&mut self, inst: &Inst) {
        use spirv::Op as O;
        let w = &inst.words;
        match inst.op {
            O::TypeBool | O::TypeInt | O::TypeFloat => {
                self.types.insert(w[0], Type::Scalar);
            }
            O::TypeVector => {
                self.types.insert(w[0], Type::Vector(w[2]));
            }
            O::TypePointer => {
                let class =
                    spirv::StorageClass::from_u32(w[1]).unwrap_or(spirv::StorageClass::Private);
                self.types.insert(w[0], Type::Pointer(class));
            }
            O::TypeVoid | O::TypeArray | O::TypeRuntimeArray | O::TypeStruct | O::TypeFunction => {
                self.types.insert(w[0], Type::Other);
            }
            O::Constant => {
                self.constants.insert(w[1], i64::from(w[2]));
                self.value_type.insert(w[1], w[0]);
            }
            O::ConstantTrue => {
                self.constants.insert(w[1], 1);
            }
            O::ConstantNull => {
                self.constants.insert(w[1], 0);
                self.value_type.insert(w[1], w[0]);
            }
            O::ConstantFalse => {
                self.constants.insert(w[1], 0);
            }
            O::Variable => {
                self.roots.insert(w[1], w[1]);
                if let Some(class) = spirv::StorageClass::from_u32(w[2]) {
                    self.classes.insert(w[1], class);
                }
                self.value_type.insert(w[1], w[0]);
            }
            O::AccessChain | O::InBoundsAccessChain => {
                if let Some(&root) = self.roots.get(&w[2]) {
                    self.roots.insert(w[1], root);
                }
                self.value_type.insert(w[1], w[0]);
            }
            O::EntryPoint => {
                let name = string_operand(&w[2..]);
                self.entry_points.insert(name, w[1]);
            }
            op if has_result(op) => {
                self.value_type.insert(w[1], w[0]);
            }
            _ => {}
        }
    }

    /// Lanes of a value's type (1 for scalars).
    fn lanes(&self, value: u32) -> f64 {
        match self.value_type.get(&value).and_then(|t| self.types.get(t)) {
            Some(Type::Vector(n)) => f64::from(*n),
            _ => 1.0,
        }
    }

    fn class_of_pointer(&self, pointer: u32) -> Option<spirv::StorageClass> {
        match self
            .value_type
            .get(&pointer)
            .and_then(|t| self.types.get(t))
        {
            Some(Type::Pointer(class)) => Some(*class),
            _ => None,
        }
    }

    fn count_entry(&self, entry: &str) -> Result<KernelStats, String> {
        let id = *self
            .entry_points
            .get(entry)
            .ok_or(format!("no entry point {entry}"))?;
        let function = self.functions.get(&id).ok_or("entry point has no body")?;
        // Pass 1: find the hot loop.
        let mut finder = Walker::new(self, Mode::Find);
        finder.walk_function(function);
        let hot = finder.hot.ok_or("no run-time loop executes exp2")?;
        // Pass 2: count one iteration of it.
        let mut counter = Walker::new(self, Mode::Count { hot });
        counter.walk_function(function);
        let t = counter.tally;
        let pairs = t.exp2.max(1.0);
        Ok(KernelStats {
            name: entry.to_string(),
            pairs_per_iteration: t.exp2,
            arithmetic: t.arithmetic / pairs,
            special: t.special / pairs,
            workgroup_loads: t.workgroup_loads / pairs,
            clamps: t.clamps / pairs,
            global_loads: t.global_loads / pairs,
            rare_branches: t.rare_branches,
        })
    }

    /// Roots of every pointer stored to in the loop with header `header` (every path, callees
    /// included).
    fn stores_in_region(
        &self,
        function: &Function,
        header: u32,
        stored: &mut HashSet<u32>,
        seen: &mut HashSet<u32>,
    ) {
        let Some(Merge::Loop { merge, .. }) = function.blocks.get(&header).and_then(|b| b.merge)
        else {
            return;
        };
        let mut stack = vec![header];
        let mut visited = HashSet::new();
        while let Some(label) = stack.pop() {
            if label == merge || !visited.insert(label) {
                continue;
            }
            let Some(block) = function.blocks.get(&label) else {
                continue;
            };
            for inst in &block.body {
                self.note_stores(inst, stored, seen);
            }
            stack.extend(successors(&block.term));
        }
    }

    fn note_stores(&self, inst: &Inst, stored: &mut HashSet<u32>, seen: &mut HashSet<u32>) {
        match inst.op {
            spirv::Op::Store => {
                stored.insert(*self.roots.get(&inst.words[0]).unwrap_or(&inst.words[0]));
            }
            spirv::Op::FunctionCall => {
                let callee = inst.words[2];
                if seen.insert(callee)
                    && let Some(f) = self.functions.get(&callee)
                {
                    for block in f.blocks.values() {
                        for i in &block.body {
                            self.note_stores(i, stored, seen);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn successors(term: &Inst) -> Vec<u32> {
    match term.op {
        spirv::Op::Branch => vec![term.words[0]],
        spirv::Op::BranchConditional => vec![term.words[1], term.words[2]],
        spirv::Op::Switch => {
            let mut out = vec![term.words[1]];
            out.extend(term.words[2..].chunks(2).filter_map(|c| c.get(1).copied()));
            out
        }
        _ => Vec::new(),
    }
}

fn string_operand(words: &[u32]) -> String {
    let bytes: Vec<u8> = words
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Opcodes whose first two operands are a result type and a result id.
fn has_result(op: spirv::Op) -> bool {
    use spirv::Op as O;
    !matches!(
        op,
        O::Store
            | O::Branch
            | O::BranchConditional
            | O::Switch
            | O::Return
            | O::ReturnValue
            | O::Kill
            | O::Unreachable
            | O::LoopMerge
            | O::SelectionMerge
            | O::Label
            | O::ControlBarrier
            | O::MemoryBarrier
            | O::Name
            | O::MemberName
            | O::Decorate
            | O::MemberDecorate
            | O::EntryPoint
            | O::ExecutionMode
            | O::Capability
            | O::Extension
            | O::ExtInstImport
            | O::MemoryModel
            | O::Source
            | O::SourceExtension
            | O::String
            | O::Line
            | O::NoLine
            | O::FunctionEnd
            | O::TypeVoid
            | O::TypeBool
            | O::TypeInt
            | O::TypeFloat
            | O::TypeVector
            | O::TypePointer
            | O::TypeArray
            | O::TypeRuntimeArray
            | O::TypeStruct
            | O::TypeFunction
            | O::AtomicStore
    )
}

#[derive(Clone, Debug)]
enum Mode {
    /// Find the innermost run-time loop that executes exp2.
    Find,
    /// Count the loop with header `hot`.
    Count { hot: u32 },
}

/// How a value varies inside the hot loop: `level` is the depth of the innermost loop it
/// changes with (0: invariant, hoisted out; 1: the hot loop itself; 2…: loops inside it), and
/// `data` whether it depends on anything but constants and constant-trip loop counters (if
/// not, unrolling makes it a constant and it costs nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Varies {
    level: usize,
    data: bool,
}

impl Varies {
    fn join(self, other: Varies) -> Varies {
        Varies {
            level: self.level.max(other.level),
            data: self.data || other.data,
        }
    }
}

/// One loop being walked: its depth's trip count, the variables it stores, whether it is a
/// constant-trip loop and its counter.
struct Frame {
    trip: f64,
    stores: HashSet<u32>,
    counter: Option<u32>,
}

/// Walks structured control flow, tallying operations.
struct Walker<'m> {
    m: &'m Module,
    mode: Mode,
    /// The hot loop's header (Find).
    hot: Option<u32>,
    /// The tally of one iteration of the hot loop (Count).
    tally: Tally,
    /// Loops from the hot loop (index 0) inwards; empty outside the hot loop.
    frames: Vec<Frame>,
    attrs: HashMap<u32, Varies>,
    /// exp2 seen in the current walk (Find: which loops contain one).
    exp2_seen: f64,
    /// How the value the function being walked returns varies.
    returned: Varies,
}

impl<'m> Walker<'m> {
    fn new(m: &'m Module, mode: Mode) -> Walker<'m> {
        Walker {
            m,
            mode,
            hot: None,
            tally: Tally::default(),
            frames: Vec::new(),
            attrs: HashMap::new(),
            exp2_seen: 0.0,
            returned: Varies::default(),
        }
    }

    fn counting(&self) -> bool {
        !self.frames.is_empty()
    }

    fn walk_function(&mut self, f: &Function) {
        self.walk(f, f.entry, &[]);
    }

    fn attr(&self, value: u32) -> Varies {
        self.attrs.get(&value).copied().unwrap_or_default()
    }

    /// Executions of something varying at `level` per iteration of the hot loop.
    fn weight(&self, level: usize) -> f64 {
        self.frames.iter().take(level).map(|f| f.trip).product()
    }

    /// Walks from `label` until one of `stops`.
    fn walk(&mut self, f: &Function, mut label: u32, stops: &[u32]) {
        let mut guard = 0;
        while !stops.contains(&label) && guard < 100_000 {
            guard += 1;
            let Some(block) = f.blocks.get(&label) else {
                break;
            };
            for inst in &block.body {
                self.instruction(inst);
            }
            match (block.merge, &block.term) {
                (Some(Merge::Loop { merge, cont }), term) => {
                    let body = successors(term)[0];
                    self.walk_loop(f, label, body, merge, cont);
                    label = merge;
                }
                (Some(Merge::Selection { merge }), term) => {
                    self.walk_selection(f, term, merge, stops);
                    label = merge;
                }
                (None, term) => match term.op {
                    spirv::Op::Branch => label = term.words[0],
                    spirv::Op::ReturnValue => {
                        self.returned = self.returned.join(self.attr(term.words[0]));
                        break;
                    }
                    _ => break,
                },
            }
        }
    }

    fn walk_selection(&mut self, f: &Function, term: &Inst, merge: u32, stops: &[u32]) {
        if term.op != spirv::Op::BranchConditional {
            return;
        }
        let (cond, yes, no) = (term.words[0], term.words[1], term.words[2]);
        let mut inner: Vec<u32> = stops.to_vec();
        inner.push(merge);
        if let Some(&c) = self.m.constants.get(&cond) {
            let taken = if c != 0 { yes } else { no };
            return self.walk(f, taken, &inner);
        }
        // A loop-exit test (one side leaves the enclosing loop): its condition was counted
        // with the block's instructions (free when it tests a constant-trip counter).
        let exits = |l: u32| stops.contains(&l) || stops.iter().any(|&s| breaks_to(f, l, s));
        if exits(yes) || exits(no) {
            let stay = if exits(yes) { no } else { yes };
            return self.walk(f, stay, &inner);
        }
        if self.counting() {
            // A data-dependent branch inside the hot loop: a rare path.
            self.tally.rare_branches += 1;
            return;
        }
        // Outside the hot loop, both sides (Find looks for loops everywhere).
        self.walk(f, yes, &inner);
        self.walk(f, no, &inner);
    }

    fn walk_loop(&mut self, f: &Function, header: u32, body: u32, merge: u32, cont: u32) {
        let trip = self.trip_count(f, body, merge);
        let entering_hot = matches!(&self.mode, Mode::Count { hot } if *hot == header);
        let inside = self.counting() || entering_hot;
        if entering_hot {
            // Everything computed before the hot loop is invariant in it.
            self.attrs.clear();
        }
        if inside {
            let mut stores = HashSet::new();
            self.m
                .stores_in_region(f, header, &mut stores, &mut HashSet::new());
            self.frames.push(Frame {
                trip: if entering_hot {
                    1.0
                } else {
                    trip.map_or(1.0, |(_, n)| n as f64)
                },
                stores,
                counter: trip.map(|(var, _)| var),
            });
        }
        let exp2_before = self.exp2_seen;
        self.walk(f, body, &[cont, merge]);
        self.walk(f, cont, &[header, merge]);
        if inside {
            self.frames.pop();
        }
        let has_exp2 = self.exp2_seen > exp2_before;
        if matches!(self.mode, Mode::Find) && trip.is_none() && has_exp2 && self.hot.is_none() {
            self.hot = Some(header);
        }
    }

    /// `(counter variable, trips)` of a loop `for (var i = C0; i < C1; i++)` with constant
    /// bounds, from its exit test and the counter's stores; `None` for run-time trips.
    fn trip_count(&self, f: &Function, body: u32, merge: u32) -> Option<(u32, i64)> {
        let block = f.blocks.get(&body)?;
        // naga: %i = OpLoad %var; %c = OpULessThan %i %N; (OpLogicalNot) ...; branch to merge.
        let (cond, _) = exit_condition(f, body, merge)?;
        let mut loads: HashMap<u32, u32> = HashMap::new();
        let mut defs: HashMap<u32, &Inst> = HashMap::new();
        for inst in &block.body {
            if inst.op == spirv::Op::Load {
                loads.insert(inst.words[1], inst.words[2]);
            }
            if has_result(inst.op) && inst.words.len() > 1 {
                defs.insert(inst.words[1], inst);
            }
        }
        let mut test = defs.get(&cond).copied()?;
        if test.op == spirv::Op::LogicalNot {
            test = defs.get(&test.words[2]).copied()?;
        }
        if !matches!(
            test.op,
            spirv::Op::ULessThan | spirv::Op::SLessThan | spirv::Op::INotEqual
        ) {
            return None;
        }
        let var = *loads.get(&test.words[2])?;
        let limit = *self.m.constants.get(&test.words[3])?;
        let start = self.initial_value(f, var)?;
        Some((var, (limit - start).max(0)))
    }

    /// The constant a variable holds before its loop: naga initialises loop counters in their
    /// declaration (`OpVariable ... %init`) or with a store of a constant.
    fn initial_value(&self, f: &Function, var: u32) -> Option<i64> {
        let mut declared = None;
        let mut stored = Vec::new();
        for block in f.blocks.values() {
            for inst in &block.body {
                if inst.op == spirv::Op::Variable && inst.words[1] == var {
                    declared = inst
                        .words
                        .get(3)
                        .and_then(|i| self.m.constants.get(i))
                        .copied();
                }
                if inst.op == spirv::Op::Store && inst.words[0] == var {
                    stored.push(self.m.constants.get(&inst.words[1]).copied());
                }
            }
        }
        // One constant store (the `var i = C0`) besides the loop's increment, else the
        // declaration's initialiser.
        let constants: Vec<i64> = stored.iter().flatten().copied().collect();
        match constants.as_slice() {
            [c] => Some(*c),
            [] => declared,
            _ => None,
        }
    }

    /// How a load from `pointer` varies.
    fn load_varies(&self, pointer: u32) -> Varies {
        let address = self.attr(pointer);
        let root = self.m.roots.get(&pointer).copied().unwrap_or(pointer);
        match self.m.class_of_pointer(pointer) {
            Some(spirv::StorageClass::Function | spirv::StorageClass::Private) => {
                // A register: it varies with the innermost loop that writes it; a counter of a
                // constant-trip loop is a constant in each unrolled copy.
                let written = self.frames.iter().rposition(|fr| fr.stores.contains(&root));
                match written {
                    Some(d) if self.frames[d].counter == Some(root) => Varies {
                        level: d + 1,
                        data: false,
                    },
                    Some(d) => Varies {
                        level: (d + 1).max(address.level),
                        data: true,
                    },
                    None => address.join(Varies {
                        level: 0,
                        data: address.level > 0,
                    }),
                }
            }
            // Memory changes between iterations of the hot loop (tiles are refilled).
            _ => Varies {
                level: address.level.max(1),
                data: true,
            },
        }
    }

    fn count(&mut self, kind: Kind, lanes: f64, varies: Varies) {
        if !self.counting() || !varies.data || varies.level == 0 {
            return;
        }
        let w = lanes * self.weight(varies.level);
        match kind {
            Kind::Arithmetic => self.tally.arithmetic += w,
            Kind::Special => self.tally.special += w,
            Kind::Clamp => self.tally.clamps += w,
        }
    }

    fn instruction(&mut self, inst: &Inst) {
        use spirv::Op as O;
        let w = &inst.words;
        match inst.op {
            O::Load => {
                let (result, pointer) = (w[1], w[2]);
                let varies = self.load_varies(pointer);
                if self.counting() {
                    let weight = self.weight(varies.level.max(1));
                    match self.m.class_of_pointer(pointer) {
                        Some(spirv::StorageClass::Workgroup) => {
                            self.tally.workgroup_loads += weight
                        }
                        Some(spirv::StorageClass::StorageBuffer | spirv::StorageClass::Uniform) => {
                            self.tally.global_loads += weight
                        }
                        _ => {}
                    }
                }
                self.attrs.insert(result, varies);
            }
            O::Store => {}
            O::FunctionCall => {
                let callee = w[2];
                let mut result = Varies {
                    level: self.frames.len(),
                    data: true,
                };
                if let Some(g) = self.m.functions.get(&callee) {
                    for (p, a) in g.params.iter().zip(&w[3..]) {
                        let v = self.attr(*a);
                        self.attrs.insert(*p, v);
                    }
                    let outer = std::mem::take(&mut self.returned);
                    self.walk(g, g.entry, &[]);
                    result = std::mem::replace(&mut self.returned, outer);
                }
                self.attrs.insert(w[1], result);
            }
            op if has_result(op) && w.len() >= 2 => {
                let varies = operand_ids(inst)
                    .iter()
                    .fold(Varies::default(), |v, id| v.join(self.attr(*id)));
                self.attrs.insert(w[1], varies);
                if let Some(kind) = classify(inst) {
                    let lanes = match inst.op {
                        O::Dot => self.m.lanes(w[2]),
                        _ => self.m.lanes(w[1]),
                    };
                    if is_exp2(inst) {
                        self.exp2_seen += 1.0;
                        if self.counting() {
                            self.tally.exp2 += lanes * self.weight(varies.level.max(1));
                        }
                    }
                    self.count(kind, lanes, varies);
                }
            }
            _ => {}
        }
    }
}

/// The condition of the first conditional branch from `body` that can reach `merge` directly
/// (the loop's exit test), and the label that stays in the loop.
fn exit_condition(f: &Function, body: u32, merge: u32) -> Option<(u32, u32)> {
    let mut label = body;
    for _ in 0..4 {
        let block = f.blocks.get(&label)?;
        match block.term.op {
            spirv::Op::BranchConditional => {
                let (cond, yes, no) = (
                    block.term.words[0],
                    block.term.words[1],
                    block.term.words[2],
                );
                let leaves = |l: u32| l == merge || breaks_to(f, l, merge);
                if leaves(yes) {
                    return Some((cond, no));
                }
                if leaves(no) {
                    return Some((cond, yes));
                }
                return None;
            }
            spirv::Op::Branch => label = block.term.words[0],
            _ => return None,
        }
    }
    None
}

/// Whether block `label` only branches to `merge` (naga's `break` block).
fn breaks_to(f: &Function, label: u32, merge: u32) -> bool {
    f.blocks.get(&label).is_some_and(|b| {
        b.term.op == spirv::Op::Branch && b.term.words[0] == merge && b.body.is_empty()
    })
}

fn operand_ids(inst: &Inst) -> Vec<u32> {
    match inst.op {
        // set id and instruction number are not values
        spirv::Op::ExtInst => inst.words[4..].to_vec(),
        spirv::Op::VectorShuffle => inst.words[2..4].to_vec(),
        spirv::Op::CompositeExtract => inst.words[2..3].to_vec(),
        spirv::Op::CompositeInsert => inst.words[2..4].to_vec(),
        _ => inst.words[2..].to_vec(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Arithmetic,
    Special,
    Clamp,
}

fn is_exp2(inst: &Inst) -> bool {
    inst.op == spirv::Op::ExtInst
        && spirv::GlslStd450Op::from_u32(inst.words[3]) == Some(spirv::GlslStd450Op::Exp2)
}

/// What an instruction costs, if anything (moves, shuffles and address arithmetic are free).
fn classify(inst: &Inst) -> Option<Kind> {
    use spirv::Op as O;
    match inst.op {
        O::ExtInst => {
            use spirv::GlslStd450Op as G;
            match G::from_u32(inst.words[3])? {
                G::Exp
                | G::Exp2
                | G::Log
                | G::Log2
                | G::Sqrt
                | G::InverseSqrt
                | G::Pow
                | G::Sin
                | G::Cos
                | G::Tan => Some(Kind::Special),
                G::UMin | G::UClamp => Some(Kind::Clamp),
                _ => Some(Kind::Arithmetic),
            }
        }
        O::FAdd
        | O::FSub
        | O::FMul
        | O::FDiv
        | O::FNegate
        | O::FRem
        | O::FMod
        | O::VectorTimesScalar
        | O::Dot
        | O::IAdd
        | O::ISub
        | O::IMul
        | O::UDiv
        | O::SDiv
        | O::UMod
        | O::SRem
        | O::SMod
        | O::SNegate
        | O::ShiftLeftLogical
        | O::ShiftRightLogical
        | O::ShiftRightArithmetic
        | O::BitwiseAnd
        | O::BitwiseOr
        | O::BitwiseXor
        | O::Not
        | O::Select
        | O::Any
        | O::All
        | O::LogicalAnd
        | O::LogicalOr
        | O::LogicalNot
        | O::LogicalEqual
        | O::LogicalNotEqual
        | O::IEqual
        | O::INotEqual
        | O::UGreaterThan
        | O::SGreaterThan
        | O::UGreaterThanEqual
        | O::SGreaterThanEqual
        | O::ULessThan
        | O::SLessThan
        | O::ULessThanEqual
        | O::SLessThanEqual
        | O::FOrdEqual
        | O::FUnordEqual
        | O::FOrdNotEqual
        | O::FUnordNotEqual
        | O::FOrdLessThan
        | O::FUnordLessThan
        | O::FOrdGreaterThan
        | O::FUnordGreaterThan
        | O::FOrdLessThanEqual
        | O::FUnordLessThanEqual
        | O::FOrdGreaterThanEqual
        | O::FUnordGreaterThanEqual
        | O::ConvertFToU
        | O::ConvertFToS
        | O::ConvertSToF
        | O::ConvertUToF
        | O::IsNan
        | O::IsInf => Some(Kind::Arithmetic),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel whose hot loop is known by hand: per pair, one FMA on a vec4 (4 lanes), an
    /// add of the four lanes (3), one exp2 and an add into the sum (2), over a constant-trip
    /// inner loop of 3 workgroup loads.
    const TOY: &str = "
        override N: u32 = 3u;
        var<workgroup> tile: array<vec4<f32>, 64>;
        @group(0) @binding(0) var<storage, read_write> out: array<f32>;
        @compute @workgroup_size(64)
        fn main(@builtin(local_invocation_index) lid: u32) {
            var s = 0.0;
            let n = arrayLength(&out);
            for (var j = 0u; j < n; j++) {
                var acc = vec4<f32>(0.0);
                for (var k = 0u; k < N; k++) {
                    acc = fma(tile[k], vec4<f32>(f32(j)), acc);
                }
                s += exp2(acc.x + acc.y + acc.z + acc.w);
            }
            out[lid] = s;
        }
    ";

    /// The entry point's blocks, one instruction per line (for reading what naga emits).
    fn dump(words: &[u32], entry: &str) -> String {
        let m = Module::parse(words).unwrap();
        let f = &m.functions[&m.entry_points[entry]];
        let mut labels: Vec<&u32> = f.blocks.keys().collect();
        labels.sort();
        let mut out = String::new();
        for l in labels {
            let b = &f.blocks[l];
            out += &format!("%{l}: merge {:?}\n", b.merge);
            for i in b.body.iter().chain([&b.term]) {
                let ext = if i.op == spirv::Op::ExtInst {
                    format!("{:?}", spirv::GlslStd450Op::from_u32(i.words[3]))
                } else {
                    String::new()
                };
                out += &format!("    {:?}{ext} {:?}\n", i.op, i.words);
            }
        }
        out
    }

    #[test]
    #[ignore]
    fn print_toy() {
        let words = compile(TOY, "main", &[("N", 3.0)], false).unwrap();
        eprintln!("{}", dump(&words, "main"));
    }

    /// The table of `psa bench --kernel-stats`; with `PSA_OLD_KERNEL` set to the original
    /// `sinkhorn_lse.wgsl` (before issue 15), its count too.
    #[test]
    #[ignore]
    fn print_kernel_stats() {
        for dim in [12, 45] {
            for s in kernel_stats(dim, Metric::Euclidean).unwrap() {
                eprintln!(
                    "T={dim} {:<60} {:6.2} {:5.2} {:5.2} {:5.2} = {:6.2} ({} pairs, {} rare, {:.3} global)",
                    s.name,
                    s.arithmetic,
                    s.special,
                    s.workgroup_loads,
                    s.clamps,
                    s.total(),
                    s.pairs_per_iteration,
                    s.rare_branches,
                    s.global_loads
                );
            }
        }
        if let Ok(path) = std::env::var("PSA_OLD_KERNEL") {
            let old = std::fs::read_to_string(path).unwrap();
            for (dim4, tile) in [(3.0, 112.0), (12.0, 144.0)] {
                let s = count(
                    &old,
                    "lse_streaming",
                    &[("DIM4", dim4), ("EUCLIDEAN", 1.0), ("TILE_COLS", tile)],
                    true,
                )
                .unwrap();
                eprintln!("original kernel DIM4={dim4}: {s:?} total {:.2}", s.total());
            }
        }
    }

    #[test]
    fn the_production_kernel_meets_its_target_at_t_12() {
        let stats = kernel_stats(12, Metric::Euclidean).unwrap();
        let production = &stats[3];
        assert!(
            production.name.contains("expanded fixed-shift"),
            "{}",
            production.name
        );
        assert_eq!(production.pairs_per_iteration, 256.0);
        assert_eq!(production.special, 2.0, "one exp2 and one sqrt per pair");
        assert_eq!(production.clamps, 0.0);
        assert!(production.total() <= 25.0, "{production:?}");
        // Each step issues less than the one before.
        for pair in stats[..4].windows(2) {
            assert!(pair[1].total() < pair[0].total(), "{pair:?}");
        }
    }

    #[test]
    fn counts_a_hand_counted_loop() {
        let stats = count(TOY, "main", &[("N", 3.0)], false).unwrap();
        assert_eq!(stats.pairs_per_iteration, 1.0);
        assert_eq!(stats.workgroup_loads, 3.0);
        assert_eq!(stats.special, 1.0);
        assert_eq!(stats.clamps, 0.0);
        // 3 vec4 FMAs (12), 3 lane adds, 1 sum add, the j → f32 conversion (1), the loop's own
        // counter: increment and compare (2).
        assert_eq!(stats.arithmetic, 12.0 + 3.0 + 1.0 + 1.0 + 2.0, "{stats:?}");
        // Bounds checks clamp the dynamic tile index.
        let checked = count(TOY, "main", &[("N", 3.0)], true).unwrap();
        assert!(checked.clamps >= 0.0);
    }
}
