//! Choosing the compute device: the flex CPU backend or a wgpu GPU.
//!
//! GPU detection asks burn for the wgpu adapters (`Device::enumerate(DeviceType::Wgpu)`), which
//! only lists adapters through cubecl's own probing and opens nothing. Software rasterisers
//! (lavapipe, llvmpipe, WARP) enumerate as wgpu's `Cpu` kind; they are not counted as a GPU
//! because the native flex backend is faster on the same cores. The chosen adapter is then
//! opened once, inside `catch_unwind`, so a driver that lists an adapter but cannot create a
//! device becomes an error here instead of a panic in the middle of training.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;

use burn::tensor::{Device, DeviceKind, DeviceType};

/// Which device the user asked for (`--device cpu|gpu|auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The multi-threaded flex CPU backend.
    Cpu,
    /// A wgpu GPU; an error if none is usable.
    Gpu,
    /// A wgpu GPU when one is usable, otherwise the CPU.
    #[default]
    Auto,
}

/// Why no device could be provided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// The device name is not `cpu`, `gpu` or `auto`.
    #[error("unknown device {0:?}: expected cpu, gpu or auto")]
    UnknownChoice(String),
    /// No hardware wgpu adapter exists.
    #[error("no GPU found: wgpu reports no hardware adapter{}",
        if *software_only { " (only a software rasteriser)" } else { "" })]
    NoGpu {
        /// Whether wgpu found a software rasteriser (lavapipe, llvmpipe, WARP), which is not
        /// used because flex is faster on the same CPU.
        software_only: bool,
    },
    /// An adapter exists but the device could not be created.
    #[error("the GPU could not be initialised: {0}")]
    GpuInit(String),
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;

    /// Parses `cpu`, `gpu` or `auto` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "gpu" => Ok(Self::Gpu),
            "auto" => Ok(Self::Auto),
            _ => Err(DeviceError::UnknownChoice(s.to_string())),
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Cpu => "cpu",
            Self::Gpu => "gpu",
            Self::Auto => "auto",
        })
    }
}

/// The device for `choice`, with a human-readable description of it.
///
/// The device is returned without autodiff; call `device.autodiff()` for training.
pub fn resolve(choice: DeviceChoice) -> Result<(Device, String), DeviceError> {
    match choice {
        DeviceChoice::Cpu => Ok(cpu()),
        DeviceChoice::Gpu => gpu(),
        DeviceChoice::Auto => Ok(gpu().unwrap_or_else(|reason| {
            let (device, description) = cpu();
            (device, format!("{description}; {reason}"))
        })),
    }
}

fn cpu() -> (Device, String) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    (
        Device::flex(),
        format!("CPU (flex backend, {threads} threads)"),
    )
}

/// The hardware wgpu adapters, best kind first, without opening any of them.
///
/// Adapters are matched by the selector burn uses for them (`DiscreteGpu(i)` is the i-th
/// discrete adapter, etc.), which is also the device value `Device::enumerate` returns.
fn hardware_gpus() -> (Vec<(Device, &'static str)>, bool) {
    /// Builds the selector of the i-th adapter of one kind.
    type KindSelector = fn(usize) -> DeviceKind;

    let listed = Device::enumerate(DeviceType::Wgpu).into_vec();
    let software = Device::wgpu(DeviceKind::Cpu);
    let has_software = listed.contains(&software);
    let kinds: [(KindSelector, &str); 3] = [
        (DeviceKind::DiscreteGpu, "discrete GPU"),
        (DeviceKind::IntegratedGpu, "integrated GPU"),
        (DeviceKind::VirtualGpu, "virtual GPU"),
    ];
    let mut found = Vec::new();
    for (kind, label) in kinds {
        for index in 0..listed.len() {
            let device = Device::wgpu(kind(index));
            if listed.contains(&device) {
                found.push((device, label));
            }
        }
    }
    // Any other non-software adapter (wgpu's "Other" kind) comes last, as listed.
    for device in listed {
        if device != software && !found.iter().any(|(d, _)| *d == device) {
            found.push((device, "GPU"));
        }
    }
    (found, has_software)
}

/// The hardware wgpu adapters, described by kind ("discrete GPU", ...), best first, plus
/// whether a software rasteriser exists; opens nothing.
pub fn list_gpus() -> (Vec<String>, bool) {
    let (gpus, software) = hardware_gpus();
    (
        gpus.into_iter().map(|(_, kind)| kind.to_string()).collect(),
        software,
    )
}

/// Whether a hardware wgpu adapter is present (does not open it).
pub fn gpu_available() -> bool {
    !hardware_gpus().0.is_empty()
}

fn gpu() -> Result<(Device, String), DeviceError> {
    let (gpus, has_software) = hardware_gpus();
    let Some((device, kind)) = gpus.into_iter().next() else {
        return Err(DeviceError::NoGpu {
            software_only: has_software,
        });
    };
    // Opening the device creates the wgpu runtime; cubecl panics if that fails.
    let identity = catch_unwind(AssertUnwindSafe(|| device.identity())).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown error".into());
        DeviceError::GpuInit(message)
    })?;
    let name = identity.map_or_else(|| "unnamed adapter".to_string(), |id| id.name);
    Ok((device, format!("GPU via wgpu: {name} ({kind})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_choices() {
        assert_eq!("cpu".parse::<DeviceChoice>(), Ok(DeviceChoice::Cpu));
        assert_eq!(" GPU ".parse::<DeviceChoice>(), Ok(DeviceChoice::Gpu));
        assert_eq!("Auto".parse::<DeviceChoice>(), Ok(DeviceChoice::Auto));
        assert!(matches!(
            "cuda".parse::<DeviceChoice>(),
            Err(DeviceError::UnknownChoice(_))
        ));
        for choice in [DeviceChoice::Cpu, DeviceChoice::Gpu, DeviceChoice::Auto] {
            assert_eq!(choice.to_string().parse::<DeviceChoice>(), Ok(choice));
        }
    }

    #[test]
    fn cpu_resolves_to_flex() {
        let (device, description) = resolve(DeviceChoice::Cpu).unwrap();
        assert_eq!(device, Device::flex());
        assert!(!device.is_autodiff());
        assert!(description.starts_with("CPU"), "{description}");
    }

    /// Auto never fails, and agrees with explicit detection.
    #[test]
    fn auto_falls_back_to_cpu_without_gpu() {
        let (device, description) = resolve(DeviceChoice::Auto).unwrap();
        if device == Device::flex() {
            assert!(description.starts_with("CPU"), "{description}");
        } else {
            assert!(gpu_available());
            assert!(description.starts_with("GPU"), "{description}");
        }
        if !gpu_available() {
            assert!(matches!(
                resolve(DeviceChoice::Gpu),
                Err(DeviceError::NoGpu { .. })
            ));
        }
    }
}
