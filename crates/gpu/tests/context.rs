//! Adapter choice: `--backend gpu` accepts software adapters, `--backend auto` does not; the
//! Vulkan probe stays quiet on machines without a display session.

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

/// Issue 11: without a display session every run printed `error: XDG_RUNTIME_DIR is invalid
/// or not set in the environment.` (Mesa's device-selection layer asking libwayland);
/// `silence_display_probe` keeps it quiet. This runs the test binary again as a child without
/// XDG_RUNTIME_DIR, once silenced and once not.
#[test]
fn the_display_probe_is_quiet_once_silenced() {
    match std::env::var("PSA_PROBE_CHILD").as_deref() {
        Ok("silenced") => {
            // SAFETY: this child process runs this one test on one thread.
            unsafe { psa_gpu::silence_display_probe() };
            let _ = GpuContext::new(AdapterChoice::AnyIncludingSoftware);
            return;
        }
        Ok(_) => {
            let _ = GpuContext::new(AdapterChoice::AnyIncludingSoftware);
            return;
        }
        Err(_) => {}
    }
    if common::gpu().is_none() {
        return;
    }
    let stderr = |mode: &str| {
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "the_display_probe_is_quiet_once_silenced"])
            .args(["--test-threads", "1", "--nocapture"])
            .env("PSA_PROBE_CHILD", mode)
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("NODEVICE_SELECT")
            .output()
            .expect("the child runs");
        assert!(out.status.success(), "child failed: {out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let message = "XDG_RUNTIME_DIR is invalid or not set";
    assert!(!stderr("silenced").contains(message));
    // Where Mesa's layer is installed, the unsilenced probe does print it (the cause is real).
    let layer = "/usr/share/vulkan/implicit_layer.d/VkLayer_MESA_device_select.json";
    if std::path::Path::new(layer).exists() {
        assert!(
            stderr("loud").contains(message),
            "the layer stayed quiet by itself"
        );
    }
}
