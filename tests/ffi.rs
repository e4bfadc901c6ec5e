//! The C ABI from C and C++: builds the C libraries with `scripts/c-libs.sh` (the README's
//! command: no std, no LLVM bitcode, only `ghm_*` exported; `libghm.a` and `libghm.so`),
//! compiles the programs in `ffi-tests/` against `include/ghm.h` with every available
//! compiler, links each against the static and the shared library, and runs them; checks
//! that the libraries export exactly the header's functions (`nm`) and link into `-flto`
//! programs (C and C++, gcc and clang).
//!
//! - `ffi-tests/golden.c`: mmdetection 3.3.0 golden vectors (`tests/fixtures/mmdet.txt`),
//!   one shot and through the three phases (class-index cases and reduction "none" included).
//! - `ffi-tests/errors.c`: the error rules of the C contract, for every exported function.
//! - `ffi-tests/cpp_api.cpp`: the API from C++17.
//! - `ffi-tests/threads.c`: the three phases over POSIX threads equal one thread's one-shot call.
//! - `ffi-tests/darknet.c`: GHM-C on a Darknet yolo layer with Darknet's conventions (ignored
//!   cells, two classes in one cell, summed deltas and loss), one accumulate and one apply per
//!   state over the whole layer (batched planes layout, two labels per cell), and the
//!   gradient input, against an independent reference loop.
//! - `ffi-tests/mpi.c`: MPI ranks (allreduce of the stats) equal one process on the whole batch;
//!   needs OpenMPI's `mpicc` and `mpirun` (Debian: `openmpi-bin libopenmpi-dev`); skipped, with
//!   a message, when cross-compiling (`GHM_FFI_TARGET`).
//!
//! Environment (all optional), for cross-compilation:
//! - `GHM_FFI_TARGET`: a Rust target triple passed to `scripts/c-libs.sh --target`;
//! - `GHM_FFI_CC`, `GHM_FFI_CXX`: the C and C++ compilers (default `cc`, `c++`; may carry
//!   arguments, e.g. `zig cc -target aarch64-linux-gnu`);
//! - `GHM_FFI_RUNNER`: a command prefix that runs the binaries (e.g.
//!   `qemu-aarch64 -L /usr/aarch64-linux-gnu`);
//! - `GHM_FFI_NM`: the `nm` for the target's libraries (default `<prefix>-nm` when
//!   `GHM_FFI_CC` is `<prefix>-gcc`, else `nm`).
//!
//! The C and C++ compilers are required: a missing one fails the test. `clang`/`clang++` are
//! used in addition when they are on the PATH (and no `GHM_FFI_TARGET` is set).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const C_FLAGS: &[&str] = &["-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2"];
const C_STDS: &[&str] = &["-std=c99", "-std=c11"];
const CXX_STD: &str = "-std=c++17";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Scratch space of this test binary (target/tmp/ffi).
fn scratch() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ffi")
}

fn fixture() -> PathBuf {
    root().join("tests/fixtures/mmdet.txt")
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A command given as a string of words (`"qemu-aarch64 -L /usr/aarch64-linux-gnu"`).
#[derive(Clone, Debug)]
struct Tool {
    words: Vec<String>,
}

impl Tool {
    fn parse(s: &str) -> Tool {
        Tool {
            words: s.split_whitespace().map(str::to_owned).collect(),
        }
    }

    fn name(&self) -> String {
        self.words.join(" ")
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.words[0]);
        c.args(&self.words[1..]);
        c
    }

    /// The first line of `--version`, or None if the program cannot be started.
    fn version(&self) -> Option<String> {
        let out = self.command().arg("--version").output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        Some(text.lines().next().unwrap_or("").trim().to_owned())
    }
}

/// The required tool from `var` (or `default`); panics with a clear message if missing.
fn required_tool(var: &str, default: &str, what: &str) -> (Tool, String) {
    let chosen = env_nonempty(var);
    if let (None, Some(target)) = (&chosen, env_nonempty("GHM_FFI_TARGET")) {
        panic!("GHM_FFI_TARGET is {target}: set {var} to a {what} for that target");
    }
    let tool = Tool::parse(&chosen.unwrap_or_else(|| default.to_owned()));
    match tool.version() {
        Some(v) => (tool, v),
        None => panic!(
            "the FFI tests need a {what}, but `{}` could not be run; install one or set {var}",
            tool.name()
        ),
    }
}

/// `clang`/`clang++` if on the PATH and not cross-compiling.
fn optional_clang(name: &str) -> Option<(Tool, String)> {
    if env_nonempty("GHM_FFI_TARGET").is_some() {
        return None;
    }
    let tool = Tool::parse(name);
    tool.version().map(|v| (tool, v))
}

/// The C compilers to use: the required one first.
fn c_compilers() -> Vec<(Tool, String)> {
    let mut v = vec![required_tool("GHM_FFI_CC", "cc", "C compiler")];
    match optional_clang("clang") {
        Some(c) => v.push(c),
        None => println!("ffi: clang not used (not found, or GHM_FFI_TARGET is set)"),
    }
    v
}

fn cxx_compilers() -> Vec<(Tool, String)> {
    let mut v = vec![required_tool("GHM_FFI_CXX", "c++", "C++ compiler")];
    match optional_clang("clang++") {
        Some(c) => v.push(c),
        None => println!("ffi: clang++ not used (not found, or GHM_FFI_TARGET is set)"),
    }
    v
}

fn show(cmd: &Command, out: &Output) -> String {
    format!(
        "command: {:?}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`; Err with everything it printed if it cannot start or fails.
fn run(mut cmd: Command) -> Result<Output, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("could not run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(show(&cmd, &out))
    }
}

/// The built C libraries.
struct Libs {
    dir: PathBuf,
    static_lib: PathBuf,
}

/// Builds the no-std C libraries once per test binary.
fn libs() -> &'static Libs {
    static LIBS: OnceLock<Result<Libs, String>> = OnceLock::new();
    match LIBS.get_or_init(build_libs) {
        Ok(l) => l,
        Err(e) => panic!("building the C libraries failed:\n{e}"),
    }
}

fn build_libs() -> Result<Libs, String> {
    // The README's build command for the C libraries, into this test binary's scratch space.
    let target = env_nonempty("GHM_FFI_TARGET");
    let built = scratch().join(format!("c-{}", target.as_deref().unwrap_or("host")));
    let mut cmd = Command::new("bash");
    // The script's cargo builds for the host unless GHM_FFI_TARGET names a target.
    cmd.env_remove("CARGO_BUILD_TARGET");
    cmd.current_dir(root())
        .arg("scripts/c-libs.sh")
        .env("GHM_C_OUT", &built)
        .env("GHM_C_BUILD_DIR", scratch().join("cargo"));
    if let Some(cargo) = std::env::var_os("CARGO") {
        cmd.env("CARGO", cargo);
    }
    if let Some(cc) = env_nonempty("GHM_FFI_CC") {
        cmd.env("CC", cc);
    }
    if let Some(t) = &target {
        cmd.args(["--target", t]);
    }
    run(cmd)?;
    let names = ["libghm.a", "libghm.so"];
    for name in names {
        if !built.join(name).is_file() {
            return Err(format!(
                "scripts/c-libs.sh succeeded but {} is missing",
                built.join(name).display()
            ));
        }
    }
    // A private copy: another `cargo test` in the same tree may rebuild the libraries while
    // this one's programs run.
    let dir = private_lib_dir(target.as_deref())?;
    for name in names {
        std::fs::copy(built.join(name), dir.join(name))
            .map_err(|e| format!("copying {name} to {}: {e}", dir.display()))?;
    }
    println!(
        "ffi: C libraries built by scripts/c-libs.sh in {}",
        built.display()
    );
    let static_lib = dir.join(names[0]);
    Ok(Libs { dir, static_lib })
}

/// A fresh directory for this process's copy of the libraries; removes copies left by runs
/// more than ten minutes old (a run takes well under a minute).
fn private_lib_dir(target: Option<&str>) -> Result<PathBuf, String> {
    let parent = scratch().join("lib");
    if let Ok(entries) = std::fs::read_dir(&parent) {
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 600);
            if old {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = parent.join(format!(
        "{}-{}-{stamp}",
        target.unwrap_or("host"),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// Where the test binaries go (one directory per target).
fn bin_dir() -> PathBuf {
    let target = env_nonempty("GHM_FFI_TARGET").unwrap_or_else(|| "host".to_owned());
    scratch().join("bin").join(target)
}

#[derive(Clone, Copy, Debug)]
enum Link {
    Static,
    Shared,
}

/// Compiles and links one program (`extra`: more flags, e.g. `-pthread`); returns the binary.
fn build(
    cc: &Tool,
    std: &str,
    src: &str,
    link: Link,
    out_name: &str,
    extra: &[&str],
) -> Result<PathBuf, String> {
    let libs = libs();
    let bin_dir = bin_dir();
    std::fs::create_dir_all(&bin_dir).map_err(|e| format!("{}: {e}", bin_dir.display()))?;
    let out = bin_dir.join(out_name);
    let mut cmd = cc.command();
    cmd.current_dir(root())
        .arg(std)
        .args(C_FLAGS)
        .arg("-Iinclude")
        .arg(src)
        .arg("-o")
        .arg(&out);
    match link {
        Link::Static => {
            cmd.arg(&libs.static_lib);
        }
        Link::Shared => {
            let dir = libs.dir.display().to_string();
            cmd.arg(format!("-L{dir}"))
                .arg("-lghm")
                .arg(format!("-Wl,-rpath,{dir}"));
        }
    }
    cmd.args(extra).arg("-lm");
    run(cmd)?;
    Ok(out)
}

/// Runs a built program (through `GHM_FFI_RUNNER` if set); its stdout on success.
fn execute(bin: &Path, args: &[&Path]) -> Result<String, String> {
    let mut cmd = match env_nonempty("GHM_FFI_RUNNER") {
        Some(r) => {
            let mut c = Tool::parse(&r).command();
            c.arg(bin);
            c
        }
        None => Command::new(bin),
    };
    // cargo points LD_LIBRARY_PATH at its own output folders, which hold a libghm.so of
    // another build; it would win over the program's run path to the library under test.
    cmd.env_remove("LD_LIBRARY_PATH");
    cmd.args(args);
    run(cmd).map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The last line starting with `prefix` (the program's summary).
fn summary(stdout: &str, prefix: &str) -> String {
    stdout
        .lines()
        .rev()
        .find(|l| l.starts_with(prefix))
        .unwrap_or("(no summary line)")
        .to_owned()
}

/// Builds `src` with every compiler, standard and link kind, runs each, and fails listing
/// every configuration that did not compile or did not exit 0.
fn build_and_run_everywhere(
    compilers: &[(Tool, String)],
    stds: &[&str],
    src: &str,
    args: &[&Path],
    summary_prefix: &str,
    extra: &[&str],
) {
    let stem = Path::new(src)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut failures = Vec::new();
    let mut ran = 0;
    for (i, (cc, version)) in compilers.iter().enumerate() {
        for std in stds {
            for link in [Link::Static, Link::Shared] {
                let label = format!("{} {std} {link:?}", cc.name());
                // The process id keeps concurrent `cargo test` runs in the same tree, and the
                // extra flags the tests of one run that build the same source at once, from
                // overwriting each other's programs.
                let name = format!(
                    "{stem}-{i}-{}-{}{}-{}",
                    std.trim_start_matches("-std="),
                    format!("{link:?}").to_lowercase(),
                    extra.concat(),
                    std::process::id()
                );
                let result = build(cc, std, src, link, &name, extra).and_then(|bin| {
                    let stdout = execute(&bin, args)?;
                    // Passed: remove it (failed binaries stay for debugging).
                    let _ = std::fs::remove_file(&bin);
                    Ok(stdout)
                });
                match result {
                    Ok(stdout) => {
                        ran += 1;
                        println!(
                            "ffi: {src} [{label}; {version}]: {}",
                            summary(&stdout, summary_prefix)
                        );
                    }
                    Err(e) => failures.push(format!("==== {src} [{label}; {version}]\n{e}")),
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} builds of {src} failed:\n{}",
        failures.len(),
        failures.len() + ran,
        failures.join("\n")
    );
}

#[test]
fn header_compiles_cleanly_as_c99_and_cpp17() {
    let header = root().join("include/ghm.h");
    let mut checks: Vec<(Tool, String, Vec<&str>)> = Vec::new();
    for (cc, v) in c_compilers() {
        for std in C_STDS {
            checks.push((
                cc.clone(),
                v.clone(),
                vec!["-x", "c", std, "-Wstrict-prototypes"],
            ));
        }
    }
    for (cxx, v) in cxx_compilers() {
        checks.push((cxx, v, vec!["-x", "c++", CXX_STD]));
    }
    let mut failures = Vec::new();
    for (tool, version, lang) in &checks {
        let mut cmd = tool.command();
        cmd.args(lang)
            .args(["-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fsyntax-only"])
            .arg(&header);
        match run(cmd) {
            Ok(_) => println!(
                "ffi: include/ghm.h compiles with {} {lang:?} ({version})",
                tool.name()
            ),
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "include/ghm.h does not compile cleanly:\n{}",
        failures.join("\n")
    );
}

#[test]
fn c_programs_match_mmdet_golden_vectors_static_and_shared() {
    let fixture = fixture();
    build_and_run_everywhere(
        &c_compilers(),
        C_STDS,
        "ffi-tests/golden.c",
        &[&fixture],
        "golden:",
        &[],
    );
}

#[test]
fn c_error_rules_leave_outputs_and_state_untouched() {
    build_and_run_everywhere(
        &c_compilers(),
        C_STDS,
        "ffi-tests/errors.c",
        &[],
        "errors:",
        &[],
    );
}

#[test]
fn cpp17_program_runs_golden_cases_through_the_c_header() {
    let fixture = fixture();
    build_and_run_everywhere(
        &cxx_compilers(),
        &[CXX_STD],
        "ffi-tests/cpp_api.cpp",
        &[&fixture],
        "cpp_api:",
        &[],
    );
}

#[test]
fn c_threads_accumulate_and_apply_in_parallel_match_one_thread() {
    build_and_run_everywhere(
        &c_compilers(),
        C_STDS,
        "ffi-tests/threads.c",
        &[],
        "threads:",
        &["-pthread"],
    );
}

#[test]
fn c_darknet_yolo_layer_deltas_match_reference_loop() {
    build_and_run_everywhere(
        &c_compilers(),
        C_STDS,
        "ffi-tests/darknet.c",
        &[],
        "darknet:",
        &[],
    );
}

/// The MPI tools, or a panic naming the Debian packages that provide them.
/// The C trainer example (examples/c/trainer.c) runs, and its checkpointed-and-restored run
/// equals its straight run bit for bit.
#[test]
fn c_trainer_example_checkpoints_and_restores_exactly() {
    build_and_run_everywhere(
        &c_compilers(),
        C_STDS,
        "examples/c/trainer.c",
        &[],
        "trainer:",
        &[],
    );
}

fn mpi_tools() -> (Tool, Tool) {
    let mpicc = Tool::parse(&env_nonempty("GHM_FFI_MPICC").unwrap_or_else(|| "mpicc".into()));
    let mpirun = Tool::parse(&env_nonempty("GHM_FFI_MPIRUN").unwrap_or_else(|| "mpirun".into()));
    for tool in [&mpicc, &mpirun] {
        assert!(
            tool.version().is_some(),
            "the MPI test needs `{}`, which could not be run: install OpenMPI \
             (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev), or set \
             GHM_FFI_MPICC / GHM_FFI_MPIRUN",
            tool.name()
        );
    }
    (mpicc, mpirun)
}

#[test]
fn mpi_ranks_match_one_process_on_the_whole_batch() {
    if let Some(target) = env_nonempty("GHM_FFI_TARGET") {
        println!("ffi: MPI test skipped: GHM_FFI_TARGET is {target} and there is no cross MPI");
        return;
    }
    let (mpicc, mpirun) = mpi_tools();
    let libs = libs();
    let bin_dir = bin_dir();
    std::fs::create_dir_all(&bin_dir).unwrap();
    let bin = bin_dir.join(format!("mpi-{}", std::process::id()));
    let mut cmd = mpicc.command();
    cmd.current_dir(root())
        .arg("-std=c11")
        .args(C_FLAGS)
        .arg("-Iinclude")
        .arg("ffi-tests/mpi.c")
        .arg("-o")
        .arg(&bin)
        .arg(&libs.static_lib)
        .arg("-lm");
    if let Err(e) = run(cmd) {
        panic!(
            "building ffi-tests/mpi.c with {} failed:\n{e}",
            mpicc.name()
        );
    }
    let mut failures = Vec::new();
    for ranks in ["2", "4"] {
        let mut cmd = mpirun.command();
        cmd.args(["--allow-run-as-root", "--oversubscribe", "-np", ranks])
            .arg(&bin);
        match run(cmd) {
            Ok(out) => println!(
                "ffi: ffi-tests/mpi.c [{} ranks]: {}",
                ranks,
                summary(&String::from_utf8_lossy(&out.stdout), "mpi:")
            ),
            Err(e) => failures.push(format!("==== {ranks} ranks\n{e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "ffi-tests/mpi.c failed:\n{}",
        failures.join("\n")
    );
    let _ = std::fs::remove_file(&bin);
}

/// Says that part of a test did not run, on the terminal even when the test passes: written
/// to the process's stderr directly, which libtest does not capture (it captures `print!`).
fn skipped(what: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "ffi: SKIPPED {what}");
}

/// The C libraries hold machine code only (no LLVM bitcode that a compiler's LTO plugin
/// would try to read): a C program built with `-flto` links against the static and the
/// shared library, with the required C compiler (gcc on Debian) and with clang when present
/// (whose gold plugin cannot read rustc's newer bitcode).
#[test]
fn c_program_links_with_flto() {
    let compilers = c_compilers();
    if compilers.len() < 2 {
        skipped("clang -flto build of a C program: clang not found (or GHM_FFI_TARGET is set)");
    }
    let fixture = fixture();
    build_and_run_everywhere(
        &compilers,
        &["-std=c11"],
        "ffi-tests/golden.c",
        &[&fixture],
        "golden:",
        &["-flto"],
    );
}

/// The same for C++ (`-flto`, with the required C++ compiler and clang++ when present).
#[test]
fn cpp_program_links_with_flto() {
    let compilers = cxx_compilers();
    if compilers.len() < 2 {
        skipped(
            "clang++ -flto build of a C++ program: clang++ not found (or GHM_FFI_TARGET is set)",
        );
    }
    let fixture = fixture();
    build_and_run_everywhere(
        &compilers,
        &[CXX_STD],
        "ffi-tests/cpp_api.cpp",
        &[&fixture],
        "cpp_api:",
        &["-flto"],
    );
}

/// `nm` for the libraries under test: `GHM_FFI_NM`, else `<prefix>-nm` when the C compiler
/// is `<prefix>-gcc` (a cross compiler), else `nm`.
fn nm_tool() -> Tool {
    if let Some(nm) = env_nonempty("GHM_FFI_NM") {
        return Tool::parse(&nm);
    }
    let cc = env_nonempty("GHM_FFI_CC").unwrap_or_default();
    let first = cc.split_whitespace().next().unwrap_or("");
    let base = Path::new(first)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    match base.strip_suffix("-gcc") {
        Some(prefix) if !prefix.is_empty() => Tool::parse(&format!("{prefix}-nm")),
        _ => Tool::parse("nm"),
    }
}

/// The defined global symbols `nm` lists (`args` before the file).
fn global_defined_symbols(nm: &Tool, args: &[&str], lib: &Path) -> Vec<String> {
    let mut cmd = nm.command();
    cmd.args(args).arg(lib);
    let out = match run(cmd) {
        Ok(o) => o,
        Err(e) => panic!("nm failed on {}:\n{e}", lib.display()),
    };
    let mut syms: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // "address type name"; lowercase types are local (nm -g lists none of them).
            match f.as_slice() {
                [_, ty, name] if ty.chars().all(|c| c.is_ascii_uppercase()) && *ty != "U" => {
                    Some(name.split('@').next().unwrap_or(name).to_owned())
                }
                _ => None,
            }
        })
        .collect();
    syms.sort();
    syms.dedup();
    syms
}

/// The functions `include/ghm.h` declares.
fn header_functions() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("include/ghm.h")).unwrap();
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '('))
        .filter_map(|w| w.strip_prefix("ghm_")?.split_once('(').map(|(n, _)| n))
        .filter(|n| !n.is_empty())
        .map(|n| format!("ghm_{n}"))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `libghm.a` and `libghm.so` export the `ghm_*` API and nothing else: every defined global
/// symbol `nm` lists is a function of the header, and every function of the header is there
/// (no exceptions: core's and compiler_builtins' symbols, and the unwinding stub
/// `rust_eh_personality`, are local).
#[test]
fn c_libraries_export_only_the_ghm_api() {
    let libs = libs();
    let nm = nm_tool();
    let api = header_functions();
    assert!(
        api.len() >= 17,
        "include/ghm.h: only {} functions found: {api:?}",
        api.len()
    );
    let mut failures = Vec::new();
    for (file, args) in [
        ("libghm.a", &["-g", "--defined-only"][..]),
        ("libghm.so", &["-D", "--defined-only"][..]),
    ] {
        let syms = global_defined_symbols(&nm, args, &libs.dir.join(file));
        let foreign: Vec<&String> = syms.iter().filter(|s| !api.contains(s)).collect();
        let missing: Vec<&String> = api.iter().filter(|s| !syms.contains(s)).collect();
        if foreign.is_empty() && missing.is_empty() {
            println!(
                "ffi: {file}: {} global symbols, exactly the header's ghm_* functions",
                syms.len()
            );
        } else {
            failures.push(format!(
                "{file}: global symbols outside the API: {foreign:?}; API functions missing: {missing:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
