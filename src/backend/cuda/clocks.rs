//! The SM clock through NVML, read before and after a variant's timing so that a throttled run
//! is visible in its record. precheck only reads clocks; it never sets them.

use cudarc::driver::sys::CUdevice_attribute as Attribute;
use cudarc::driver::CudaContext;
use nvml_wrapper::enum_wrappers::device::{Clock, PerformancePolicy};
use nvml_wrapper::Nvml;

use crate::measure::SmClock;

/// NVML, and the device's PCI address (CUDA's ordinals and NVML's indices can differ).
pub struct ClockReader {
    nvml: Nvml,
    bus_id: String,
}

impl ClockReader {
    /// NVML for the device of `ctx`, or why there is none (no `libnvidia-ml.so.1`).
    pub fn open(ctx: &CudaContext) -> Result<Self, String> {
        let attribute = |a| ctx.attribute(a).map_err(|e| e.to_string());
        let bus_id = format!(
            "{:08X}:{:02X}:{:02X}.0",
            attribute(Attribute::CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID)?,
            attribute(Attribute::CU_DEVICE_ATTRIBUTE_PCI_BUS_ID)?,
            attribute(Attribute::CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID)?
        );
        let nvml = Nvml::init().map_err(|e| format!("NVML: {e}"))?;
        nvml.device_by_pci_bus_id(bus_id.as_str())
            .map_err(|e| format!("NVML has no device at {bus_id}: {e}"))?;
        Ok(ClockReader { nvml, bus_id })
    }

    /// The SM clock now, its maximum, the reasons NVML gives for holding it down, and its
    /// running total of power-capped time.
    pub fn read(&self) -> Result<SmClock, String> {
        let device = self
            .nvml
            .device_by_pci_bus_id(self.bus_id.as_str())
            .map_err(|e| e.to_string())?;
        let sm_mhz = device.clock_info(Clock::SM).map_err(|e| e.to_string())?;
        let max_sm_mhz = device
            .max_clock_info(Clock::SM)
            .map_err(|e| e.to_string())?;
        let reasons = device
            .current_throttle_reasons()
            .map(|r| {
                r.iter_names()
                    .map(|(name, _)| name.to_ascii_lowercase())
                    .collect()
            })
            .unwrap_or_default();
        let power_capped_ns = device
            .violation_status(PerformancePolicy::Power)
            .map(|v| v.violation_time)
            .ok();
        Ok(SmClock {
            sm_mhz,
            max_sm_mhz,
            reasons,
            power_capped_ns,
        })
    }
}
