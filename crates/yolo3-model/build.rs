//! Compiles the C++ shim in `csrc/` (leaky ReLU with slope 0.1 through ATen; for inference,
//! oneDNN's fused convolution, the Winograd transforms, max pooling and a convolution with its
//! pooling in one pass) against the libtorch
//! that torch-sys found, whose folder torch-sys passes on as `DEP_TCH_LIBTORCH_LIB`.

use std::path::PathBuf;

fn main() {
    const FILES: [&str; 5] = [
        "csrc/leaky.cpp",
        "csrc/conv_pointwise.cpp",
        "csrc/winograd.cpp",
        "csrc/maxpool.cpp",
        "csrc/conv_pool.cpp",
    ];
    for file in FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    let lib = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys exports DEP_TCH_LIBTORCH_LIB"),
    );
    let root = lib.parent().expect("libtorch's lib folder has a parent").to_path_buf();
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        // The inference kernels are loops the compiler vectorises; test builds need them too.
        .opt_level(3)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag("-DGLOG_USE_GLOG_EXPORT")
        // at::parallel_for is inline OpenMP in a libtorch built with it (the wheel): without
        // -fopenmp it runs on one thread. Linked to libtorch's own libgomp (below).
        .flag("-fopenmp")
        .files(FILES)
        .compile("yolo3_shim");
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    println!("cargo:rustc-link-lib=dylib=gomp");
    println!("cargo:rustc-link-search=native={}", lib.display());
}
