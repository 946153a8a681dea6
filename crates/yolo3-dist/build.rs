//! Compiles the c10d shim in `csrc/` against the libtorch torch-sys found (its folder comes as
//! `DEP_TCH_LIBTORCH_LIB`).
//!
//! * Gloo: c10d's `ProcessGroupGloo.hpp` includes Gloo's headers, which the torch wheel does not
//!   ship; Debian's `libgloo-dev` provides them (`scripts/setup.sh` installs it). The shim only
//!   handles Gloo's objects through pointers, so Gloo's own code is libtorch's.
//! * NCCL: when this libtorch has CUDA (`libtorch_cuda.so` beside `libtorch_cpu.so`),
//!   `c10d_nccl.cpp` is compiled with the CUDA and NCCL headers of the wheel's `nvidia`
//!   packages and the binary links `libtorch_cuda`; a CPU-only libtorch gets
//!   `c10d_no_nccl.cpp`, whose NCCL backend is an error saying so.
//! * `cfg(yolo3_two_gpus)` where this machine has two NVIDIA GPUs or more (the driver lists
//!   each under `/proc/driver/nvidia/gpus`): the NCCL test that needs them runs there, and is
//!   reported as ignored, with its reason, in the test summary elsewhere.

use std::path::{Path, PathBuf};

fn main() {
    for file in ["csrc/c10d.cpp", "csrc/c10d_nccl.cpp", "csrc/c10d_no_nccl.cpp"] {
        println!("cargo:rerun-if-changed={file}");
    }
    println!("cargo::rustc-check-cfg=cfg(yolo3_two_gpus)");
    let gpus_dir = Path::new("/proc/driver/nvidia/gpus");
    println!("cargo:rerun-if-changed={}", gpus_dir.display());
    if std::fs::read_dir(gpus_dir).map_or(0, Iterator::count) >= 2 {
        println!("cargo:rustc-cfg=yolo3_two_gpus");
    }
    let lib = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys exports DEP_TCH_LIBTORCH_LIB"),
    );
    let root = lib.parent().expect("libtorch's lib folder has a parent").to_path_buf();
    let gloo = Path::new("/usr/include/gloo/algorithm.h");
    assert!(
        gloo.exists(),
        "{} is missing: c10d's Gloo header needs Gloo's headers (Debian's libgloo-dev; \
         scripts/setup.sh installs it)",
        gloo.display()
    );
    let cuda = lib.join("libtorch_cuda.so").exists();
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .define("USE_C10D_GLOO", None)
        .file("csrc/c10d.cpp");
    if cuda {
        // The wheel's CUDA packages: site-packages/nvidia/<package>/include.
        let nvidia = root.parent().expect("torch's folder has a parent").join("nvidia");
        let mut includes: Vec<PathBuf> = std::fs::read_dir(&nvidia)
            .map(|dir| dir.flatten().map(|e| e.path().join("include")).collect())
            .unwrap_or_default();
        includes.retain(|p| p.is_dir());
        includes.sort();
        let has = |header: &str| includes.iter().any(|i| i.join(header).exists());
        assert!(
            has("nccl.h")
                && has("cuda_runtime_api.h")
                && has("nv/target")
                && has("crt/host_config.h"),
            "libtorch has CUDA but the CUDA/NCCL headers c10d's NCCL header needs are not all \
             under {} (nccl.h, cuda_runtime_api.h, nv/target, crt/host_config.h); \
             scripts/setup.sh installs nvidia-cuda-cccl and nvidia-cuda-crt",
            nvidia.display()
        );
        build.includes(&includes).define("USE_C10D_NCCL", None).define("USE_CUDA", None);
        build.file("csrc/c10d_nccl.cpp");
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
        println!("cargo:rustc-cfg=yolo3_nccl");
    } else {
        build.file("csrc/c10d_no_nccl.cpp");
    }
    println!("cargo::rustc-check-cfg=cfg(yolo3_nccl)");
    build.compile("yolo3_c10d");
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    println!("cargo:rustc-link-search=native={}", lib.display());
}
