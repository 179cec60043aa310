//! How much memory this machine has, so that a reader can refuse a file whose declared sizes
//! could never fit with a message naming the file, instead of being killed by the kernel midway.

/// The machine's physical memory in bytes (`MemTotal` of `/proc/meminfo`); `None` where it cannot
/// be read (not Linux), in which case readers rely on allocation failing cleanly.
pub fn physical_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_total(&meminfo)
}

fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kilobytes.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_is_read_in_kilobytes() {
        let meminfo = "MemTotal:       24576000 kB\nMemFree:         1000 kB\n";
        assert_eq!(parse_mem_total(meminfo), Some(24_576_000 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_linux_machine_reports_its_memory() {
        assert!(physical_memory().is_some_and(|bytes| bytes > 1 << 20));
    }
}
