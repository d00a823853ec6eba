//! Allocations on a node that stopped heartbeating but may come back (`disconnect {
//! lost_after }` / `max_client_disconnect`), as Nomad handles them: while the node is
//! disconnected they are `unknown`, not lost, and replaced unless `disconnect { replace =
//! false }`; past the window they are lost; when their client returns in time with them
//! still running, they are kept and their replacements stopped.

use std::collections::HashMap;
use std::sync::Arc;

use crate::structs::{AllocClientStatus, Allocation, TaskGroup};

/// Client description of an allocation whose node is disconnected.
pub const DESC_UNKNOWN: &str = "alloc is unknown since its node is disconnected";
/// Stop reason of the replacement of an allocation whose client came back.
pub const DESC_RECONNECTED: &str = "alloc not needed due to disconnected client reconnect";
/// Trigger of the evaluation that marks unknown allocations lost when their window ends.
pub const TRIGGER_MAX_DISCONNECT_TIMEOUT: &str = "max-disconnect-timeout";

/// Where an allocation stands with respect to a disconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Not concerned: classify it as usual.
    Normal,
    /// On a disconnected node and still thought running: mark it unknown (and replace it).
    Disconnecting,
    /// On a disconnected node with no window to wait out (or not started yet): lost.
    Lost,
    /// Unknown and its window just ended: lost.
    Expired,
    /// Unknown and replaced: the replacement holds its name.
    Replaced,
    /// Unknown, not replaced: it keeps its name while it waits.
    Waiting,
}

/// The live replacements of allocations, by the ID of the allocation each replaces.
pub fn replacements<'a>(allocs: &[&'a Arc<Allocation>]) -> HashMap<&'a str, &'a Arc<Allocation>> {
    allocs
        .iter()
        .filter(|a| !a.terminal() && !a.previous_allocation.is_empty())
        .map(|a| (a.previous_allocation.as_str(), *a))
        .collect()
}

/// How `a` stands, given whether its node is disconnected, whether a live replacement
/// exists, and the evaluation being processed.
pub fn standing(
    a: &Allocation,
    tg: &TaskGroup,
    node_disconnected: bool,
    replaced: bool,
    eval_id: &str,
) -> Standing {
    if a.terminal() {
        return Standing::Normal;
    }
    if a.client_status == AllocClientStatus::Unknown {
        return if node_disconnected && a.followup_eval_id == eval_id {
            Standing::Expired
        } else if replaced {
            Standing::Replaced
        } else {
            Standing::Waiting
        };
    }
    if !node_disconnected {
        return Standing::Normal;
    }
    let window = a.group().unwrap_or(tg).disconnect_lost_after();
    if window.is_none() || a.client_status == AllocClientStatus::Pending {
        Standing::Lost
    } else {
        Standing::Disconnecting
    }
}

/// Whether `a`, replaced while its node was disconnected, has been reported running (or
/// starting) by its returned client: it is kept and its replacement goes.
pub fn reconnected(a: &Allocation, node_ok: bool, replaced: bool) -> bool {
    node_ok
        && replaced
        && !a.terminal()
        && matches!(
            a.client_status,
            AllocClientStatus::Running | AllocClientStatus::Pending
        )
}

/// The window of `a`'s group, in nanoseconds (0 when none).
pub fn window(a: &Allocation, tg: &TaskGroup) -> i64 {
    a.group().unwrap_or(tg).disconnect_lost_after().unwrap_or(0)
}

/// Whether `a`'s group replaces allocations while they wait.
pub fn replace(a: &Allocation, tg: &TaskGroup) -> bool {
    a.group().unwrap_or(tg).replace_on_disconnect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(lost_after: Option<i64>) -> TaskGroup {
        TaskGroup {
            name: "g".into(),
            max_client_disconnect: lost_after,
            ..Default::default()
        }
    }

    fn alloc(status: AllocClientStatus) -> Allocation {
        Allocation {
            id: "a".into(),
            task_group: "g".into(),
            client_status: status,
            ..Default::default()
        }
    }

    #[test]
    fn standings() {
        let with = group(Some(60_000_000_000));
        let without = group(None);
        let running = alloc(AllocClientStatus::Running);
        assert_eq!(
            standing(&running, &with, false, false, "e"),
            Standing::Normal
        );
        assert_eq!(
            standing(&running, &with, true, false, "e"),
            Standing::Disconnecting
        );
        assert_eq!(
            standing(&running, &without, true, false, "e"),
            Standing::Lost
        );
        let pending = alloc(AllocClientStatus::Pending);
        assert_eq!(standing(&pending, &with, true, false, "e"), Standing::Lost);
        let mut unknown = alloc(AllocClientStatus::Unknown);
        assert_eq!(
            standing(&unknown, &with, true, true, "e"),
            Standing::Replaced
        );
        assert_eq!(
            standing(&unknown, &with, true, false, "e"),
            Standing::Waiting
        );
        unknown.followup_eval_id = "e".into();
        assert_eq!(
            standing(&unknown, &with, true, true, "e"),
            Standing::Expired
        );
        // Back on a ready node before its window ended: not expired, still replaced until
        // its client reports.
        assert_eq!(
            standing(&unknown, &with, false, true, "e"),
            Standing::Replaced
        );
        assert!(reconnected(&running, true, true));
        assert!(!reconnected(&running, false, true));
        assert!(!reconnected(&unknown, true, true));
    }

    #[test]
    fn disconnect_block_overrides_max_client_disconnect() {
        let mut g = group(Some(5));
        g.disconnect = Some(Box::new(
            serde_json::json!({"LostAfter": 7, "Replace": false}),
        ));
        assert_eq!(g.disconnect_lost_after(), Some(7));
        assert!(!g.replace_on_disconnect());
        assert!(group(None).replace_on_disconnect());
        assert_eq!(group(Some(0)).disconnect_lost_after(), None);
    }
}
