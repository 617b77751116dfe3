//! Protocol messages with most of what they can carry, for tests of the
//! JSON writers: in JSON, as `from_json` reads them.

/// A v1 task with most of what a task can carry: statuses with a
/// container status and network infos, labels, reserved resources,
/// ranges and sets, a container, health check, kill policy, discovery,
/// bytes, doubles, and strings that need escaping.
pub const RICH_TASK: &str = r#"{
    "name": "web \"quoted\" \\ back\u0001slash\nnew line é 日本 😀 </script>",
    "task_id": {"value": "t-1"},
    "framework_id": {"value": "F"},
    "executor_id": {"value": "e-1"},
    "agent_id": {"value": "S0"},
    "state": "TASK_RUNNING",
    "resources": [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1},
         "role": "web",
         "allocation_info": {"role": "web"},
         "reservations": [
            {"type": "STATIC", "role": "web"},
            {"type": "DYNAMIC", "role": "web/a", "principal": "ops",
             "labels": {"labels": [{"key": "k", "value": "v ✓"}]}}
         ]},
        {"name": "ports", "type": "RANGES",
         "ranges": {"range": [{"begin": 31000, "end": 31001},
                              {"begin": 0, "end": 18446744073709551615}]}},
        {"name": "disk", "type": "SCALAR", "scalar": {"value": 1e21},
         "disk": {"persistence": {"id": "p1"},
                  "volume": {"container_path": "data", "mode": "RW"},
                  "source": {"type": "MOUNT", "mount": {"root": "/mnt"}}},
         "revocable": {}, "shared": {}},
        {"name": "zones", "type": "SET", "set": {"item": ["a", "b", ""]}}
    ],
    "statuses": [
        {"task_id": {"value": "t-1"}, "state": "TASK_STARTING",
         "source": "SOURCE_EXECUTOR", "timestamp": 1700000000.123456,
         "uuid": "AAECAwQFBgcICQoLDA0ODw==", "data": "",
         "healthy": true, "message": "tab\there"},
        {"task_id": {"value": "t-1"}, "state": "TASK_RUNNING",
         "source": "SOURCE_EXECUTOR", "reason": "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED",
         "agent_id": {"value": "S0"}, "executor_id": {"value": "e-1"},
         "timestamp": 1.5e-7, "uuid": "/w==",
         "labels": {"labels": [{"key": "bare"}, {"key": "", "value": ""}]},
         "container_status": {
            "container_id": {"value": "child", "parent": {"value": "parent"}},
            "network_infos": [
                {"ip_addresses": [{"protocol": "IPv4", "ip_address": "10.0.0.2"},
                                  {"protocol": "IPv6", "ip_address": "fd00::2"},
                                  {"ip_address": "10.0.0.3"}],
                 "name": "net", "groups": ["g1", "g2"],
                 "labels": {"labels": [{"key": "team", "value": "blue"}]},
                 "port_mappings": [{"host_port": 31000, "container_port": 80,
                                    "protocol": "tcp"}]},
                {}
            ],
            "executor_pid": 4294967295
         },
         "unreachable_time": {"nanoseconds": -9223372036854775808}}
    ],
    "status_update_state": "TASK_RUNNING",
    "status_update_uuid": "/w==",
    "labels": {"labels": [{"key": "a", "value": "1"}]},
    "discovery": {"visibility": "FRAMEWORK", "name": "web",
                  "ports": {"ports": [{"number": 80, "name": "http",
                                       "protocol": "tcp", "visibility": "CLUSTER"}]}},
    "container": {"type": "MESOS",
                  "mesos": {"image": {"type": "DOCKER", "docker": {"name": "alpine:3"}}},
                  "volumes": [{"container_path": "/tmp", "host_path": "/var/tmp",
                               "mode": "RO"}],
                  "network_infos": [{"name": "net"}]},
    "health_check": {"type": "HTTP", "delay_seconds": 0.0,
                     "http": {"port": 8080, "path": "/h", "statuses": [200, 204]}},
    "kill_policy": {"grace_period": {"nanoseconds": 3000000000}},
    "user": "nobody",
    "limits": {"cpus": {"value": 2.5}}
}"#;

pub const RICH_EXECUTOR: &str = r#"{
    "type": "CUSTOM",
    "executor_id": {"value": "e-1"},
    "framework_id": {"value": "F"},
    "command": {"uris": [{"value": "http://x/y.tgz", "extract": false, "cache": true}],
                "environment": {"variables": [{"name": "A", "value": "b=c"}]},
                "shell": false, "value": "/bin/sh", "arguments": ["sh", "-c", "echo '\"'"]},
    "resources": [{"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
    "name": "Command Executor (Task: t-1)",
    "source": "t-1",
    "data": "aGk=",
    "shutdown_grace_period": {"nanoseconds": 5000000000},
    "labels": {"labels": [{"key": "x", "value": "\u2028"}]}
}"#;

pub const RICH_FRAMEWORK: &str = r#"{
    "user": "root", "name": "marathon", "id": {"value": "F"},
    "failover_timeout": 604800, "checkpoint": true, "role": "*",
    "roles": ["web", "db"], "hostname": "h", "principal": "p",
    "webui_url": "http://h:8080",
    "capabilities": [{"type": "MULTI_ROLE"}, {"type": "PARTITION_AWARE"}, {}],
    "labels": {"labels": [{"key": "k"}]},
    "offer_filters": {"web": {"min_allocatable_resources": {"quantities": [
        {"quantities": {"cpus": {"value": 1}}}]}}}
}"#;
