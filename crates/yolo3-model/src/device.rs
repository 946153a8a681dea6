//! Device names as every command takes them (`--device cpu`, `cuda`, `cuda:N`), checked
//! against the devices libtorch sees before anything is loaded.

/// Parses a device name: `cpu`, `cuda` (the first GPU) or `cuda:N`.
pub fn parse_device(name: &str) -> Result<tch::Device, DeviceError> {
    let device = match name {
        "cpu" => tch::Device::Cpu,
        "cuda" => tch::Device::Cuda(0),
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(tch::Device::Cuda)
            .ok_or_else(|| DeviceError::Unknown { name: other.to_owned() })?,
    };
    if let tch::Device::Cuda(n) = device {
        let count = tch::Cuda::device_count();
        if (n as i64) >= count {
            return Err(DeviceError::Absent { name: name.to_owned(), count });
        }
    }
    Ok(device)
}

/// A device that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Not a device name.
    #[error("unknown device `{name}` (expected cpu, cuda or cuda:N)")]
    Unknown {
        /// The name given.
        name: String,
    },
    /// A CUDA device beyond those libtorch sees.
    #[error("device `{name}` requested but libtorch sees {count} CUDA device(s)")]
    Absent {
        /// The name given.
        name: String,
        /// CUDA devices libtorch sees.
        count: i64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse() {
        assert_eq!(parse_device("cpu").unwrap(), tch::Device::Cpu);
        assert!(matches!(parse_device("tpu"), Err(DeviceError::Unknown { .. })));
        assert!(matches!(parse_device("cuda:x"), Err(DeviceError::Unknown { .. })));
        let beyond = format!("cuda:{}", tch::Cuda::device_count());
        assert!(matches!(parse_device(&beyond), Err(DeviceError::Absent { .. })));
    }
}
