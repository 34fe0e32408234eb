//! The parsed reply of `CLUSTER NODES`, for [`PrivateRedisCluster`](super::PrivateRedisCluster)'s questions
//! about who serves what.

/// One line of a `CLUSTER NODES` reply: `<id> <ip:port@bus[,hostname]> <flags> <master> <ping> <pong> <epoch>
/// <link> <slot ranges>...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeLine {
    /// The node id.
    pub(crate) id: String,
    /// The client port (the TLS port of a TLS-only node).
    pub(crate) port: u16,
    /// Whether the flags say `master` (and not `fail` or `fail?`).
    pub(crate) is_master: bool,
    /// Whether the flags say `slave` (a replica).
    pub(crate) is_replica: bool,
    /// Whether the flags say `fail` or `fail?`.
    pub(crate) failed: bool,
    /// The id of a replica's master (`-` for a master).
    pub(crate) master_id: String,
    /// The slot ranges a master serves (`start..=end`); importing/migrating entries (`[...]`) are left out.
    pub(crate) slots: Vec<(u16, u16)>,
}

impl NodeLine {
    /// Whether this node is a master serving `slot`.
    pub(crate) fn serves(&self, slot: u16) -> bool {
        self.is_master && self.slots.iter().any(|(start, end)| (*start..=*end).contains(&slot))
    }
}

/// Every well-formed line of a `CLUSTER NODES` reply; lines that do not parse are skipped.
pub(crate) fn parse(reply: &str) -> Vec<NodeLine> {
    reply.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<NodeLine> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 8 {
        return None;
    }
    let address = fields[1].split(['@', ',']).next()?;
    let port = address.rsplit_once(':')?.1.parse().ok()?;
    let flags: Vec<&str> = fields[2].split(',').collect();
    let failed = flags.iter().any(|f| *f == "fail" || *f == "fail?");
    let slots = fields[8..]
        .iter()
        .filter(|range| !range.starts_with('['))
        .filter_map(|range| match range.split_once('-') {
            Some((start, end)) => Some((start.parse().ok()?, end.parse().ok()?)),
            None => range.parse().ok().map(|only| (only, only)),
        })
        .collect();
    Some(NodeLine {
        id: fields[0].to_owned(),
        port,
        is_master: flags.contains(&"master") && !failed,
        is_replica: flags.contains(&"slave"),
        failed,
        master_id: fields[3].to_owned(),
        slots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_parsed_with_roles_masters_and_slots() {
        let reply = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 [5461->-b2]
b2 127.0.0.1:7001@17001,host-b master - 0 0 2 connected 5461-10922 16000
c3 127.0.0.1:7002@17002 master,fail - 0 0 3 disconnected
d4 127.0.0.1:7003@17003 slave a1 0 0 1 connected
garbage
";
        let nodes = parse(reply);
        assert_eq!(nodes.len(), 4);
        assert_eq!((nodes[0].port, nodes[0].is_master, nodes[0].slots.clone()), (7000, true, vec![(0, 5460)]));
        assert!(nodes[1].serves(16000) && nodes[1].serves(5461) && !nodes[1].serves(5460));
        assert!(nodes[2].failed && !nodes[2].is_master);
        assert!(nodes[3].is_replica && !nodes[3].is_master);
        assert_eq!(nodes[3].master_id, "a1");
    }
}
