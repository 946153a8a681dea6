//! yolo3-model (being written).
