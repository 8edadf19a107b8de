//! Which device and dtype the models run on: parsing `--device auto|cpu|cuda:N|metal` and
//! `--dtype f32|f16|bf16`, and turning them into a candle [`Device`].
//!
//! `auto` prefers a GPU when the binary was built with `--features cuda` (or `metal`) and one is
//! present, and says in the log what it picked and why. Half-precision weights are a GPU option
//! only: candle's CPU kernels for f16/bf16 are slower than f32 and the CPU fast paths in
//! [`crate::nn`] are f32-only.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device};

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("invalid device {0:?}: expected auto, cpu, cuda, cuda:N or metal")]
    Parse(String),
    #[error("invalid dtype {0:?}: expected f32, f16 or bf16")]
    ParseDtype(String),
    #[error("device {0} needs a binary built with `--features {1}`")]
    NotCompiled(DeviceChoice, &'static str),
    #[error("opening device {0}: {1}")]
    Open(DeviceChoice, candle_core::Error),
    #[error("dtype {0} runs on a GPU only (--device cuda:N or metal); the CPU runs f32")]
    HalfOnCpu(ModelDtype),
}

/// The `--device` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// A GPU when one is compiled in and present, else the CPU.
    #[default]
    Auto,
    Cpu,
    /// CUDA device by ordinal.
    Cuda(usize),
    Metal,
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            "metal" => Ok(Self::Metal),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| DeviceError::Parse(s.to_string())),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Metal => f.write_str("metal"),
        }
    }
}

impl serde::Serialize for DeviceChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DeviceChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The `--dtype` setting: the precision weights and activations are held in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelDtype {
    #[default]
    F32,
    F16,
    Bf16,
}

impl ModelDtype {
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::F16 => DType::F16,
            Self::Bf16 => DType::BF16,
        }
    }

    /// Rejects half precision on the CPU (see the module docs).
    pub fn check_for(self, device: &Device) -> Result<DType, DeviceError> {
        if self != Self::F32 && device.is_cpu() {
            return Err(DeviceError::HalfOnCpu(self));
        }
        Ok(self.dtype())
    }
}

impl FromStr for ModelDtype {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "float32" | "fp32" => Ok(Self::F32),
            "f16" | "float16" | "fp16" | "half" => Ok(Self::F16),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            _ => Err(DeviceError::ParseDtype(s.to_string())),
        }
    }
}

impl fmt::Display for ModelDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        })
    }
}

impl serde::Serialize for ModelDtype {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ModelDtype {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether this binary was built with a GPU backend.
pub fn compiled_backends() -> &'static [&'static str] {
    &[
        #[cfg(feature = "cuda")]
        "cuda",
        #[cfg(feature = "metal")]
        "metal",
    ]
}

impl DeviceChoice {
    /// Opens the device, logging the choice `auto` made.
    pub fn open(self) -> Result<Device, DeviceError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(n) => {
                if !cfg!(feature = "cuda") {
                    return Err(DeviceError::NotCompiled(self, "cuda"));
                }
                Device::new_cuda(n).map_err(|e| DeviceError::Open(self, e))
            }
            Self::Metal => {
                if !cfg!(feature = "metal") {
                    return Err(DeviceError::NotCompiled(self, "metal"));
                }
                Device::new_metal(0).map_err(|e| DeviceError::Open(self, e))
            }
            Self::Auto => Ok(Self::auto()),
        }
    }

    fn auto() -> Device {
        if cfg!(feature = "cuda") && candle_core::utils::cuda_is_available() {
            match Device::new_cuda(0) {
                Ok(device) => {
                    tracing::info!("device auto: using cuda:0");
                    return device;
                }
                Err(err) => {
                    tracing::warn!(%err, "device auto: cuda:0 failed to open; trying others")
                }
            }
        }
        if cfg!(feature = "metal") && candle_core::utils::metal_is_available() {
            match Device::new_metal(0) {
                Ok(device) => {
                    tracing::info!("device auto: using metal");
                    return device;
                }
                Err(err) => tracing::warn!(%err, "device auto: metal failed to open"),
            }
        }
        let backends = compiled_backends();
        if backends.is_empty() {
            tracing::info!("device auto: using cpu (built without GPU features)");
        } else {
            tracing::info!(?backends, "device auto: using cpu (no GPU found)");
        }
        Device::Cpu
    }
}

/// A short name for logs and `/health`: `cpu`, `cuda:0`, `metal`.
pub fn describe(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".to_string(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_flag_values_parse() {
        assert_eq!("auto".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
        assert_eq!("CPU".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!(
            "cuda".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(0)
        );
        assert_eq!(
            "cuda:3".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(3)
        );
        assert_eq!(
            "metal".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Metal
        );
        for bad in ["cuda:x", "tpu", "", "cuda:-1"] {
            let err = bad.parse::<DeviceChoice>().unwrap_err();
            assert!(err.to_string().contains("expected auto"), "{bad}: {err}");
        }
        assert_eq!(DeviceChoice::Cuda(2).to_string(), "cuda:2");
    }

    #[test]
    fn dtype_flag_values_parse_and_half_is_refused_on_cpu() {
        assert_eq!("bf16".parse::<ModelDtype>().unwrap().dtype(), DType::BF16);
        assert_eq!("F16".parse::<ModelDtype>().unwrap().dtype(), DType::F16);
        assert!("f64".parse::<ModelDtype>().is_err());
        assert_eq!(ModelDtype::F32.check_for(&Device::Cpu).unwrap(), DType::F32);
        let err = ModelDtype::F16.check_for(&Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("GPU only"), "{err}");
    }

    #[test]
    fn cpu_and_auto_open_without_a_gpu_build() {
        assert!(DeviceChoice::Cpu.open().unwrap().is_cpu());
        if compiled_backends().is_empty() {
            assert!(DeviceChoice::Auto.open().unwrap().is_cpu());
            let err = DeviceChoice::Cuda(0).open().unwrap_err();
            assert!(err.to_string().contains("--features cuda"), "{err}");
        }
    }
}
