//! Compiles `csrc/leaky.cpp` (leaky ReLU with slope 0.1 through ATen) against the libtorch that
//! torch-sys found, whose folder torch-sys passes on as `DEP_TCH_LIBTORCH_LIB`.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=csrc/leaky.cpp");
    let lib = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys exports DEP_TCH_LIBTORCH_LIB"),
    );
    let root = lib.parent().expect("libtorch's lib folder has a parent").to_path_buf();
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("csrc/leaky.cpp")
        .compile("yolo3_leaky");
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    println!("cargo:rustc-link-search=native={}", lib.display());
}
