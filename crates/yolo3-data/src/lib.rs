//! yolo3-data (being written).
