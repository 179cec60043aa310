//! Whether an allocation fits the machine, checked before it is tried.
//!
//! An option such as `--pseudo-pairs 1000000000` or `psa generate --n-per-group 1000000000`
//! decides the size of an output array. Allocating it blindly ends in an abort ("memory
//! allocation of … bytes failed"), a panic inside ndarray when the element count overflows, or
//! the kernel's OOM killer after minutes of swapping. [`ensure_memory`] turns that into one
//! line that names the option and the size: "--pseudo-pairs 1000000000 needs 7.4 TiB for
//! pseudo_pairs.npy; this machine has 23 GiB available".
//!
//! How to apply it: before allocating an output, compute its size with [`bytes_of`] (checked
//! arithmetic: an overflow is `None`, which [`ensure_memory`] refuses as "more than 16 EiB"),
//! add what else the step holds at the same time, and call [`ensure_memory`] with the option as
//! the user wrote it and the file(s) it is for. For `psa match`: `--topk K` needs
//! `bytes_of(&[n1, K], 8 + 4)` for topk_index.npy and topk_weight.npy, `--pseudo-pairs M`
//! `bytes_of(&[M, …], 8)` for pseudo_pairs.npy, `--dense-max` the dense couplings it allows.
//!
//! The available memory is Linux's `MemAvailable` (`/proc/meminfo`), lowered to the cgroup's
//! limit when the process runs in a container with one (cgroup v2 `memory.max` or v1
//! `memory.limit_in_bytes`, less what the cgroup already uses). Where neither can be read (other
//! systems), only sizes beyond what one allocation can hold (`isize::MAX` bytes) are refused.
//! This is an estimate for refusing hopeless requests early, not a reservation: a request that
//! passes can still fail if other processes take the memory first.

use std::fs;
use std::path::Path;

use crate::error::IoError;

/// Bytes of an array of `shape` with `item_bytes` per element; `None` if it overflows `u64`.
///
/// ```
/// assert_eq!(psa_io::bytes_of(&[1000, 3], 8), Some(24_000));
/// assert_eq!(psa_io::bytes_of(&[u64::MAX, 2], 1), None);
/// ```
pub fn bytes_of(shape: &[u64], item_bytes: u64) -> Option<u64> {
    shape
        .iter()
        .try_fold(item_bytes, |total, &extent| total.checked_mul(extent))
}

/// The memory this process can still allocate, in bytes: `MemAvailable`, or the cgroup's
/// remaining allowance if that is less. `None` where neither can be read.
pub fn available_memory() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| mem_available(&text));
    match (meminfo, cgroup_allowance()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The machine's physical memory in bytes (`MemTotal` of `/proc/meminfo`): what no single input
/// can ever exceed (the `.h5ad` reader refuses files that declare more). `None` where it cannot
/// be read (not Linux).
pub fn physical_memory() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    meminfo_kilobytes(&meminfo, "MemTotal:")
}

/// Fails with [`IoError::OutOfMemory`] when `needed` bytes (`None`: more than `u64` can count)
/// exceed [`available_memory`], or, where that is unknown, what one allocation can hold.
///
/// `option` is the request as the user wrote it (`"--topk 1000000000"`), `output` what the
/// memory is for (`"topk_index.npy and topk_weight.npy"`).
///
/// ```
/// let err = psa_io::ensure_memory("--topk 18446744073709551615", "topk_index.npy", None);
/// assert!(err.unwrap_err().to_string().starts_with(
///     "--topk 18446744073709551615 needs more than 16 EiB for topk_index.npy; this machine has"
/// ));
/// assert!(psa_io::ensure_memory("--topk 10", "topk_index.npy", Some(800)).is_ok());
/// ```
pub fn ensure_memory(
    option: impl Into<String>,
    output: impl Into<String>,
    needed: Option<u64>,
) -> Result<(), IoError> {
    let available = available_memory().unwrap_or(isize::MAX as u64);
    match needed {
        Some(bytes) if bytes <= available => Ok(()),
        _ => Err(IoError::OutOfMemory {
            option: option.into(),
            output: output.into(),
            needed,
            available,
        }),
    }
}

/// `MemAvailable` from the text of `/proc/meminfo`, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    meminfo_kilobytes(meminfo, "MemAvailable:")
}

/// The value of the `/proc/meminfo` line starting with `key` (given in kB), in bytes.
fn meminfo_kilobytes(meminfo: &str, key: &str) -> Option<u64> {
    let line = meminfo.lines().find_map(|line| line.strip_prefix(key))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// What the cgroup this process runs in still allows: its limit less its usage.
fn cgroup_allowance() -> Option<u64> {
    // cgroup v2: the process's own group (from /proc/self/cgroup), else the root a container sees.
    let own = fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("0::"))
                .map(|group| Path::new("/sys/fs/cgroup").join(group.trim_start_matches('/')))
        });
    let v2 = own
        .into_iter()
        .chain([Path::new("/sys/fs/cgroup").to_path_buf()])
        .find_map(|dir| allowance(&dir.join("memory.max"), &dir.join("memory.current")));
    v2.or_else(|| {
        let v1 = Path::new("/sys/fs/cgroup/memory");
        allowance(
            &v1.join("memory.limit_in_bytes"),
            &v1.join("memory.usage_in_bytes"),
        )
    })
}

/// `limit − usage` from two cgroup files; `None` without a limit (`max`, or v1's huge value).
fn allowance(limit: &Path, usage: &Path) -> Option<u64> {
    let limit = parse_limit(&fs::read_to_string(limit).ok()?)?;
    let usage: u64 = fs::read_to_string(usage).ok()?.trim().parse().ok()?;
    Some(limit.saturating_sub(usage))
}

/// A cgroup memory limit: a number of bytes, or `None` for `max` and for cgroup v1's "no limit"
/// (a value near `i64::MAX`, rounded down to the page size).
fn parse_limit(text: &str) -> Option<u64> {
    let limit: u64 = text.trim().parse().ok()?;
    (limit < 1 << 60).then_some(limit)
}

/// A size as people read it, in binary units: `512 B`, `7.4 TiB`, `23 GiB`; `None` is "more than
/// 16 EiB" (a size that overflowed `u64`).
pub(crate) fn human_bytes(bytes: Option<u64>) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let Some(bytes) = bytes else {
        return "more than 16 EiB".to_owned();
    };
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    // Two or three significant digits; "9.96" rounds to "10", never to "10.0".
    if value < 9.95 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_is_read_in_kilobytes() {
        let meminfo = "MemTotal:       24576000 kB\nMemFree:         1000 kB\n";
        assert_eq!(
            meminfo_kilobytes(meminfo, "MemTotal:"),
            Some(24_576_000 * 1024)
        );
        assert_eq!(meminfo_kilobytes("MemFree: 1 kB\n", "MemTotal:"), None);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(Some(0)), "0 B");
        assert_eq!(human_bytes(Some(1023)), "1023 B");
        assert_eq!(human_bytes(Some(1024)), "1.0 KiB");
        assert_eq!(human_bytes(Some(23 << 30)), "23 GiB");
        assert_eq!(human_bytes(Some(10 * (1 << 30) - (1 << 20))), "10 GiB");
        // 1e9 pseudo-pairs of 1000 f64 values: 8e12 bytes.
        assert_eq!(human_bytes(Some(8_000_000_000_000)), "7.3 TiB");
        assert_eq!(human_bytes(Some(u64::MAX)), "16 EiB");
        assert_eq!(human_bytes(None), "more than 16 EiB");
    }

    #[test]
    fn array_sizes_overflow_to_none() {
        assert_eq!(bytes_of(&[], 8), Some(8));
        assert_eq!(bytes_of(&[3, 0, 5], 8), Some(0));
        assert_eq!(bytes_of(&[1 << 32, 1 << 31], 1), Some(1 << 63));
        assert_eq!(bytes_of(&[1 << 32, 1 << 31], 2), None);
        assert_eq!(bytes_of(&[u64::MAX], 1), Some(u64::MAX));
    }

    #[test]
    fn meminfo_and_cgroup_limits_parse() {
        let meminfo =
            "MemTotal:       24588200 kB\nMemFree:  100 kB\nMemAvailable:   22000000 kB\n";
        assert_eq!(mem_available(meminfo), Some(22_000_000 * 1024));
        assert_eq!(mem_available("MemTotal: 5 kB\n"), None);
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit("4294967296\n"), Some(1 << 32));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn requests_beyond_the_machine_name_the_option_and_the_size() {
        let available = available_memory().expect("Linux CI reads /proc/meminfo");
        assert!(available > 1 << 20, "{available}");
        let err = ensure_memory(
            "--n-per-group 1000000000",
            "x1.npy and x2.npy",
            bytes_of(&[12_000_000_000, 80], 4),
        )
        .unwrap_err()
        .to_string();
        let want = format!(
            "--n-per-group 1000000000 needs 3.5 TiB for x1.npy and x2.npy; this machine has {} \
             available",
            human_bytes(Some(available))
        );
        assert_eq!(err, want);
        assert!(ensure_memory("--topk 1", "topk_index.npy", Some(1024)).is_ok());
    }
}
