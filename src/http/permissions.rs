//! What every route needs, in one table: the reader finds a route's requirement here, and a
//! `/v1/` route missing from it needs a management token (a forgotten route is closed, not
//! open). Outside `/v1/` only the Cluster API's routes (seed 001) need anything. The ACL
//! layer (`super::acl`) checks these before any handler runs.

use axum::http::Method;

use crate::acl::{NsCap, VarOp};

/// Where the namespace of a namespace-scoped requirement comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsFrom {
    /// `?namespace` (default `default`; `*` for every namespace the caller may see).
    Query,
    /// The `Job.Namespace` of a job registration body, else `?namespace`.
    JobBody,
    /// The namespace of the allocation named by the path.
    Alloc,
    /// The namespace of the evaluation named by the path.
    Eval,
    /// The namespace of the deployment named by the path.
    Deployment,
}

/// What a route needs from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone (health, leader, bootstrap, the internal client RPC).
    Public,
    /// A valid token, whatever it grants (`/v1/acl/token/self`).
    AnyToken,
    /// A valid token; a management token reads any ACL object, another only what it holds
    /// (its own token, the policies it has directly or through its roles, its roles), which
    /// the server's ACL handlers check against the stored token.
    AclHeld,
    /// Any caller, anonymous included, resolved so that the handler can filter what it
    /// returns by the caller's ACL (`/v1/namespaces`).
    Filtered,
    /// A management token.
    Management,
    /// One of these capabilities in a namespace.
    Namespace(NsFrom, &'static [NsCap]),
    /// Exec into a task: `alloc-exec`, plus `alloc-node-exec` when the task is raw_exec.
    AllocExec,
    /// Visibility of the namespace named by the path (any capability in it).
    NamespaceInPath,
    /// This operation on the variable named by the path (`/v1/var/<path>`), in the
    /// namespace a write's body names, else `?namespace`.
    Variable(VarOp),
    NodeRead,
    NodeWrite,
    AgentRead,
    AgentWrite,
    OperatorRead,
    OperatorWrite,
}

use NsCap as C;
use NsFrom::{Alloc, Deployment, Eval, JobBody, Query};

/// The requirement of `method path`.
pub fn need(method: &Method, path: &str) -> Need {
    let read = *method == Method::GET || *method == Method::HEAD;
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if seg.first() != Some(&"v1") {
        return cluster_api_need(read, &seg);
    }
    match &seg[1..] {
        // Nomad checks no token on its metrics endpoint.
        ["agent", "health"] | ["status", ..] | ["regions"] | ["metrics"] => Need::Public,
        ["internal", ..] => Need::Public,
        ["agent", "self"] => Need::AgentRead,
        ["agent", "members"] => Need::NodeRead,
        ["agent", ..] if read => Need::AgentRead,
        ["agent", ..] => Need::AgentWrite,

        ["acl", "bootstrap"] => Need::Public,
        ["acl", "token", "self"] | ["acl", "policy", "self"] => Need::AnyToken,
        ["acl", "token", "onetime"] => Need::AnyToken,
        ["acl", "token", "onetime", "exchange"] => Need::Public,
        ["acl", "policy", _] | ["acl", "token", _] | ["acl", "role", _] if read => Need::AclHeld,
        ["acl", "role", "name", _] if read => Need::AclHeld,
        ["acl", ..] => Need::Management,

        ["jobs"] if read => Need::Namespace(Query, &[C::LIST_JOBS]),
        ["jobs", "parse"] => Need::Namespace(Query, &[C::PARSE_JOB]),
        // The handler also checks each listed job's namespace.
        ["jobs", "statuses"] => Need::Namespace(Query, &[C::READ_JOB]),
        ["validate", "job"] => Need::Namespace(JobBody, &[C::READ_JOB]),
        ["jobs"] => Need::Namespace(JobBody, &[C::SUBMIT_JOB]),
        ["job", rest @ ..] => job_need(method, rest),

        ["allocations"] => Need::Namespace(Query, &[C::READ_JOB]),
        ["allocation", _] => Need::Namespace(Alloc, &[C::READ_JOB]),
        ["allocation", _, "stop"] => Need::Namespace(Alloc, &[C::ALLOC_LIFECYCLE]),
        ["allocation", _, "services" | "checks"] => Need::Namespace(Alloc, &[C::READ_JOB]),

        // Native service discovery: reads need `read-job`, removing an instance
        // `submit-job`, in the namespace asked about, as Nomad has it.
        ["services"] => Need::Namespace(Query, &[C::READ_JOB]),
        ["service", _] if read => Need::Namespace(Query, &[C::READ_JOB]),
        ["service", _, _] if *method == Method::DELETE => Need::Namespace(Query, &[C::SUBMIT_JOB]),

        // The handlers narrow these: Nomad wants list-scaling-policies, or list-jobs and
        // read-job together, which one capability list cannot say.
        ["scaling", "policies"] => Need::Namespace(Query, &[C::LIST_SCALING_POLICIES, C::READ_JOB]),
        ["scaling", "policy", _] => Need::Namespace(
            Query,
            &[
                C::READ_SCALING_POLICY,
                C::LIST_SCALING_POLICIES,
                C::READ_JOB,
            ],
        ),

        ["evaluations"] | ["evaluations", "count"] => Need::Namespace(Query, &[C::READ_JOB]),
        ["evaluation", _] | ["evaluation", _, "allocations"] => {
            Need::Namespace(Eval, &[C::READ_JOB])
        }

        ["deployments"] => Need::Namespace(Query, &[C::READ_JOB]),
        ["deployment", _] | ["deployment", "allocations", _] if read => {
            Need::Namespace(Deployment, &[C::READ_JOB])
        }
        [
            "deployment",
            "fail" | "pause" | "promote" | "allocation-health" | "unblock",
            _,
        ] => Need::Namespace(Deployment, &[C::SUBMIT_JOB]),

        ["nodes"] | ["node", ..] if read => Need::NodeRead,
        ["node", ..] => Need::NodeWrite,

        // The handlers check the token against what is asked (topics and namespaces,
        // search contexts) and filter what they answer, as Nomad does.
        ["event", "stream"] => Need::Filtered,
        ["search"] | ["search", "fuzzy"] => Need::Filtered,

        ["namespaces"] => Need::Filtered,
        ["namespace", _] if read => Need::NamespaceInPath,
        ["namespace", ..] => Need::Management,

        // A list shows only the paths the caller may list (the handler filters).
        ["vars"] => Need::Filtered,
        ["var", ..] if read => Need::Variable(VarOp::Read),
        ["var", ..] if *method == Method::DELETE => Need::Variable(VarOp::Destroy),
        // Lock acquire, renew and release are writes too, as in Nomad.
        ["var", ..] => Need::Variable(VarOp::Write),

        // `/v1/operator/keyring/keys` reads; `rotate` and `key/<id>` write.
        ["operator", ..] if read => Need::OperatorRead,
        ["operator", ..] => Need::OperatorWrite,

        ["client", "allocation", _, "exec"] => Need::AllocExec,
        ["client", "allocation", _, "signal" | "restart"] => {
            Need::Namespace(Alloc, &[C::ALLOC_LIFECYCLE])
        }
        ["client", "allocation", _, "stats" | "checks"] => Need::Namespace(Alloc, &[C::READ_JOB]),
        ["client", "fs", "logs", _] => Need::Namespace(Alloc, &[C::READ_LOGS]),
        ["client", "fs", _, _] => Need::Namespace(Alloc, &[C::READ_FS]),
        ["client", "stats"] => Need::NodeRead,
        ["client", "gc"] => Need::NodeWrite,
        ["client", "allocation", _, "gc"] => Need::Namespace(Alloc, &[C::SUBMIT_JOB]),

        // Forced garbage collection and summary repair are operator duties.
        ["system", ..] => Need::Management,

        _ => Need::Management,
    }
}

/// The Cluster API (seed 001) needs what the `/v1` calls it stands for need, in
/// `?namespace` (the namespace whose templates it acts on): reads as `GET /v1/job/:id`,
/// starts and stops as registering and deregistering, count changes as
/// `POST /v1/job/:id/scale`. Every other path outside `/v1/` is public.
fn cluster_api_need(read: bool, seg: &[&str]) -> Need {
    match seg {
        ["jobs"] | ["job", _, "summary"] if read => Need::Namespace(Query, &[C::READ_JOB]),
        ["jobs", "start" | "stop", _] | ["jobs", "startall" | "stopall"] if !read => {
            Need::Namespace(Query, &[C::SUBMIT_JOB])
        }
        ["jobs", "updatecounts" | "settaskgroupcount"] if !read => {
            Need::Namespace(Query, &[C::SCALE_JOB, C::SUBMIT_JOB])
        }
        _ => Need::Public,
    }
}

/// `/v1/job/<id>[/<sub>]`: job IDs may hold `/`, so the sub-resource is the last segment
/// when it is one the API knows.
fn job_need(method: &Method, rest: &[&str]) -> Need {
    let read = *method == Method::GET || *method == Method::HEAD;
    let (last, before) = match rest {
        [] => return Need::Namespace(Query, &[C::READ_JOB]),
        [.., before, last] => (*last, Some(*before)),
        [last] => (*last, None),
    };
    let sub = if rest.len() < 2 { "" } else { last };
    match sub {
        "force" if before == Some("periodic") => Need::Namespace(Query, &[C::SUBMIT_JOB]),
        "tag" if rest.len() >= 4 && rest[rest.len() - 3] == "versions" => {
            Need::Namespace(Query, &[C::SUBMIT_JOB, C::TAG_JOB_VERSION])
        }
        "allocations" | "evaluations" | "summary" | "versions" | "deployments" | "deployment"
        | "services" => Need::Namespace(Query, &[C::READ_JOB]),
        "scale" if read => Need::Namespace(Query, &[C::READ_JOB_SCALING, C::READ_JOB]),
        "scale" => Need::Namespace(Query, &[C::SCALE_JOB, C::SUBMIT_JOB]),
        "dispatch" => Need::Namespace(Query, &[C::DISPATCH_JOB]),
        "plan" => Need::Namespace(JobBody, &[C::SUBMIT_JOB]),
        "evaluate" | "revert" | "stable" => Need::Namespace(Query, &[C::SUBMIT_JOB]),
        _ if read => Need::Namespace(Query, &[C::READ_JOB]),
        _ if *method == Method::DELETE => Need::Namespace(Query, &[C::SUBMIT_JOB]),
        _ => Need::Namespace(JobBody, &[C::SUBMIT_JOB]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(m: Method, p: &str) -> Need {
        need(&m, p)
    }

    #[test]
    fn routes_map_to_their_requirements() {
        use Method as M;
        assert_eq!(
            n(M::GET, "/v1/jobs"),
            Need::Namespace(Query, &[C::LIST_JOBS])
        );
        assert_eq!(
            n(M::PUT, "/v1/jobs"),
            Need::Namespace(JobBody, &[C::SUBMIT_JOB])
        );
        assert_eq!(
            n(M::GET, "/v1/job/web"),
            Need::Namespace(Query, &[C::READ_JOB])
        );
        assert_eq!(
            n(M::GET, "/v1/job/a/b/allocations"),
            Need::Namespace(Query, &[C::READ_JOB])
        );
        assert_eq!(
            n(M::DELETE, "/v1/job/web"),
            Need::Namespace(Query, &[C::SUBMIT_JOB])
        );
        assert_eq!(
            n(M::POST, "/v1/job/web"),
            Need::Namespace(JobBody, &[C::SUBMIT_JOB])
        );
        assert_eq!(
            n(M::POST, "/v1/job/web/dispatch"),
            Need::Namespace(Query, &[C::DISPATCH_JOB])
        );
        assert_eq!(
            n(M::POST, "/v1/job/web/periodic/force"),
            Need::Namespace(Query, &[C::SUBMIT_JOB])
        );
        for m in [M::PUT, M::DELETE] {
            assert_eq!(
                n(m, "/v1/job/web/versions/golden/tag"),
                Need::Namespace(Query, &[C::SUBMIT_JOB, C::TAG_JOB_VERSION])
            );
        }
        assert_eq!(
            n(M::GET, "/v1/allocation/x"),
            Need::Namespace(Alloc, &[C::READ_JOB])
        );
        assert_eq!(n(M::GET, "/v1/client/allocation/x/exec"), Need::AllocExec);
        assert_eq!(
            n(M::GET, "/v1/client/fs/logs/x"),
            Need::Namespace(Alloc, &[C::READ_LOGS])
        );
        assert_eq!(
            n(M::GET, "/v1/client/fs/cat/x"),
            Need::Namespace(Alloc, &[C::READ_FS])
        );
        assert_eq!(
            n(M::POST, "/v1/client/allocation/x/restart"),
            Need::Namespace(Alloc, &[C::ALLOC_LIFECYCLE])
        );
        assert_eq!(
            n(M::GET, "/v1/deployments"),
            Need::Namespace(Query, &[C::READ_JOB])
        );
        for p in ["/v1/deployment/d1", "/v1/deployment/allocations/d1"] {
            assert_eq!(n(M::GET, p), Need::Namespace(Deployment, &[C::READ_JOB]));
        }
        for op in ["fail", "pause", "promote", "allocation-health", "unblock"] {
            assert_eq!(
                n(M::POST, &format!("/v1/deployment/{op}/d1")),
                Need::Namespace(Deployment, &[C::SUBMIT_JOB])
            );
        }
        assert_eq!(n(M::POST, "/v1/deployment/d1"), Need::Management);
        assert_eq!(n(M::GET, "/v1/nodes"), Need::NodeRead);
        assert_eq!(n(M::POST, "/v1/node/x/drain"), Need::NodeWrite);
        assert_eq!(n(M::PUT, "/v1/system/gc"), Need::Management);
        assert_eq!(n(M::PUT, "/v1/client/gc"), Need::NodeWrite);
        assert_eq!(
            n(M::PUT, "/v1/client/allocation/x/gc"),
            Need::Namespace(Alloc, &[C::SUBMIT_JOB])
        );
        assert_eq!(n(M::GET, "/v1/agent/self"), Need::AgentRead);
        assert_eq!(n(M::GET, "/v1/agent/health"), Need::Public);
        assert_eq!(n(M::GET, "/v1/agent/servers"), Need::AgentRead);
        assert_eq!(n(M::PUT, "/v1/agent/servers"), Need::AgentWrite);
        assert_eq!(n(M::GET, "/v1/metrics"), Need::Public);
        assert_eq!(
            n(M::POST, "/v1/jobs/statuses"),
            Need::Namespace(Query, &[C::READ_JOB])
        );
        assert_eq!(
            n(M::GET, "/v1/evaluations/count"),
            Need::Namespace(Query, &[C::READ_JOB])
        );
        assert_eq!(n(M::POST, "/v1/acl/bootstrap"), Need::Public);
        assert_eq!(n(M::GET, "/v1/acl/token/self"), Need::AnyToken);
        assert_eq!(n(M::GET, "/v1/acl/tokens"), Need::Management);
        assert_eq!(n(M::GET, "/v1/namespaces"), Need::Filtered);
        assert_eq!(n(M::GET, "/v1/event/stream"), Need::Filtered);
        assert_eq!(n(M::POST, "/v1/search"), Need::Filtered);
        assert_eq!(n(M::PUT, "/v1/search/fuzzy"), Need::Filtered);
        assert_eq!(n(M::GET, "/v1/acl/policy/readers"), Need::AclHeld);
        assert_eq!(n(M::GET, "/v1/acl/role/name/ops"), Need::AclHeld);
        assert_eq!(n(M::GET, "/v1/acl/token/abc"), Need::AclHeld);
        assert_eq!(n(M::DELETE, "/v1/acl/token/abc"), Need::Management);
        assert_eq!(n(M::GET, "/v1/acl/tokens"), Need::Management);
        assert_eq!(
            n(M::POST, "/v1/validate/job"),
            Need::Namespace(JobBody, &[C::READ_JOB])
        );
        assert_eq!(n(M::GET, "/v1/namespace/dev"), Need::NamespaceInPath);
        assert_eq!(n(M::POST, "/v1/namespace/dev"), Need::Management);
        assert_eq!(
            n(M::GET, "/v1/operator/raft/configuration"),
            Need::OperatorRead
        );
        assert_eq!(n(M::POST, "/v1/internal/node/register"), Need::Public);
        assert_eq!(n(M::POST, "/v1/internal/services/sync"), Need::Public);
        let read_job = Need::Namespace(Query, &[C::READ_JOB]);
        assert_eq!(n(M::GET, "/v1/services"), read_job);
        assert_eq!(n(M::GET, "/v1/service/web"), read_job);
        assert_eq!(n(M::GET, "/v1/job/web/services"), read_job);
        assert_eq!(
            n(M::DELETE, "/v1/service/web/id-1"),
            Need::Namespace(Query, &[C::SUBMIT_JOB])
        );
        assert_eq!(n(M::PUT, "/v1/service/web/id-1"), Need::Management);
        for path in [
            "/v1/allocation/a1/services",
            "/v1/allocation/a1/checks",
            "/v1/client/allocation/a1/checks",
        ] {
            assert_eq!(n(M::GET, path), Need::Namespace(Alloc, &[C::READ_JOB]));
        }
        assert_eq!(n(M::GET, "/v1/vars"), Need::Filtered);
        assert_eq!(n(M::GET, "/v1/var/a/b"), Need::Variable(VarOp::Read));
        assert_eq!(n(M::PUT, "/v1/var/a/b"), Need::Variable(VarOp::Write));
        assert_eq!(n(M::POST, "/v1/var/a"), Need::Variable(VarOp::Write));
        assert_eq!(n(M::DELETE, "/v1/var/a"), Need::Variable(VarOp::Destroy));
        assert_eq!(n(M::GET, "/v1/operator/keyring/keys"), Need::OperatorRead);
        assert_eq!(
            n(M::PUT, "/v1/operator/keyring/rotate"),
            Need::OperatorWrite
        );
        assert_eq!(
            n(M::DELETE, "/v1/operator/keyring/key/abc"),
            Need::OperatorWrite
        );
    }

    #[test]
    fn cluster_api_routes_need_what_their_v1_calls_need() {
        use Method as M;
        let read = Need::Namespace(Query, &[C::READ_JOB]);
        let submit = Need::Namespace(Query, &[C::SUBMIT_JOB]);
        let scale = Need::Namespace(Query, &[C::SCALE_JOB, C::SUBMIT_JOB]);
        assert_eq!(n(M::GET, "/jobs"), read);
        assert_eq!(n(M::GET, "/job/web/summary"), read);
        assert_eq!(n(M::POST, "/jobs/start/web"), submit);
        assert_eq!(n(M::POST, "/jobs/stop/web"), submit);
        assert_eq!(n(M::POST, "/jobs/startall"), submit);
        assert_eq!(n(M::POST, "/jobs/stopall"), submit);
        assert_eq!(n(M::POST, "/jobs/updatecounts"), scale);
        assert_eq!(n(M::POST, "/jobs/settaskgroupcount"), scale);
        assert_eq!(n(M::GET, "/other"), Need::Public);
    }

    #[test]
    fn an_unlisted_route_needs_management() {
        assert_eq!(n(Method::GET, "/v1/something/new"), Need::Management);
        assert_eq!(n(Method::GET, "/ui/"), Need::Public);
    }
}
