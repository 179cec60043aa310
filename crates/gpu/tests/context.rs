//! Adapter choice: `--backend gpu` accepts software adapters, `--backend auto` does not.

mod common;

use psa_gpu::{AdapterChoice, GpuContext, GpuError};

#[test]
fn hardware_only_skips_software_adapters() {
    let Some(any) = common::gpu() else { return };
    match GpuContext::new(AdapterChoice::HardwareOnly) {
        Ok(ctx) => assert!(!ctx.is_software(), "{} is software", ctx.describe()),
        Err(GpuError::OnlySoftware { found }) => {
            assert!(any.is_software());
            assert!(found.contains(&any.info.name), "{found}");
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[test]
fn the_no_adapter_message_says_what_to_do() {
    let message = GpuError::NoAdapter.to_string();
    assert!(message.contains("mesa-vulkan-drivers") && message.contains("--backend cpu"));
}
