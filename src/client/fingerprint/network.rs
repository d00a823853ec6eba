//! Network: the interface allocated ports live on (`unique.network.ip-address`,
//! NodeResources.Networks).

use std::net::IpAddr;

/// An interface address.
#[derive(Debug, Clone, PartialEq)]
pub struct IfAddr {
    /// Interface name.
    pub device: String,
    /// Address.
    pub ip: IpAddr,
    /// Prefix length of the netmask.
    pub prefix: u32,
}

/// Every address of every interface (via getifaddrs).
pub fn interface_addrs() -> Vec<IfAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we only read and then free exactly once.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = &*cur;
            cur = ifa.ifa_next;
            if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
                continue;
            }
            let name = std::ffi::CStr::from_ptr(ifa.ifa_name)
                .to_string_lossy()
                .into_owned();
            let (ip, prefix) = match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    let ip = IpAddr::from(u32::from_be(sa.sin_addr.s_addr).to_be_bytes());
                    let prefix = if ifa.ifa_netmask.is_null() {
                        32
                    } else {
                        let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
                        u32::from_be(m.sin_addr.s_addr).count_ones()
                    };
                    (ip, prefix)
                }
                libc::AF_INET6 => {
                    let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let prefix = if ifa.ifa_netmask.is_null() {
                        128
                    } else {
                        let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in6);
                        m.sin6_addr.s6_addr.iter().map(|b| b.count_ones()).sum()
                    };
                    (IpAddr::from(sa.sin6_addr.s6_addr), prefix)
                }
                _ => continue,
            };
            out.push(IfAddr {
                device: name,
                ip,
                prefix,
            });
        }
        libc::freeifaddrs(head);
    }
    out
}

/// The interface of the IPv4 default route.
pub fn default_route_interface() -> Option<String> {
    let text = std::fs::read_to_string("/proc/net/route").ok()?;
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 2 && f[1] == "00000000").then(|| f[0].to_string())
    })
}

/// The address to fingerprint on `device`: its first IPv4 address, else its first address.
pub fn pick(device: &str) -> Option<IfAddr> {
    let addrs: Vec<IfAddr> = interface_addrs()
        .into_iter()
        .filter(|a| a.device == device)
        .collect();
    addrs
        .iter()
        .find(|a| a.ip.is_ipv4())
        .or_else(|| addrs.first())
        .cloned()
}
