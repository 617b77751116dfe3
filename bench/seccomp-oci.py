#!/usr/bin/env python3
"""Docker's seccomp profile format (src/runtime/seccomp/default.json) in OCI
form (config.json's linux.seccomp), as Docker hands it to runc for one
container: the includes/excludes of each rule are evaluated against the
container's capabilities, the architecture (amd64) and this kernel, and
dropped with the rules that do not apply.

    bench/seccomp-oci.py PROFILE CAPS_JSON > seccomp.json

CAPS_JSON is the container's bounding set, e.g. '["CAP_CHOWN", ...]'.
"""
import json
import os
import re
import sys

ARCH = "amd64"  # Go's name, as Docker's profile spells it
NATIVE = "SCMP_ARCH_X86_64"


def version(text):
    return tuple(int(x) for x in re.findall(r"\d+", text)[:2])


def applies(rule, caps, kernel):
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if inc.get("arches") and ARCH not in inc["arches"]:
        return False
    if inc.get("caps") and not set(inc["caps"]) <= caps:
        return False
    if inc.get("minKernel") and kernel < version(inc["minKernel"]):
        return False
    if ARCH in (exc.get("arches") or []):
        return False
    if caps & set(exc.get("caps") or []):
        return False
    return True


def convert(profile, caps, kernel):
    archmap = {m["architecture"]: m.get("subArchitectures") or [] for m in profile["archMap"]}
    out = {
        "defaultAction": profile["defaultAction"],
        "architectures": [NATIVE] + archmap.get(NATIVE, []),
        "syscalls": [],
    }
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    for rule in profile["syscalls"]:
        if not applies(rule, caps, kernel):
            continue
        r = {"names": rule["names"], "action": rule["action"]}
        if rule.get("args"):
            r["args"] = [
                {"index": a["index"], "value": a["value"], "valueTwo": a.get("valueTwo", 0), "op": a["op"]}
                for a in rule["args"]
            ]
        if "errnoRet" in rule:
            r["errnoRet"] = rule["errnoRet"]
        out["syscalls"].append(r)
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        profile = json.load(f)
    caps = set(json.loads(sys.argv[2]))
    json.dump(convert(profile, caps, version(os.uname().release)), sys.stdout)
    print()


if __name__ == "__main__":
    main()
