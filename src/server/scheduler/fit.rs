//! Resource fit: does a placement fit in what a node has left, and which host ports does it get?
//!
//! A node's capacity is its fingerprinted resources minus what it reserves for itself; its
//! usage is the sum over its non-terminal allocations. [`NodeState`] holds both for one
//! node during an evaluation and is updated as the plan places allocations, so each
//! placement costs O(1) per candidate node instead of a scan of the node's allocations.

use std::sync::Arc;

use rand::{Rng, RngExt};

use crate::structs::{
    AllocatedPortMapping, Allocation, NetworkResource, Node, Port, Resources, TaskGroup,
};

/// Exhausted dimension: CPU shares.
pub const DIM_CPU: &str = "cpu";
/// Exhausted dimension: memory.
pub const DIM_MEMORY: &str = "memory";
/// Exhausted dimension: ephemeral disk.
pub const DIM_DISK: &str = "disk";
/// Exhausted dimension: two allocations (or an allocation and the node) claim one port.
pub const DIM_PORT_COLLISION: &str = "network: port collision";
/// Exhausted dimension: no free port in the dynamic range.
pub const DIM_DYNAMIC_PORTS: &str = "network: dynamic port selection failed";

/// Default lower bound of the dynamic port range.
pub const DEFAULT_MIN_DYNAMIC_PORT: u16 = 20000;
/// Default upper bound of the dynamic port range.
pub const DEFAULT_MAX_DYNAMIC_PORT: u16 = 32000;
/// Address given to ports when the node fingerprinted no network.
pub const DEFAULT_HOST_IP: &str = "127.0.0.1";

/// The dimension name of a static port that is already taken (Nomad's wording).
pub fn reserved_port_collision(label: &str, port: i64) -> String {
    format!("network: reserved port collision {label}={port}")
}

/// An amount of the three scalar resources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU shares (MHz).
    pub cpu: i64,
    /// Memory in MB.
    pub memory_mb: i64,
    /// Disk in MB.
    pub disk_mb: i64,
}

impl Usage {
    /// Component-wise sum.
    pub fn plus(self, o: Usage) -> Usage {
        Usage {
            cpu: self.cpu + o.cpu,
            memory_mb: self.memory_mb + o.memory_mb,
            disk_mb: self.disk_mb + o.disk_mb,
        }
    }

    /// The first dimension in which `self` exceeds `capacity` (Nomad checks cpu, memory, disk).
    pub fn exceeds(&self, capacity: &Usage) -> Option<&'static str> {
        if self.cpu > capacity.cpu {
            Some(DIM_CPU)
        } else if self.memory_mb > capacity.memory_mb {
            Some(DIM_MEMORY)
        } else if self.disk_mb > capacity.disk_mb {
            Some(DIM_DISK)
        } else {
            None
        }
    }
}

/// What a node offers to allocations: its resources minus its reserved resources.
pub fn node_capacity(node: &Node) -> Usage {
    let mut cap = node
        .node_resources
        .as_ref()
        .map(|r| Usage {
            cpu: r.cpu.cpu_shares,
            memory_mb: r.memory.memory_mb,
            disk_mb: r.disk.disk_mb,
        })
        .unwrap_or_default();
    if let Some(res) = node.reserved_resources.as_ref() {
        cap.cpu -= res.cpu.cpu_shares;
        cap.memory_mb -= res.memory.memory_mb;
        cap.disk_mb -= res.disk.disk_mb;
    }
    cap
}

/// What an allocation uses; legacy `Resources` when it has no `AllocatedResources`.
pub fn alloc_usage(alloc: &Allocation) -> Usage {
    if let Some(ar) = alloc.allocated_resources.as_ref() {
        let mut u = Usage {
            disk_mb: ar.shared.disk_mb,
            ..Usage::default()
        };
        for t in ar.tasks.values() {
            u.cpu += t.cpu.cpu_shares;
            u.memory_mb += t.memory.memory_mb;
        }
        return u;
    }
    if let Some(r) = alloc.resources.as_ref() {
        return Usage {
            cpu: r.cpu,
            memory_mb: r.memory_mb,
            disk_mb: r.disk_mb,
        };
    }
    let mut u = Usage {
        disk_mb: alloc.shared_resources.as_ref().map_or(0, |s| s.disk_mb),
        ..Usage::default()
    };
    for r in alloc.task_resources.iter().flat_map(|m| m.values()) {
        u.cpu += r.cpu;
        u.memory_mb += r.memory_mb;
    }
    u
}

/// What a new allocation of `tg` asks for: the tasks' CPU and memory plus the group's disk.
pub fn group_usage(tg: &TaskGroup) -> Usage {
    let mut u = Usage {
        disk_mb: tg.ephemeral_disk.as_ref().map_or(0, |d| d.size_mb),
        ..Usage::default()
    };
    for t in tg.tasks() {
        if let Some(r) = t.resources.as_ref() {
            u.cpu += r.cpu;
            u.memory_mb += r.memory_mb;
        }
    }
    u
}

fn port_u16(v: i64) -> Option<u16> {
    u16::try_from(v).ok().filter(|p| *p != 0)
}

/// The host ports an allocation holds, without duplicates (the shared port mappings repeat
/// the group networks' ports).
pub fn alloc_ports(alloc: &Allocation) -> Vec<u16> {
    let mut out = Vec::new();
    let mut from_networks = |nets: Option<&Arc<Vec<NetworkResource>>>| {
        for n in nets.into_iter().flat_map(|n| n.iter()) {
            out.extend(n.all_ports().filter_map(|p| port_u16(p.value)));
        }
    };
    if let Some(ar) = alloc.allocated_resources.as_ref() {
        from_networks(ar.shared.networks.as_ref());
        for t in ar.tasks.values() {
            from_networks(t.networks.as_ref());
        }
        out.extend(
            ar.shared
                .ports
                .iter()
                .flatten()
                .filter_map(|p| port_u16(p.value)),
        );
    } else {
        let legacy = |r: Option<&Resources>| r.and_then(|r| r.networks.clone());
        let mut nets: Vec<Arc<Vec<NetworkResource>>> = Vec::new();
        nets.extend(legacy(alloc.resources.as_ref()));
        nets.extend(legacy(alloc.shared_resources.as_ref()));
        for r in alloc.task_resources.iter().flat_map(|m| m.values()) {
            nets.extend(legacy(Some(r)));
        }
        for n in nets.iter().flat_map(|n| n.iter()) {
            out.extend(n.all_ports().filter_map(|p| port_u16(p.value)));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Parses a port spec like `"80,443,1000-2000"`; malformed pieces are ignored.
pub fn parse_port_spec(spec: &str) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let range = match part.split_once('-') {
            Some((a, b)) => a
                .trim()
                .parse::<u16>()
                .ok()
                .zip(b.trim().parse::<u16>().ok()),
            None => part.parse::<u16>().ok().map(|p| (p, p)),
        };
        if let Some((lo, hi)) = range.filter(|(lo, hi)| lo <= hi) {
            out.push((lo, hi));
        }
    }
    out
}

/// A set of host ports, as a bitmap allocated on first use.
#[derive(Debug, Clone, Default)]
pub struct PortSet {
    words: Vec<u64>,
}

impl PortSet {
    /// True when `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        self.words
            .get(usize::from(port) / 64)
            .is_some_and(|w| w & (1 << (port % 64)) != 0)
    }

    /// Adds `port`; false when it was already there.
    pub fn insert(&mut self, port: u16) -> bool {
        if self.words.is_empty() {
            self.words = vec![0; 65536 / 64];
        }
        let idx = usize::from(port) / 64;
        let bit = 1u64 << (port % 64);
        let fresh = self.words[idx] & bit == 0;
        self.words[idx] |= bit;
        fresh
    }

    /// Removes `port`.
    pub fn remove(&mut self, port: u16) {
        if let Some(w) = self.words.get_mut(usize::from(port) / 64) {
            *w &= !(1u64 << (port % 64));
        }
    }
}

/// A node's capacity, usage and taken ports during one evaluation.
#[derive(Debug, Clone)]
pub struct NodeState {
    /// Resources left for allocations after the node's reservation.
    pub capacity: Usage,
    /// Resources held by live allocations, the plan's placements included.
    pub used: Usage,
    ports: PortSet,
    /// How many ports of the dynamic range are taken (for the O(1) pre-check).
    dynamic_taken: u32,
    ip: String,
    device: String,
    min_dynamic: u16,
    max_dynamic: u16,
}

impl NodeState {
    /// Builds the state from the node and the allocations on it (terminal ones are skipped).
    pub fn new<'a>(node: &Node, allocs: impl IntoIterator<Item = &'a Allocation>) -> NodeState {
        let nr = node.node_resources.as_ref();
        let net = nr.and_then(|r| r.networks.as_ref()).and_then(|n| n.first());
        let ip = net
            .map(|n| n.ip.clone())
            .filter(|ip| !ip.is_empty())
            .unwrap_or_else(|| DEFAULT_HOST_IP.to_string());
        let bound = |v: Option<i64>, default: u16| {
            v.and_then(|v| u16::try_from(v).ok())
                .filter(|p| *p != 0)
                .unwrap_or(default)
        };
        let mut state = NodeState {
            capacity: node_capacity(node),
            used: Usage::default(),
            ports: PortSet::default(),
            dynamic_taken: 0,
            ip,
            device: net.map(|n| n.device.clone()).unwrap_or_default(),
            min_dynamic: bound(nr.map(|r| r.min_dynamic_port), DEFAULT_MIN_DYNAMIC_PORT),
            max_dynamic: bound(nr.map(|r| r.max_dynamic_port), DEFAULT_MAX_DYNAMIC_PORT),
        };
        if let Some(r) = node.reserved_resources.as_ref() {
            for (lo, hi) in parse_port_spec(&r.networks.reserved_host_ports) {
                for p in lo..=hi {
                    state.take_port(p);
                }
            }
        }
        for a in allocs.into_iter().filter(|a| !a.terminal()) {
            state.commit(alloc_usage(a), &alloc_ports(a));
        }
        state
    }

    fn in_dynamic_range(&self, p: u16) -> bool {
        (self.min_dynamic..=self.max_dynamic).contains(&p)
    }

    fn take_port(&mut self, p: u16) {
        if self.ports.insert(p) && self.in_dynamic_range(p) {
            self.dynamic_taken += 1;
        }
    }

    /// Records a placement's resources and ports.
    pub fn commit(&mut self, usage: Usage, ports: &[u16]) {
        self.used = self.used.plus(usage);
        for p in ports {
            self.take_port(*p);
        }
    }

    /// Cheap port check for ranking many candidates: every static port is free and the
    /// dynamic range has room for the dynamic ones. [`NodeState::assign_networks`] on the
    /// chosen node then picks the actual ports.
    pub fn ports_fit(&self, ask: &NetworkAsk<'_>) -> Result<(), String> {
        let nets = ask
            .group
            .iter()
            .chain(ask.tasks.iter().flat_map(|(_, n)| n.iter()));
        let mut needed: u32 = 0;
        let mut statics: Vec<u16> = Vec::new();
        for net in nets {
            for p in net.reserved_ports.iter().flatten() {
                match port_u16(p.value) {
                    Some(v) if !self.ports.contains(v) && !statics.contains(&v) => {
                        needed += u32::from(self.in_dynamic_range(v));
                        statics.push(v);
                    }
                    _ => return Err(reserved_port_collision(&p.label, p.value)),
                }
            }
            needed += net.dynamic_ports.as_ref().map_or(0, |d| d.len() as u32);
        }
        let range = if self.min_dynamic <= self.max_dynamic {
            u32::from(self.max_dynamic - self.min_dynamic) + 1
        } else {
            0
        };
        if needed > range.saturating_sub(self.dynamic_taken) {
            return Err(DIM_DYNAMIC_PORTS.to_string());
        }
        Ok(())
    }

    /// Gives back a placement's resources and ports (an allocation the plan replaces).
    pub fn release(&mut self, usage: Usage, ports: &[u16]) {
        self.used = Usage {
            cpu: self.used.cpu - usage.cpu,
            memory_mb: self.used.memory_mb - usage.memory_mb,
            disk_mb: self.used.disk_mb - usage.disk_mb,
        };
        for p in ports {
            if self.ports.contains(*p) && self.in_dynamic_range(*p) {
                self.dynamic_taken = self.dynamic_taken.saturating_sub(1);
            }
            self.ports.remove(*p);
        }
    }

    /// True when `port` is taken on this node.
    pub fn port_taken(&self, port: u16) -> bool {
        self.ports.contains(port)
    }

    /// Checks the scalar resources; `Err` names the first exhausted dimension.
    pub fn fits(&self, ask: &Usage) -> Result<(), &'static str> {
        match self.used.plus(*ask).exceeds(&self.capacity) {
            Some(dim) => Err(dim),
            None => Ok(()),
        }
    }

    /// Gives every asked port a host port: static ones must be free, dynamic ones are
    /// picked at random from the node's dynamic range avoiding every taken port.
    pub fn assign_networks(
        &self,
        ask: &NetworkAsk<'_>,
        rng: &mut impl Rng,
    ) -> Result<AssignedNetworks, String> {
        let mut group: Vec<NetworkResource> = ask.group.to_vec();
        let mut tasks: Vec<(String, Vec<NetworkResource>)> = ask
            .tasks
            .iter()
            .map(|(name, nets)| (name.to_string(), nets.to_vec()))
            .collect();
        let mut taken: Vec<u16> = Vec::new();
        // Static ports first so a dynamic pick cannot steal a port asked for statically.
        for net in nets_mut(&mut group, &mut tasks) {
            for p in net.reserved_ports.iter().flatten() {
                match port_u16(p.value) {
                    Some(v) if !self.ports.contains(v) && !taken.contains(&v) => taken.push(v),
                    _ => return Err(reserved_port_collision(&p.label, p.value)),
                }
            }
        }
        for net in nets_mut(&mut group, &mut tasks) {
            for p in net.dynamic_ports.iter_mut().flatten() {
                let v = self
                    .pick_dynamic(&taken, rng)
                    .ok_or_else(|| DIM_DYNAMIC_PORTS.to_string())?;
                taken.push(v);
                p.value = i64::from(v);
            }
            net.ip = self.ip.clone();
            if net.device.is_empty() {
                net.device = self.device.clone();
            }
        }
        let ports = group
            .iter()
            .flat_map(NetworkResource::all_ports)
            .map(|p| self.port_mapping(p))
            .collect();
        Ok(AssignedNetworks {
            group,
            ports,
            tasks,
            taken,
        })
    }

    fn port_mapping(&self, p: &Port) -> AllocatedPortMapping {
        AllocatedPortMapping {
            label: p.label.clone(),
            value: p.value,
            // `To = -1` asks for the host port to be mapped to the same port inside.
            to: if p.to == -1 { p.value } else { p.to },
            host_ip: self.ip.clone(),
        }
    }

    fn pick_dynamic(&self, taken: &[u16], rng: &mut impl Rng) -> Option<u16> {
        let (lo, hi) = (self.min_dynamic, self.max_dynamic);
        if lo > hi {
            return None;
        }
        let free = |p: u16| !self.ports.contains(p) && !taken.contains(&p);
        // Random probes almost always succeed; a scan guarantees an answer on a full range.
        for _ in 0..20 {
            let p = rng.random_range(lo..=hi);
            if free(p) {
                return Some(p);
            }
        }
        let span = u32::from(hi - lo) + 1;
        let start = rng.random_range(0..span);
        (0..span)
            .map(|i| lo + u16::try_from((start + i) % span).unwrap_or(0))
            .find(|p| free(*p))
    }
}

fn nets_mut<'x>(
    group: &'x mut [NetworkResource],
    tasks: &'x mut [(String, Vec<NetworkResource>)],
) -> impl Iterator<Item = &'x mut NetworkResource> {
    group
        .iter_mut()
        .chain(tasks.iter_mut().flat_map(|(_, n)| n.iter_mut()))
}

/// The networks a placement asks for: the group's and each task's.
#[derive(Debug, Clone, Default)]
pub struct NetworkAsk<'a> {
    /// Group-level networks (shared by the tasks).
    pub group: &'a [NetworkResource],
    /// Task name → task-level networks.
    pub tasks: Vec<(&'a str, &'a [NetworkResource])>,
}

impl<'a> NetworkAsk<'a> {
    /// Collects the networks of `tg` and its tasks.
    pub fn of(tg: &'a TaskGroup) -> NetworkAsk<'a> {
        NetworkAsk {
            group: tg.networks.as_deref().unwrap_or(&[]),
            tasks: tg
                .tasks()
                .iter()
                .filter_map(|t| {
                    let nets = t.resources.as_ref()?.networks.as_deref()?.as_slice();
                    (!nets.is_empty()).then_some((t.name.as_str(), nets))
                })
                .collect(),
        }
    }

    /// True when no port or network is asked for.
    pub fn is_empty(&self) -> bool {
        self.group.is_empty() && self.tasks.is_empty()
    }
}

/// Networks with their host ports filled in.
#[derive(Debug, Clone, Default)]
pub struct AssignedNetworks {
    /// Group networks with IP and port values set.
    pub group: Vec<NetworkResource>,
    /// The group ports as allocated port mappings.
    pub ports: Vec<AllocatedPortMapping>,
    /// Task name → task networks with IP and port values set.
    pub tasks: Vec<(String, Vec<NetworkResource>)>,
    /// Every host port taken.
    pub taken: Vec<u16>,
}

/// Re-checks that `allocs` (the node's allocations as the plan would leave them) fit on
/// `node`. `Err` names the exhausted dimension (`cpu`, `memory`, `disk`,
/// `network: port collision`). Terminal allocations are ignored.
pub fn allocs_fit(node: &Node, allocs: &[&Allocation]) -> Result<(), String> {
    let mut ports = PortSet::default();
    if let Some(r) = node.reserved_resources.as_ref() {
        for (lo, hi) in parse_port_spec(&r.networks.reserved_host_ports) {
            for p in lo..=hi {
                ports.insert(p);
            }
        }
    }
    let mut used = Usage::default();
    let mut collision = false;
    for a in allocs.iter().filter(|a| !a.terminal()) {
        used = used.plus(alloc_usage(a));
        for p in alloc_ports(a) {
            collision |= !ports.insert(p);
        }
    }
    if let Some(dim) = used.exceeds(&node_capacity(node)) {
        return Err(dim.to_string());
    }
    if collision {
        return Err(DIM_PORT_COLLISION.to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::{AllocClientStatus, AllocDesiredStatus};
    use crate::structs::{
        AllocatedResources, AllocatedSharedResources, AllocatedTaskResources,
        NodeReservedResources, NodeResources,
    };

    fn node(cpu: i64, mem: i64, disk: i64) -> Node {
        let mut n = Node::default();
        let mut r = NodeResources::default();
        r.cpu.cpu_shares = cpu;
        r.memory.memory_mb = mem;
        r.disk.disk_mb = disk;
        r.networks = Some(vec![NetworkResource {
            ip: "10.0.0.5".into(),
            device: "eth0".into(),
            ..Default::default()
        }]);
        n.node_resources = Some(r);
        n
    }

    fn alloc(cpu: i64, mem: i64, disk: i64, ports: &[i64]) -> Allocation {
        let mut ar = AllocatedResources::default();
        let mut t = AllocatedTaskResources::default();
        t.cpu.cpu_shares = cpu;
        t.memory.memory_mb = mem;
        std::sync::Arc::make_mut(&mut ar.tasks).insert("t".into(), t);
        ar.shared = AllocatedSharedResources {
            disk_mb: disk,
            ports: Some(
                ports
                    .iter()
                    .map(|p| AllocatedPortMapping {
                        label: "p".into(),
                        value: *p,
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        };
        Allocation {
            allocated_resources: Some(ar),
            desired_status: AllocDesiredStatus::Run,
            client_status: AllocClientStatus::Running,
            ..Default::default()
        }
    }

    #[test]
    fn exhaustion_per_dimension() {
        let n = node(1000, 1000, 1000);
        let a = alloc(600, 100, 100, &[]);
        assert_eq!(allocs_fit(&n, &[&a]), Ok(()));
        let b = alloc(600, 100, 100, &[]);
        assert_eq!(allocs_fit(&n, &[&a, &b]).unwrap_err(), "cpu");
        let b = alloc(100, 901, 100, &[]);
        assert_eq!(allocs_fit(&n, &[&a, &b]).unwrap_err(), "memory");
        let b = alloc(100, 100, 901, &[]);
        assert_eq!(allocs_fit(&n, &[&a, &b]).unwrap_err(), "disk");
        // Terminal allocations free their resources.
        let mut b = alloc(600, 100, 100, &[]);
        b.client_status = AllocClientStatus::Complete;
        assert_eq!(allocs_fit(&n, &[&a, &b]), Ok(()));
    }

    #[test]
    fn reserved_resources_shrink_capacity() {
        let mut n = node(1000, 1000, 1000);
        let mut res = NodeReservedResources::default();
        res.cpu.cpu_shares = 500;
        n.reserved_resources = Some(res);
        assert_eq!(
            allocs_fit(&n, &[&alloc(600, 1, 1, &[])]).unwrap_err(),
            "cpu"
        );
    }

    #[test]
    fn legacy_resources_are_counted() {
        let n = node(1000, 1000, 1000);
        let a = Allocation {
            resources: Some(Resources {
                cpu: 900,
                memory_mb: 10,
                disk_mb: 10,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(alloc_usage(&a).cpu, 900);
        assert_eq!(
            allocs_fit(&n, &[&a, &alloc(200, 1, 1, &[])]).unwrap_err(),
            "cpu"
        );
    }

    #[test]
    fn port_collisions() {
        let mut n = node(1000, 1000, 1000);
        let a = alloc(1, 1, 1, &[8080]);
        let b = alloc(1, 1, 1, &[8080]);
        assert_eq!(allocs_fit(&n, &[&a, &b]).unwrap_err(), DIM_PORT_COLLISION);
        let mut res = NodeReservedResources::default();
        res.networks.reserved_host_ports = "22,1000-2000".into();
        n.reserved_resources = Some(res);
        assert_eq!(
            allocs_fit(&n, &[&alloc(1, 1, 1, &[1500])]).unwrap_err(),
            DIM_PORT_COLLISION
        );
        assert_eq!(allocs_fit(&n, &[&alloc(1, 1, 1, &[2001])]), Ok(()));
    }

    #[test]
    fn port_spec_parsing_ignores_garbage() {
        assert_eq!(
            parse_port_spec("80, 443,1000-2000,x,9-3,70000"),
            vec![(80, 80), (443, 443), (1000, 2000)]
        );
    }

    fn ask_group(reserved: &[i64], dynamic: usize) -> Vec<NetworkResource> {
        vec![NetworkResource {
            reserved_ports: Some(
                reserved
                    .iter()
                    .map(|v| Port {
                        label: format!("s{v}"),
                        value: *v,
                        to: -1,
                        ..Default::default()
                    })
                    .collect(),
            ),
            dynamic_ports: Some(
                (0..dynamic)
                    .map(|i| Port {
                        label: format!("d{i}"),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }]
    }

    #[test]
    fn reserved_port_collision_is_reported_with_label() {
        let n = node(1000, 1000, 1000);
        let existing = alloc(1, 1, 1, &[8080]);
        let st = NodeState::new(&n, [&existing]);
        let nets = ask_group(&[8080], 0);
        let ask = NetworkAsk {
            group: &nets,
            tasks: vec![],
        };
        let err = st.assign_networks(&ask, &mut rand::rng()).unwrap_err();
        assert_eq!(err, "network: reserved port collision s8080=8080");
        let nets = ask_group(&[9090], 0);
        let ask = NetworkAsk {
            group: &nets,
            tasks: vec![],
        };
        let got = st.assign_networks(&ask, &mut rand::rng()).unwrap();
        assert_eq!(got.ports[0].value, 9090);
        assert_eq!(got.ports[0].to, 9090);
        assert_eq!(got.ports[0].host_ip, "10.0.0.5");
        assert_eq!(got.group[0].ip, "10.0.0.5");
        assert_eq!(got.group[0].device, "eth0");
    }

    #[test]
    fn dynamic_ports_avoid_every_used_port() {
        let mut n = node(1000, 1000, 1000);
        if let Some(r) = n.node_resources.as_mut() {
            r.min_dynamic_port = 30000;
            r.max_dynamic_port = 30009;
        }
        // Eight of ten ports in the range are used; two dynamic ports must get the others.
        let used: Vec<i64> = (30000..30008).collect();
        let existing = alloc(1, 1, 1, &used);
        let st = NodeState::new(&n, [&existing]);
        let nets = ask_group(&[], 2);
        let ask = NetworkAsk {
            group: &nets,
            tasks: vec![],
        };
        for _ in 0..20 {
            let got = st.assign_networks(&ask, &mut rand::rng()).unwrap();
            let mut vals: Vec<i64> = got.ports.iter().map(|p| p.value).collect();
            vals.sort();
            assert_eq!(vals, vec![30008, 30009]);
        }
        let nets = ask_group(&[], 3);
        let ask = NetworkAsk {
            group: &nets,
            tasks: vec![],
        };
        assert_eq!(
            st.assign_networks(&ask, &mut rand::rng()).unwrap_err(),
            DIM_DYNAMIC_PORTS
        );
    }

    #[test]
    fn cheap_port_check_agrees_with_assignment() {
        let mut n = node(1000, 1000, 1000);
        if let Some(r) = n.node_resources.as_mut() {
            r.min_dynamic_port = 30000;
            r.max_dynamic_port = 30009;
        }
        let used: Vec<i64> = (30000..30008).collect();
        let mut st = NodeState::new(&n, [&alloc(1, 1, 1, &used)]);
        let two = ask_group(&[], 2);
        let three = ask_group(&[], 3);
        let ask = |nets| NetworkAsk {
            group: nets,
            tasks: vec![],
        };
        assert_eq!(st.ports_fit(&ask(&two)), Ok(()));
        assert_eq!(st.ports_fit(&ask(&three)).unwrap_err(), DIM_DYNAMIC_PORTS);
        // A static port inside the range uses up one of the free ones.
        let mixed = ask_group(&[30008], 2);
        assert_eq!(st.ports_fit(&ask(&mixed)).unwrap_err(), DIM_DYNAMIC_PORTS);
        let taken = ask_group(&[30001], 0);
        assert!(
            st.ports_fit(&ask(&taken))
                .unwrap_err()
                .contains("collision")
        );
        st.release(Usage::default(), &[30000, 30001]);
        assert_eq!(st.ports_fit(&ask(&three)), Ok(()));
        assert_eq!(st.ports_fit(&ask(&taken)), Ok(()));
    }

    #[test]
    fn default_dynamic_range_and_ip() {
        let n = Node::default();
        let st = NodeState::new(&n, []);
        let nets = ask_group(&[], 1);
        let ask = NetworkAsk {
            group: &nets,
            tasks: vec![],
        };
        let got = st.assign_networks(&ask, &mut rand::rng()).unwrap();
        assert!((20000..=32000).contains(&got.ports[0].value));
        assert_eq!(got.ports[0].host_ip, "127.0.0.1");
    }

    #[test]
    fn node_state_tracks_commits() {
        let n = node(1000, 1000, 1000);
        let mut st = NodeState::new(&n, []);
        let ask = Usage {
            cpu: 400,
            memory_mb: 100,
            disk_mb: 100,
        };
        assert!(st.fits(&ask).is_ok());
        st.commit(ask, &[25000]);
        st.commit(ask, &[]);
        assert_eq!(st.fits(&ask), Err("cpu"));
        assert!(st.port_taken(25000));
    }
}
