//! The compute drivers apply can use, by the name machines give in `driver`.
//!
//! Apply and refresh take a [`DriverSet`] (a trait object), so tests can hand them a fake that
//! fails on demand; [`Drivers`] is the real set.

use kloud_provider_api::compute::ComputeDriver;
use kloud_provider_lxc::LxcDriver;
use kloud_provider_openvz::OpenVzDriver;

/// The drivers of one run, by kind.
pub trait DriverSet: Sync {
    /// The driver called `kind`, or why it is unavailable.
    fn get(&self, kind: &str) -> Result<&dyn ComputeDriver, String>;
}

/// Drivers, made once per run and shared by every worker.
pub struct Drivers {
    lxc: Option<LxcDriver>,
    openvz: Option<OpenVzDriver>,
    errors: Vec<(String, String)>,
}

impl Drivers {
    /// Build the drivers from their environment settings (`KLOUD_LXC_*`, `KLOUD_OPENVZ_*`).
    pub fn from_env() -> Self {
        let mut errors = Vec::new();
        let lxc = LxcDriver::from_env()
            .map_err(|e| errors.push(("lxc".to_string(), e.to_string())))
            .ok();
        let openvz = OpenVzDriver::from_env()
            .map_err(|e| errors.push(("openvz".to_string(), e.to_string())))
            .ok();
        Self {
            lxc,
            openvz,
            errors,
        }
    }
}

impl DriverSet for Drivers {
    fn get(&self, kind: &str) -> Result<&dyn ComputeDriver, String> {
        let found: Option<&dyn ComputeDriver> = match kind {
            "lxc" => self.lxc.as_ref().map(|d| d as &dyn ComputeDriver),
            "openvz" => self.openvz.as_ref().map(|d| d as &dyn ComputeDriver),
            _ => None,
        };
        found.ok_or_else(|| {
            self.errors.iter().find(|(k, _)| k == kind).map_or_else(
                || format!("no driver `{kind}`"),
                |(_, e)| format!("driver `{kind}`: {e}"),
            )
        })
    }
}
