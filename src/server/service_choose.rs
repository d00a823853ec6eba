//! `?choose=<n>|<key>` of `/v1/service/:name`: Nomad's rendezvous hashing, which gives each
//! caller key a stable subset of a service's instances and spreads different keys over
//! different instances.

use crate::structs::service::ServiceRegistration;

/// Nomad's refusal of a malformed `?choose=`.
pub const MALFORMED_CHOOSE: &str = "Parameter for choose must be in form '<number>|<key>'";

/// The rank of `reg` for `key` (Nomad's `HashWith`): a SHA-256 over the port (8 bytes, big
/// endian), the allocation and registration IDs, namespace, address, name, tags and key.
pub fn hash_with(reg: &ServiceRegistration, key: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&(reg.port as u64).to_be_bytes());
    ctx.update(reg.alloc_id.as_bytes());
    ctx.update(reg.id.as_bytes());
    ctx.update(reg.namespace.as_bytes());
    ctx.update(reg.address.as_bytes());
    ctx.update(reg.service_name.as_bytes());
    for tag in &reg.tags {
        ctx.update(tag.as_bytes());
    }
    ctx.update(key.as_bytes());
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks a `?choose=` value; its count and key.
pub fn parse(param: &str) -> Result<(usize, &str), &'static str> {
    let (n, key) = param.split_once('|').ok_or(MALFORMED_CHOOSE)?;
    let n: usize = n.parse().map_err(|_| MALFORMED_CHOOSE)?;
    if key.is_empty() {
        return Err(MALFORMED_CHOOSE);
    }
    Ok((n, key))
}

/// The `n` instances that rank first for `key` (all of them when there are fewer).
pub fn choose(
    services: Vec<ServiceRegistration>,
    param: &str,
) -> Result<Vec<ServiceRegistration>, &'static str> {
    let (n, key) = parse(param)?;
    let mut ranked: Vec<(String, ServiceRegistration)> = services
        .into_iter()
        .map(|s| (hash_with(&s, key), s))
        .collect();
    ranked.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(ranked.into_iter().take(n).map(|(_, s)| s).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(id: &str, port: i64) -> ServiceRegistration {
        ServiceRegistration {
            id: id.into(),
            service_name: "web".into(),
            namespace: "default".into(),
            alloc_id: format!("alloc-{id}"),
            address: "127.0.0.1".into(),
            port,
            ..Default::default()
        }
    }

    #[test]
    fn choose_is_stable_and_bounded() {
        let all: Vec<_> = (0..6).map(|i| reg(&format!("s{i}"), 8000 + i)).collect();
        let a = choose(all.clone(), "2|client-a").unwrap();
        let b = choose(all.iter().rev().cloned().collect(), "2|client-a").unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(
            a, b,
            "the same key picks the same instances whatever the order"
        );
        assert_eq!(choose(all.clone(), "10|k").unwrap().len(), 6);
        // Different keys spread the load: not every key picks the same first instance.
        let firsts: std::collections::BTreeSet<String> = (0..20)
            .map(|k| {
                choose(all.clone(), &format!("1|key{k}")).unwrap()[0]
                    .id
                    .clone()
            })
            .collect();
        assert!(firsts.len() > 1);
    }

    #[test]
    fn choose_refuses_malformed_parameters() {
        for bad in ["", "2", "x|key", "2|", "-1|key"] {
            assert_eq!(
                choose(vec![reg("a", 1)], bad),
                Err(MALFORMED_CHOOSE),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_hash_is_nomads() {
        // SHA-256 of 8 zero-padded port bytes then the strings, as Go's HashWith writes them.
        let r = reg("id", 1);
        let mut bytes = 1u64.to_be_bytes().to_vec();
        for s in ["alloc-id", "id", "default", "127.0.0.1", "web", "k"] {
            bytes.extend_from_slice(s.as_bytes());
        }
        let want: String = ring::digest::digest(&ring::digest::SHA256, &bytes)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hash_with(&r, "k"), want);
    }
}
