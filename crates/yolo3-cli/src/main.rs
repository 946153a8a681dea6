//! The yolo3 command (being written).
fn main() {}
