//! The shape of a jobspec: which arguments and nested blocks each block accepts, and the API
//! field each one fills. Names follow Nomad's `api` package (the JSON job of seed 003).

/// How an argument's value is converted into the API's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Str,
    Int,
    Bool,
    /// A Go duration string (`"10s"`) or a number of nanoseconds.
    Dur,
    StrList,
    /// `map(string)`; also accepted as a block of arguments (`meta { k = "v" }`).
    StrMap,
    /// Any value kept as it evaluates (driver `config`, check `header`, ...).
    Any,
}

/// One argument: its HCL name, its API field and its type.
#[derive(Debug)]
pub struct Attr {
    pub hcl: &'static str,
    pub api: &'static str,
    pub ty: Ty,
}

/// How repeated blocks of one type are collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Multi {
    /// At most one block; an object.
    One,
    /// Any number of blocks; a list.
    List,
    /// Any number of labelled blocks; an object keyed by label.
    Map,
}

/// A nested block type.
#[derive(Debug)]
pub struct Blk {
    pub hcl: &'static str,
    pub api: &'static str,
    pub multi: Multi,
    /// The API field the block's single label fills; `None` for blocks without a label.
    pub label: Option<&'static str>,
    pub spec: &'static Spec,
}

/// How a block body is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Known arguments and blocks only.
    Fields,
    /// Arbitrary arguments kept with their keys; nested blocks become lists of objects
    /// (Nomad reads driver `config` this way).
    Free,
    /// Arguments only, each a string (`meta`, `env`, artifact `options`).
    StrMap,
    /// Arbitrary arguments and blocks named in snake_case, turned into API field names
    /// (deep, rarely-used trees such as Consul Connect).
    Generic,
}

#[derive(Debug)]
pub struct Spec {
    pub kind: Kind,
    pub attrs: &'static [Attr],
    pub blocks: &'static [Blk],
}

impl Spec {
    pub fn attr(&self, name: &str) -> Option<&'static Attr> {
        self.attrs.iter().find(|a| a.hcl == name)
    }

    pub fn block(&self, name: &str) -> Option<&'static Blk> {
        self.blocks.iter().find(|b| b.hcl == name)
    }

    /// The names this block accepts, for error messages.
    pub fn expected(&self) -> String {
        let mut names: Vec<&str> = self.attrs.iter().map(|a| a.hcl).collect();
        names.extend(self.blocks.iter().map(|b| b.hcl));
        names.join(", ")
    }
}

const fn a(hcl: &'static str, api: &'static str, ty: Ty) -> Attr {
    Attr { hcl, api, ty }
}

const fn b(hcl: &'static str, api: &'static str, multi: Multi, spec: &'static Spec) -> Blk {
    Blk {
        hcl,
        api,
        multi,
        label: None,
        spec,
    }
}

const fn lb(
    hcl: &'static str,
    api: &'static str,
    multi: Multi,
    label: &'static str,
    spec: &'static Spec,
) -> Blk {
    Blk {
        hcl,
        api,
        multi,
        label: Some(label),
        spec,
    }
}

const fn fields(attrs: &'static [Attr], blocks: &'static [Blk]) -> Spec {
    Spec {
        kind: Kind::Fields,
        attrs,
        blocks,
    }
}

use Multi::{List, Map, One};
use Ty::*;

pub static STR_MAP: Spec = Spec {
    kind: Kind::StrMap,
    attrs: &[],
    blocks: &[],
};
pub static FREE: Spec = Spec {
    kind: Kind::Free,
    attrs: &[],
    blocks: &[],
};
pub static GENERIC: Spec = Spec {
    kind: Kind::Generic,
    attrs: &[],
    blocks: &[],
};

/// Constraints and affinities: `attribute`/`operator`/`value` plus the operator shorthands
/// (decoded specially, see `decode::constraint`).
pub static CONSTRAINT: Spec = fields(
    &[
        a("attribute", "LTarget", Str),
        a("operator", "Operand", Str),
        a("value", "RTarget", Str),
        a("version", "version", Str),
        a("semver", "semver", Str),
        a("regexp", "regexp", Str),
        a("set_contains", "set_contains", Str),
        a("set_contains_all", "set_contains_all", Str),
        a("set_contains_any", "set_contains_any", Str),
        a("distinct_hosts", "distinct_hosts", Bool),
        a("distinct_property", "distinct_property", Str),
    ],
    &[],
);
pub static AFFINITY: Spec = fields(
    &[
        a("attribute", "LTarget", Str),
        a("operator", "Operand", Str),
        a("value", "RTarget", Str),
        a("weight", "Weight", Int),
        a("version", "version", Str),
        a("semver", "semver", Str),
        a("regexp", "regexp", Str),
        a("set_contains", "set_contains", Str),
        a("set_contains_all", "set_contains_all", Str),
        a("set_contains_any", "set_contains_any", Str),
    ],
    &[],
);

static SPREAD_TARGET: Spec = fields(&[a("percent", "Percent", Int)], &[]);
static SPREAD: Spec = fields(
    &[a("attribute", "Attribute", Str), a("weight", "Weight", Int)],
    &[lb("target", "SpreadTarget", List, "Value", &SPREAD_TARGET)],
);

static UPDATE: Spec = fields(
    &[
        a("stagger", "Stagger", Dur),
        a("max_parallel", "MaxParallel", Int),
        a("health_check", "HealthCheck", Str),
        a("min_healthy_time", "MinHealthyTime", Dur),
        a("healthy_deadline", "HealthyDeadline", Dur),
        a("progress_deadline", "ProgressDeadline", Dur),
        a("canary", "Canary", Int),
        a("auto_revert", "AutoRevert", Bool),
        a("auto_promote", "AutoPromote", Bool),
    ],
    &[],
);
static MIGRATE: Spec = fields(
    &[
        a("max_parallel", "MaxParallel", Int),
        a("health_check", "HealthCheck", Str),
        a("min_healthy_time", "MinHealthyTime", Dur),
        a("healthy_deadline", "HealthyDeadline", Dur),
    ],
    &[],
);
static RESCHEDULE: Spec = fields(
    &[
        a("attempts", "Attempts", Int),
        a("interval", "Interval", Dur),
        a("delay", "Delay", Dur),
        a("delay_function", "DelayFunction", Str),
        a("max_delay", "MaxDelay", Dur),
        a("unlimited", "Unlimited", Bool),
    ],
    &[],
);
static RESTART: Spec = fields(
    &[
        a("interval", "Interval", Dur),
        a("attempts", "Attempts", Int),
        a("delay", "Delay", Dur),
        a("mode", "Mode", Str),
        a("render_templates", "RenderTemplates", Bool),
    ],
    &[],
);
static PERIODIC: Spec = fields(
    &[
        a("enabled", "Enabled", Bool),
        a("cron", "Spec", Str),
        a("crons", "Specs", StrList),
        a("prohibit_overlap", "ProhibitOverlap", Bool),
        a("time_zone", "TimeZone", Str),
    ],
    &[],
);
static PARAMETERIZED: Spec = fields(
    &[
        a("payload", "Payload", Str),
        a("meta_required", "MetaRequired", StrList),
        a("meta_optional", "MetaOptional", StrList),
    ],
    &[],
);
static MULTIREGION_STRATEGY: Spec = fields(
    &[
        a("max_parallel", "MaxParallel", Int),
        a("on_failure", "OnFailure", Str),
    ],
    &[],
);
static MULTIREGION_REGION: Spec = fields(
    &[
        a("count", "Count", Int),
        a("datacenters", "Datacenters", StrList),
        a("node_pool", "NodePool", Str),
        a("meta", "Meta", StrMap),
    ],
    &[],
);
static MULTIREGION: Spec = fields(
    &[],
    &[
        b("strategy", "Strategy", One, &MULTIREGION_STRATEGY),
        lb("region", "Regions", List, "Name", &MULTIREGION_REGION),
    ],
);
static UI_LINK: Spec = fields(&[a("label", "Label", Str), a("url", "URL", Str)], &[]);
static UI: Spec = fields(
    &[a("description", "Description", Str)],
    &[b("link", "Links", List, &UI_LINK)],
);
static EPHEMERAL_DISK: Spec = fields(
    &[
        a("sticky", "Sticky", Bool),
        a("migrate", "Migrate", Bool),
        a("size", "SizeMB", Int),
    ],
    &[],
);
static DISCONNECT: Spec = fields(
    &[
        a("lost_after", "LostAfter", Dur),
        a("stop_on_client_after", "StopOnClientAfter", Dur),
        a("replace", "Replace", Bool),
        a("reconcile", "Reconcile", Str),
    ],
    &[],
);
static CONSUL: Spec = fields(
    &[
        a("namespace", "Namespace", Str),
        a("cluster", "Cluster", Str),
        a("partition", "Partition", Str),
    ],
    &[],
);
/// A group's `scaling` block (horizontal: `max` is required).
pub static SCALING: Spec = fields(
    &[
        a("min", "Min", Int),
        a("max", "Max", Int),
        a("enabled", "Enabled", Bool),
        a("type", "Type", Str),
    ],
    &[b("policy", "Policy", One, &FREE)],
);
static MOUNT_OPTIONS: Spec = fields(
    &[
        a("fs_type", "FSType", Str),
        a("mount_flags", "MountFlags", StrList),
    ],
    &[],
);
static VOLUME: Spec = fields(
    &[
        a("type", "Type", Str),
        a("source", "Source", Str),
        a("read_only", "ReadOnly", Bool),
        a("sticky", "Sticky", Bool),
        a("access_mode", "AccessMode", Str),
        a("attachment_mode", "AttachmentMode", Str),
        a("per_alloc", "PerAlloc", Bool),
    ],
    &[b("mount_options", "MountOptions", One, &MOUNT_OPTIONS)],
);
static DNS: Spec = fields(
    &[
        a("servers", "Servers", StrList),
        a("searches", "Searches", StrList),
        a("options", "Options", StrList),
    ],
    &[],
);
static CNI: Spec = fields(&[a("args", "Args", StrMap)], &[]);
static PORT: Spec = fields(
    &[
        a("static", "Value", Int),
        a("to", "To", Int),
        a("host_network", "HostNetwork", Str),
        a("ignore_collision", "IgnoreCollision", Bool),
    ],
    &[],
);
pub static NETWORK: Spec = fields(
    &[
        a("mode", "Mode", Str),
        a("device", "Device", Str),
        a("cidr", "CIDR", Str),
        a("ip", "IP", Str),
        a("hostname", "Hostname", Str),
        a("mbits", "MBits", Int),
    ],
    &[
        b("dns", "DNS", One, &DNS),
        lb("reserved_ports", "ReservedPorts", List, "Label", &PORT),
        lb("port", "DynamicPorts", List, "Label", &PORT),
        b("cni", "CNI", One, &CNI),
    ],
);
static CHECK_RESTART: Spec = fields(
    &[
        a("limit", "Limit", Int),
        a("grace", "Grace", Dur),
        a("ignore_warnings", "IgnoreWarnings", Bool),
    ],
    &[],
);
static CHECK: Spec = fields(
    &[
        a("name", "Name", Str),
        a("type", "Type", Str),
        a("command", "Command", Str),
        a("args", "Args", StrList),
        a("path", "Path", Str),
        a("protocol", "Protocol", Str),
        a("port", "PortLabel", Str),
        a("expose", "Expose", Bool),
        a("address_mode", "AddressMode", Str),
        a("advertise", "Advertise", Str),
        a("interval", "Interval", Dur),
        a("timeout", "Timeout", Dur),
        a("initial_status", "InitialStatus", Str),
        a("notes", "Notes", Str),
        a("tls_server_name", "TLSServerName", Str),
        a("tls_skip_verify", "TLSSkipVerify", Bool),
        a("header", "Header", Any),
        a("method", "Method", Str),
        a("grpc_service", "GRPCService", Str),
        a("grpc_use_tls", "GRPCUseTLS", Bool),
        a("task", "TaskName", Str),
        a("success_before_passing", "SuccessBeforePassing", Int),
        a("failures_before_critical", "FailuresBeforeCritical", Int),
        a("failures_before_warning", "FailuresBeforeWarning", Int),
        a("body", "Body", Str),
        a("on_update", "OnUpdate", Str),
    ],
    &[b("check_restart", "CheckRestart", One, &CHECK_RESTART)],
);
static IDENTITY: Spec = fields(
    &[
        a("name", "Name", Str),
        a("aud", "Audience", StrList),
        a("change_mode", "ChangeMode", Str),
        a("change_signal", "ChangeSignal", Str),
        a("env", "Env", Bool),
        a("file", "File", Bool),
        a("filepath", "Filepath", Str),
        a("service_name", "ServiceName", Str),
        a("ttl", "TTL", Dur),
        a("extra_claims", "ExtraClaims", StrList),
    ],
    &[],
);
static SERVICE_WEIGHTS: Spec = fields(
    &[a("passing", "Passing", Int), a("warning", "Warning", Int)],
    &[],
);
static SERVICE: Spec = fields(
    &[
        a("name", "Name", Str),
        a("tags", "Tags", StrList),
        a("canary_tags", "CanaryTags", StrList),
        a("enable_tag_override", "EnableTagOverride", Bool),
        a("port", "PortLabel", Str),
        a("address_mode", "AddressMode", Str),
        a("address", "Address", Str),
        a("meta", "Meta", StrMap),
        a("canary_meta", "CanaryMeta", StrMap),
        a("tagged_addresses", "TaggedAddresses", StrMap),
        a("task", "TaskName", Str),
        a("on_update", "OnUpdate", Str),
        a("provider", "Provider", Str),
        a("cluster", "Cluster", Str),
        a("kind", "Kind", Str),
    ],
    &[
        b("check", "Checks", List, &CHECK),
        b("check_restart", "CheckRestart", One, &CHECK_RESTART),
        b("connect", "Connect", One, &GENERIC),
        b("identity", "Identity", One, &IDENTITY),
        b("weights", "Weights", One, &SERVICE_WEIGHTS),
    ],
);
static LIFECYCLE: Spec = fields(
    &[a("hook", "Hook", Str), a("sidecar", "Sidecar", Bool)],
    &[],
);
static NUMA: Spec = fields(
    &[
        a("affinity", "Affinity", Str),
        a("devices", "Devices", StrList),
    ],
    &[],
);
static DEVICE: Spec = fields(
    &[a("count", "Count", Int)],
    &[
        b("constraint", "Constraints", List, &CONSTRAINT),
        b("affinity", "Affinities", List, &AFFINITY),
    ],
);
static RESOURCES: Spec = fields(
    &[
        a("cpu", "CPU", Int),
        a("cores", "Cores", Int),
        a("memory", "MemoryMB", Int),
        a("memory_max", "MemoryMaxMB", Int),
        a("disk", "DiskMB", Int),
        a("iops", "IOPS", Int),
        a("secrets", "SecretsMB", Int),
    ],
    &[
        b("network", "Networks", List, &NETWORK),
        lb("device", "Devices", List, "Name", &DEVICE),
        b("numa", "NUMA", One, &NUMA),
    ],
);
static LOGS: Spec = fields(
    &[
        a("max_files", "MaxFiles", Int),
        a("max_file_size", "MaxFileSizeMB", Int),
        a("enabled", "Enabled", Bool),
        a("disabled", "Disabled", Bool),
    ],
    &[],
);
static ARTIFACT: Spec = fields(
    &[
        a("source", "GetterSource", Str),
        a("options", "GetterOptions", StrMap),
        a("headers", "GetterHeaders", StrMap),
        a("mode", "GetterMode", Str),
        a("insecure", "GetterInsecure", Bool),
        a("destination", "RelativeDest", Str),
        a("chown", "Chown", Bool),
    ],
    &[],
);
static VAULT: Spec = fields(
    &[
        a("policies", "Policies", StrList),
        a("role", "Role", Str),
        a("namespace", "Namespace", Str),
        a("cluster", "Cluster", Str),
        a("env", "Env", Bool),
        a("disable_file", "DisableFile", Bool),
        a("change_mode", "ChangeMode", Str),
        a("change_signal", "ChangeSignal", Str),
        a("allow_token_expiration", "AllowTokenExpiration", Bool),
    ],
    &[],
);
static WAIT: Spec = fields(&[a("min", "Min", Dur), a("max", "Max", Dur)], &[]);
static CHANGE_SCRIPT: Spec = fields(
    &[
        a("command", "Command", Str),
        a("args", "Args", StrList),
        a("timeout", "Timeout", Dur),
        a("fail_on_error", "FailOnError", Bool),
        a("run_on_first_render", "RunOnFirstRender", Bool),
    ],
    &[],
);
static TEMPLATE: Spec = fields(
    &[
        a("source", "SourcePath", Str),
        a("destination", "DestPath", Str),
        a("data", "EmbeddedTmpl", Str),
        a("change_mode", "ChangeMode", Str),
        a("change_signal", "ChangeSignal", Str),
        a("once", "Once", Bool),
        a("splay", "Splay", Dur),
        a("perms", "Perms", Str),
        a("uid", "Uid", Int),
        a("gid", "Gid", Int),
        a("left_delimiter", "LeftDelim", Str),
        a("right_delimiter", "RightDelim", Str),
        a("env", "Envvars", Bool),
        a("vault_grace", "VaultGrace", Dur),
        a("error_on_missing_key", "ErrMissingKey", Bool),
    ],
    &[
        b("change_script", "ChangeScript", One, &CHANGE_SCRIPT),
        b("wait", "Wait", One, &WAIT),
    ],
);
static DISPATCH_PAYLOAD: Spec = fields(&[a("file", "File", Str)], &[]);
static VOLUME_MOUNT: Spec = fields(
    &[
        a("volume", "Volume", Str),
        a("destination", "Destination", Str),
        a("read_only", "ReadOnly", Bool),
        a("propagation_mode", "PropagationMode", Str),
        a("selinux_label", "SELinuxLabel", Str),
    ],
    &[],
);
static CSI_PLUGIN: Spec = fields(
    &[
        a("id", "ID", Str),
        a("type", "Type", Str),
        a("mount_dir", "MountDir", Str),
        a("stage_publish_base_dir", "StagePublishBaseDir", Str),
        a("health_timeout", "HealthTimeout", Dur),
    ],
    &[],
);
/// A task's `scaling "cpu"|"mem"` block; its label becomes the policy type (see
/// `decode::task_scaling_type`).
pub static TASK_SCALING: Spec = fields(
    &[
        a("min", "Min", Int),
        a("max", "Max", Int),
        a("enabled", "Enabled", Bool),
        a("type", "Type", Str),
    ],
    &[b("policy", "Policy", One, &FREE)],
);
static ACTION: Spec = fields(
    &[a("command", "Command", Str), a("args", "Args", StrList)],
    &[],
);
static SECRET: Spec = fields(
    &[
        a("provider", "Provider", Str),
        a("path", "Path", Str),
        a("config", "Config", Any),
        a("env", "Env", StrMap),
    ],
    &[],
);
static SCHEDULE: Spec = fields(&[], &[b("cron", "Cron", One, &GENERIC)]);

pub static TASK: Spec = fields(
    &[
        a("driver", "Driver", Str),
        a("user", "User", Str),
        a("config", "Config", Any),
        a("env", "Env", StrMap),
        a("meta", "Meta", StrMap),
        a("kill_timeout", "KillTimeout", Dur),
        a("leader", "Leader", Bool),
        a("shutdown_delay", "ShutdownDelay", Dur),
        a("kill_signal", "KillSignal", Str),
        a("kind", "Kind", Str),
    ],
    &[
        b("lifecycle", "Lifecycle", One, &LIFECYCLE),
        b("constraint", "Constraints", List, &CONSTRAINT),
        b("affinity", "Affinities", List, &AFFINITY),
        b("service", "Services", List, &SERVICE),
        b("resources", "Resources", One, &RESOURCES),
        b("restart", "RestartPolicy", One, &RESTART),
        b("logs", "LogConfig", One, &LOGS),
        b("artifact", "Artifacts", List, &ARTIFACT),
        b("vault", "Vault", One, &VAULT),
        b("consul", "Consul", One, &CONSUL),
        b("template", "Templates", List, &TEMPLATE),
        b(
            "dispatch_payload",
            "DispatchPayload",
            One,
            &DISPATCH_PAYLOAD,
        ),
        b("volume_mount", "VolumeMounts", List, &VOLUME_MOUNT),
        b("csi_plugin", "CSIPluginConfig", One, &CSI_PLUGIN),
        lb("scaling", "ScalingPolicies", List, "Type", &TASK_SCALING),
        lb("secret", "Secrets", List, "Name", &SECRET),
        b("identity", "Identities", List, &IDENTITY),
        lb("action", "Actions", List, "Name", &ACTION),
        b("schedule", "Schedule", One, &SCHEDULE),
    ],
);

pub static GROUP: Spec = fields(
    &[
        a("count", "Count", Int),
        a("meta", "Meta", StrMap),
        a("shutdown_delay", "ShutdownDelay", Dur),
        a("max_run_duration", "MaxRunDuration", Dur),
        a(
            "stop_after_client_disconnect",
            "StopAfterClientDisconnect",
            Dur,
        ),
        a("max_client_disconnect", "MaxClientDisconnect", Dur),
        a(
            "prevent_reschedule_on_lost",
            "PreventRescheduleOnLost",
            Bool,
        ),
    ],
    &[
        b("constraint", "Constraints", List, &CONSTRAINT),
        b("affinity", "Affinities", List, &AFFINITY),
        lb("task", "Tasks", List, "Name", &TASK),
        b("spread", "Spreads", List, &SPREAD),
        lb("volume", "Volumes", Map, "Name", &VOLUME),
        b("restart", "RestartPolicy", One, &RESTART),
        b("disconnect", "Disconnect", One, &DISCONNECT),
        b("reschedule", "ReschedulePolicy", One, &RESCHEDULE),
        b("ephemeral_disk", "EphemeralDisk", One, &EPHEMERAL_DISK),
        b("update", "Update", One, &UPDATE),
        b("migrate", "Migrate", One, &MIGRATE),
        b("network", "Networks", List, &NETWORK),
        b("service", "Services", List, &SERVICE),
        b("scaling", "Scaling", One, &SCALING),
        b("consul", "Consul", One, &CONSUL),
        // Copied into the group's tasks by `normalize` (Nomad keeps no group-level vault).
        b("vault", "Vault", One, &VAULT),
    ],
);

pub static JOB: Spec = fields(
    &[
        a("region", "Region", Str),
        a("namespace", "Namespace", Str),
        a("id", "ID", Str),
        a("name", "Name", Str),
        a("type", "Type", Str),
        a("priority", "Priority", Int),
        a("all_at_once", "AllAtOnce", Bool),
        a("datacenters", "Datacenters", StrList),
        a("node_pool", "NodePool", Str),
        a("meta", "Meta", StrMap),
        a("consul_token", "ConsulToken", Str),
        a("vault_token", "VaultToken", Str),
    ],
    &[
        b("constraint", "Constraints", List, &CONSTRAINT),
        b("affinity", "Affinities", List, &AFFINITY),
        lb("group", "TaskGroups", List, "Name", &GROUP),
        b("update", "Update", One, &UPDATE),
        b("multiregion", "Multiregion", One, &MULTIREGION),
        b("spread", "Spreads", List, &SPREAD),
        b("periodic", "Periodic", One, &PERIODIC),
        b("parameterized", "ParameterizedJob", One, &PARAMETERIZED),
        b("reschedule", "Reschedule", One, &RESCHEDULE),
        b("migrate", "Migrate", One, &MIGRATE),
        b("ui", "UI", One, &UI),
        // Job-level `vault` and top-level `task` are handled by the decoder (Nomad moves them
        // into the tasks).
        b("vault", "Vault", One, &VAULT),
        lb("task", "Tasks", List, "Name", &TASK),
        lb("secret", "Secrets", List, "Name", &SECRET),
    ],
);

/// Blocks inside generic trees that have a typed shape (`connect { sidecar_task { ... } }`).
pub static GENERIC_TYPED: [Blk; 4] = [
    b("resources", "Resources", One, &RESOURCES),
    b("logs", "LogConfig", One, &LOGS),
    b("volume_mount", "VolumeMounts", List, &VOLUME_MOUNT),
    b("check", "Checks", List, &CHECK),
];

/// Generic trees: block names whose API field is a list (repeatable blocks) and names whose
/// API field is spelt differently from the plain PascalCase of the HCL name.
pub const GENERIC_LISTS: &[(&str, &str)] = &[
    ("upstreams", "Upstreams"),
    ("path", "Paths"),
    ("listener", "Listeners"),
    ("service", "Services"),
    ("hosts", "Hosts"),
    ("volume_mount", "VolumeMounts"),
    ("identity", "Identities"),
];

/// Generic arguments that are Go durations in the API.
pub const GENERIC_DURATIONS: &[&str] = &[
    "connect_timeout",
    "timeout",
    "interval",
    "grace",
    "ttl",
    "kill_timeout",
    "shutdown_delay",
];

/// Word pieces Nomad's API spells in capitals.
pub const ACRONYMS: &[(&str, &str)] = &[
    ("id", "ID"),
    ("ip", "IP"),
    ("cidr", "CIDR"),
    ("dns", "DNS"),
    ("tls", "TLS"),
    ("ttl", "TTL"),
    ("uid", "UID"),
    ("url", "URL"),
    ("grpc", "GRPC"),
    ("cpu", "CPU"),
    ("mb", "MB"),
    ("sni", "SNI"),
    ("cidrs", "CIDRs"),
    ("uids", "UIDs"),
];

/// `snake_case` → the API's PascalCase field name.
pub fn pascal(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for part in name.split('_').filter(|p| !p.is_empty()) {
        if let Some((_, up)) = ACRONYMS.iter().find(|(w, _)| *w == part) {
            out.push_str(up);
            continue;
        }
        let mut chars = part.chars();
        if let Some(c) = chars.next() {
            out.extend(c.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pascal_case_keeps_nomad_acronyms() {
        assert_eq!(pascal("local_bind_port"), "LocalBindPort");
        assert_eq!(pascal("exclude_outbound_cidrs"), "ExcludeOutboundCIDRs");
        assert_eq!(pascal("tls_server_name"), "TLSServerName");
    }
}
