//! Subnets for box networks, carved from paddock's own pool.
//!
//! Docker's default address pools hold about thirty bridge networks; a
//! network per box would hit that long before `max_boxes`. So every box
//! network gets an explicit small subnet from `boxes.subnet_pool`.

use std::net::Ipv4Addr;

use crate::CoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SubnetPool {
    base: u32,
    pool_prefix: u8,
    prefix: u8,
}

impl SubnetPool {
    /// `pool` is an IPv4 CIDR; `prefix` the size of each box's subnet.
    pub(crate) fn parse(pool: &str, prefix: u8) -> Result<Self, String> {
        let (addr, len) = pool
            .split_once('/')
            .ok_or_else(|| format!("subnet_pool {pool:?} is not a CIDR like 10.213.0.0/16"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("subnet_pool {pool:?}: {addr:?} is not an IPv4 address"))?;
        let pool_prefix: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= 30)
            .ok_or_else(|| format!("subnet_pool {pool:?}: bad prefix length"))?;
        if !(pool_prefix..=29).contains(&prefix) {
            return Err(format!(
                "subnet_prefix {prefix} must be between the pool's /{pool_prefix} and /29"
            ));
        }
        let mask = u32::MAX
            .checked_shl(32 - u32::from(pool_prefix))
            .unwrap_or(0);
        let base = u32::from(addr);
        if base & !mask != 0 {
            return Err(format!("subnet_pool {pool:?} has host bits set"));
        }
        Ok(Self {
            base,
            pool_prefix,
            prefix,
        })
    }

    pub(crate) fn len(&self) -> u32 {
        1u32 << (self.prefix - self.pool_prefix)
    }

    pub(crate) fn nth(&self, index: u32) -> String {
        let size = 1u32 << (32 - u32::from(self.prefix));
        let addr = Ipv4Addr::from(self.base + index * size);
        format!("{addr}/{}", self.prefix)
    }

    /// The host's address on the `index`th subnet: its first address.
    pub(crate) fn gateway(&self, index: u32) -> Ipv4Addr {
        let size = 1u32 << (32 - u32::from(self.prefix));
        Ipv4Addr::from(self.base + index * size + 1)
    }
}

/// The first address of an `a.b.c.d/len` subnet: where Docker (and paddock)
/// put the host's side of a bridge.
pub(crate) fn first_host(subnet: &str) -> Option<Ipv4Addr> {
    let addr: Ipv4Addr = subnet.split('/').next()?.parse().ok()?;
    Some(Ipv4Addr::from(u32::from(addr) + 1))
}

pub(crate) fn exhausted(pool: &SubnetPool) -> CoreError {
    CoreError::Conflict(format!(
        "no free subnet left in the box subnet pool ({} subnets)",
        pool.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carves_the_pool_in_order() {
        let pool = SubnetPool::parse("10.213.0.0/16", 28).unwrap();
        assert_eq!(pool.len(), 4096);
        assert_eq!(pool.nth(0), "10.213.0.0/28");
        assert_eq!(pool.nth(1), "10.213.0.16/28");
        assert_eq!(pool.nth(4095), "10.213.255.240/28");
        assert_eq!(pool.gateway(1), Ipv4Addr::new(10, 213, 0, 17));
    }

    #[test]
    fn refuses_bad_pools() {
        for (pool, prefix) in [
            ("10.0.0.0", 28),
            ("10.0.0.1/16", 28),
            ("x/16", 28),
            ("10.0.0.0/16", 30),
            ("10.0.0.0/24", 20),
        ] {
            assert!(SubnetPool::parse(pool, prefix).is_err(), "{pool} /{prefix}");
        }
    }
}
