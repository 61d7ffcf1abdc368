//! The injector `rpc:distro:sys`: the native endpoint through which the
//! admin API sends requests on behalf of `kit i` and awaits their answers.
//! It serves no requests itself.

use std::sync::Arc;

use crate::kernel::caps::ProcessCaps;
use crate::native::NativeEndpoint;
use crate::services::Services;
use crate::types::ProcessId;

pub fn process_id() -> ProcessId {
    ProcessId::new("rpc", "distro", "sys")
}

/// Register the injector. It may message any process, on any node.
pub fn start(
    services: &Arc<Services>,
) -> Result<Arc<NativeEndpoint>, crate::kernel::AlreadyRunning> {
    let caps = ProcessCaps {
        public: false,
        networking: true,
        system: true,
    };
    NativeEndpoint::start(services, process_id(), caps, None)
}
