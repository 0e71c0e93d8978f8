"""Measure what a no-change run of homelab.edge costs, and write docs/benchmarks.md.

Usage::

    python -m tests.bench.bench [--runs 3] [--pairs 2] [--skip-scale] [--output docs/benchmarks.md]

Every measurement runs real ``ansible-playbook`` processes against the emulators, started in
this process on loopback. Four parts:

* per-task cost of each module in a no-change run, as a ratio to an ``ansible.builtin.uri``
  task that sends the module's main GET to the same emulator endpoint. The two kinds of task
  alternate inside one playbook, and the task durations come from the ``ansible.posix.json``
  callback, so Ansible's start-up is not part of either side;
* the Cloudflare play of a no-change run on the demo data model, as a ratio to a play with one
  ``uri`` GET task per managed object, the two playbooks alternating;
* the whole ``site.yml`` run: wall time, API requests by method, peak memory;
* scaling: 1, 5 and 25 services per tunnel, and a zone with 10 and 10,000 unrelated records.

Medians are taken over ``--runs`` runs. Only this script times anything; the tests do not.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from typing import Any

import yaml

from tests.emulators import launch
from tests.integration.harness import ROOT, VENV_BIN, ansible_environment, demo_seed

CLOUDFLARE_PLAY = ROOT / "playbooks" / "cloudflare.yml"
SITE = ROOT / "site.yml"
DEMO_INVENTORY = ROOT / "inventory" / "demo"
RATIO_TARGET = 1.3
GNU_TIME = "/usr/bin/time"


# -- processes -------------------------------------------------------------------------------


class Run:
    """One finished ansible-playbook process: wall time, peak memory, output."""

    def __init__(self, seconds: float, max_rss_kib: int, returncode: int, output: str) -> None:
        self.seconds = seconds
        self.max_rss_kib = max_rss_kib
        self.returncode = returncode
        self.output = output

    def report(self) -> dict[str, Any]:
        """Return the document written by the ansible.posix.json callback."""
        start = self.output.find("{")
        return json.loads(self.output[start:])


def run_playbook(playbook: pathlib.Path, env: dict[str, str], *args: str, inventory: pathlib.Path = DEMO_INVENTORY,
                 json_output: bool = False) -> Run:
    """Run ansible-playbook and measure its wall time and the largest RSS of it and its children.

    GNU time starts ansible-playbook and reports the peak RSS. Measured with ``wait4`` from this
    process instead, the number would include this process's own memory: a child counts the
    pages it shares with its parent between fork and exec.
    """
    extra = {"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"} if json_output else {}
    command = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook), *args]
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        started = time.perf_counter()
        completed = subprocess.run([GNU_TIME, "-f", "%M", "-o", rss_file.name, *command], cwd=ROOT,
                                   env=ansible_environment({**env, **extra}), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, check=False)
        seconds = time.perf_counter() - started
        max_rss_kib = int(rss_file.read().split()[-1])
    run = Run(seconds, max_rss_kib, completed.returncode, completed.stdout)
    if run.returncode != 0:
        raise SystemExit("ansible-playbook %s failed (exit %d):\n%s"
                         % (" ".join(command[1:]), run.returncode, completed.stdout[-4000:]))
    return run


def task_durations(report: dict[str, Any]) -> dict[str, float]:
    """Return the duration in seconds of every task of a json-callback report, by task name."""
    durations = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            span = task["task"]["duration"]
            durations[task["task"]["name"]] = _seconds(span["start"], span["end"])
    return durations


def play_durations(report: dict[str, Any]) -> list[float]:
    return [_seconds(play["play"]["duration"]["start"], play["play"]["duration"]["end"]) for play in report["plays"]]


def _seconds(start: str, end: str) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(end.rstrip("Z")) - datetime.fromisoformat(start.rstrip("Z"))).total_seconds()


# -- emulators -------------------------------------------------------------------------------


class Emulators:
    """The demo's emulators for one benchmark, started as `make demo` starts them, with the environment.

    ``sections`` picks the seed sections to start; the scaling runs need only ``cloudflare``.
    """

    def __init__(self, workdir: pathlib.Path, unrelated_records: int = 10,
                 sections: tuple[str, ...] = ("cloudflare", "azure", "edge", "home")) -> None:
        seed = {key: value for key, value in demo_seed().items() if key in sections}
        cloudflare = seed["cloudflare"]
        cloudflare["validate"] = False
        extra = max(0, unrelated_records - len(cloudflare["dns_records"]))
        cloudflare["dns_records"] = cloudflare["dns_records"] + [
            {"zone": "example.com", "type": "TXT", "name": "bench-%05d" % index, "content": "\"unrelated %d\"" % index,
             "ttl": 3600}
            for index in range(extra)
        ]
        self.seed = seed
        workdir.mkdir(parents=True, exist_ok=True)
        self.servers, self.info = launch.start_all(seed, workdir, "127.0.0.1")
        self.by_key = dict(zip([key for key in launch.EMULATORS if key in seed], self.servers))
        self.cloudflare = self.by_key["cloudflare"]
        self.cloudflare_info = self.info["cloudflare"]
        self.account_id = self.cloudflare_info["accounts"]["Homelab"]
        self.zone_id = self.cloudflare_info["zones"]["example.com"]
        self.api_token = cloudflare["api_tokens"][0]["value"]
        self.env = {"CLOUDFLARE_BASE_URL": self.cloudflare_info["base_url"], "CLOUDFLARE_API_TOKEN": self.api_token}
        self.site_args: list[str] = []
        if "edge" in self.info:
            self.site_args = ["-e", "edge_connect_url=%s" % self.info["edge"]["url"]]
        if "azure" in self.info:
            principal = seed["azure"]["principals"][0]
            self.env.update(
                REQUESTS_CA_BUNDLE=self.info["azure"]["ca_path"],
                AZURE_RESOURCE_MANAGER_ENDPOINT=self.info["azure"]["base_url"],
                AZURE_AUTHORITY_HOST=self.info["azure"]["authority_host"],
                AZURE_CLIENT_ID=principal["client_id"],
                AZURE_CLIENT_SECRET=principal["client_secret"],
                AZURE_TENANT_ID=principal["tenant_id"],
            )
            subscription, groups = next(iter(seed["azure"]["subscriptions"].items()))
            group, sites = next(iter(groups["resource_groups"].items()))
            self.webapp = (subscription, group, next(iter(sites["sites"])))
            self.env["AZURE_SUBSCRIPTION_ID"] = subscription

    def clear_log(self) -> None:
        for server in self.servers:
            if hasattr(server, "request_log"):
                server.request_log.clear()

    def requests_by_method(self, key: str = "cloudflare") -> dict[str, int]:
        """Count the requests that reached one emulator (``cloudflare`` or ``azure``), by method."""
        counts: dict[str, int] = {}
        for entry in self.entries(key):
            counts[entry["method"]] = counts.get(entry["method"], 0) + 1
        return counts

    def writes(self) -> int:
        """Count the writes, as the emulators classify them, that reached the Cloudflare and Azure emulators.

        The Azure token request (a POST to Entra ID) and the POST that lists app settings are reads.
        """
        return sum(1 for key in ("cloudflare", "azure") for entry in self.entries(key) if entry["write"])

    def entries(self, key: str) -> list[dict[str, Any]]:
        if key not in self.by_key:
            return []
        return self.by_key[key].request_log.entries()

    def state(self) -> dict[str, Any]:
        return self.cloudflare.app.state

    def stop(self) -> None:
        launch.stop_all(self.servers)


# -- data models -------------------------------------------------------------------------------


def edge_variables(services: int) -> dict[str, Any]:
    """Return the demo inventory's data model with ``services`` services on its one tunnel.

    The first service is the demo's own (Ollama with Access, a rate limit and a firewall rule);
    the others are plain origins with Access.
    """
    variables = yaml.safe_load((DEMO_INVENTORY / "group_vars" / "all" / "edge.yml").read_text())
    tunnel = variables["edge_tunnels"][0]
    tunnel["services"] = tunnel["services"][:1] + [
        {"hostname": "svc%02d.example.com" % index, "service": "http://127.0.0.1:%d" % (8000 + index),
         "access": {"service_tokens": ["azure-backend"]}}
        for index in range(1, services)
    ]
    return variables


def managed_objects(services: int) -> int:
    """Count the objects the data model of ``edge_variables`` manages.

    One service token, one tunnel and its ingress, per service a DNS record, a policy and an
    application, and the first service's two WAF rules.
    """
    return 3 + 3 * services + 2


# -- part 1: per-module cost -------------------------------------------------------------------


def module_cases(emulators: Emulators) -> list[dict[str, Any]]:
    """Return, per module, a no-change task and the main GET that the module sends."""
    state = emulators.state()
    account = emulators.account_id
    zone = emulators.zone_id
    tunnel = next(item for item in state["tunnels"].values() if item["name"] == "home" and not item.get("deleted_at"))
    rule = next(item for item in state["rulesets"][zone]["http_ratelimit"]["rules"]
                if item.get("ref") == "homelab_edge_rl_chat_example_com")
    cf = "{{ lookup('env', 'CLOUDFLARE_BASE_URL') }}/"
    subscription, resource_group, webapp = emulators.webapp
    azure_site = ("{{ lookup('env', 'AZURE_RESOURCE_MANAGER_ENDPOINT') }}/subscriptions/%s/resourceGroups/%s/providers/"
                  "Microsoft.Web/sites/%s/config/appsettings/list?api-version=2023-12-01"
                  % (subscription, resource_group, webapp))
    edge = edge_variables(1)
    return [
        {"module": "cloudflare_tunnel", "args": {"account": account, "name": "home"},
         "get": cf + "accounts/%s/cfd_tunnel?name=home&is_deleted=false&page=1&per_page=50" % account},
        {"module": "cloudflare_tunnel_info", "args": {"account": account, "name": "home"},
         "get": cf + "accounts/%s/cfd_tunnel?name=home&is_deleted=false&page=1&per_page=50" % account},
        {"module": "cloudflare_tunnel_ingress",
         "args": {"account": account, "tunnel": "home", "rules": [{"hostname": "chat.example.com", "origin": "ollama"}]},
         "get": cf + "accounts/%s/cfd_tunnel/%s/configurations" % (account, tunnel["id"])},
        {"module": "cloudflare_dns_record",
         "args": {"zone": "example.com", "name": "chat", "type": "CNAME", "content": tunnel["id"] + ".cfargotunnel.com",
                  "proxied": True},
         "get": cf + "zones/%s/dns_records?name.exact=chat.example.com&page=1&per_page=100" % zone},
        {"module": "cloudflare_access_service_token", "args": {"account": account, "name": "azure-backend"},
         "get": cf + "accounts/%s/access/service_tokens?name=azure-backend&page=1&per_page=50" % account},
        {"module": "cloudflare_access_service_token_info", "args": {"account": account, "name": "azure-backend"},
         "get": cf + "accounts/%s/access/service_tokens?name=azure-backend&page=1&per_page=50" % account},
        {"module": "cloudflare_access_policy",
         "args": {"account": account, "name": "chat.example.com service auth", "decision": "non_identity",
                  "service_tokens": ["azure-backend"]},
         "get": cf + "accounts/%s/access/policies?page=1&per_page=50" % account},
        {"module": "cloudflare_access_application",
         "args": {"account": account, "domain": "chat.example.com", "policies": ["chat.example.com service auth"],
                  "service_auth_401_redirect": True},
         "get": cf + "accounts/%s/access/apps?domain=chat.example.com&exact=true&page=1&per_page=50" % account},
        {"module": "cloudflare_ruleset_rule",
         "args": {"zone": "example.com", "phase": "http_ratelimit", "ref": rule["ref"], "expression": rule["expression"],
                  "action": rule["action"], "ratelimit": rule["ratelimit"], "description": rule["description"],
                  "enabled": rule.get("enabled", True)},
         "get": cf + "zones/%s/rulesets/phases/http_ratelimit/entrypoint" % zone},
        {"module": "cloudflare_edge",
         "args": {"account": account, "zone": "example.com", "service_tokens": edge["edge_service_tokens"],
                  "tunnels": edge["edge_tunnels"]},
         "get": cf + "accounts/%s/cfd_tunnel?name=home&is_deleted=false&page=1&per_page=50" % account},
        {"module": "azure_webapp_settings",
         "args": {"resource_group": resource_group, "name": webapp, "app_settings": {"EDGE_BENCH": "1"}},
         "get": azure_site, "method": "POST"},
        {"module": "azure_webapp_settings_info", "args": {"resource_group": resource_group, "name": webapp},
         "get": azure_site, "method": "POST"},
    ]


def module_playbook(cases: list[dict[str, Any]], pairs: int) -> list[dict[str, Any]]:
    """Build a play that alternates each module's task with its uri task, ``pairs`` times."""
    tasks = []
    for index in range(pairs):
        for case in cases:
            tasks.append({
                "name": "uri %s %d" % (case["module"], index),
                "ansible.builtin.uri": {
                    "url": case["get"], "method": case.get("method", "GET"),
                    "headers": {"Authorization": "Bearer {{ lookup('env', 'CLOUDFLARE_API_TOKEN') }}"},
                    "status_code": [200, 401, 403, 404], "validate_certs": False,
                },
            })
            task = {"name": "module %s %d" % (case["module"], index), "homelab.edge.%s" % case["module"]: case["args"]}
            if case["module"] == "azure_webapp_settings":
                task["no_log"] = True
            tasks.append(task)
    return [{"name": "Module cost", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]


def measure_modules(emulators: Emulators, workdir: pathlib.Path, runs: int, pairs: int) -> list[dict[str, Any]]:
    """Return one row per module: median task durations, their ratio, requests per task, changed tasks."""
    cases = module_cases(emulators)
    playbook = workdir / "modules.yml"
    playbook.write_text(yaml.safe_dump(module_playbook(cases, pairs), sort_keys=False))
    # The app setting that azure_webapp_settings manages is written once here, so that every
    # timed task is a no-change task.
    setup = workdir / "modules-setup.yml"
    setup.write_text(yaml.safe_dump(module_playbook([case for case in cases if case["module"] == "azure_webapp_settings"],
                                                    1), sort_keys=False))
    run_playbook(setup, emulators.env)

    ratios: dict[str, list[float]] = {case["module"]: [] for case in cases}
    module_seconds: dict[str, list[float]] = {case["module"]: [] for case in cases}
    uri_seconds: dict[str, list[float]] = {case["module"]: [] for case in cases}
    changed: dict[str, int] = {case["module"]: 0 for case in cases}
    requests: dict[str, int] = {}
    for _run in range(runs):
        report = run_playbook(playbook, emulators.env, json_output=True).report()

        durations = task_durations(report)
        for play in report["plays"]:
            for task in play["tasks"]:
                name = task["task"]["name"]
                result = task["hosts"]["localhost"]
                if name.startswith("module ") and result.get("changed"):
                    changed[name.split()[1]] += 1
                if name.startswith("module ") and "api_requests" in result:
                    requests[name.split()[1]] = sum(result["api_requests"].values())

        for case in cases:
            module = case["module"]
            mine = [durations["module %s %d" % (module, index)] for index in range(pairs)]
            theirs = [durations["uri %s %d" % (module, index)] for index in range(pairs)]
            module_seconds[module].extend(mine)
            uri_seconds[module].extend(theirs)
            ratios[module].append(statistics.median(mine) / statistics.median(theirs))

    rows = []
    for case in cases:
        module = case["module"]
        rows.append({
            "module": module,
            "module_s": statistics.median(module_seconds[module]),
            "uri_s": statistics.median(uri_seconds[module]),
            "ratio": statistics.median(ratios[module]),
            "requests": requests.get(module),
            "changed": changed[module],
        })
    return rows


# -- part 2: the Cloudflare play and the site run --------------------------------------------


def baseline_playbook(emulators: Emulators, count: int) -> list[dict[str, Any]]:
    url = "%s/accounts/%s/cfd_tunnel?name=home&is_deleted=false" % (
        emulators.cloudflare_info["base_url"], emulators.account_id)
    tasks = [{"name": "uri %d" % index,
              "ansible.builtin.uri": {"url": url, "headers": {"Authorization": "Bearer " + emulators.api_token}}}
             for index in range(count)]
    return [{"name": "Publish the services at Cloudflare's edge", "hosts": "localhost", "gather_facts": False,
             "tasks": tasks}]


def measure_play(emulators: Emulators, workdir: pathlib.Path, variables: pathlib.Path, runs: int,
                 objects: int) -> dict[str, Any]:
    baseline = workdir / "baseline.yml"
    baseline.write_text(yaml.safe_dump(baseline_playbook(emulators, objects), sort_keys=False))
    ratios = []
    play_seconds = []
    baseline_seconds = []
    process_ratios = []
    for _run in range(runs):
        play = run_playbook(CLOUDFLARE_PLAY, emulators.env, "-e", "@%s" % variables, json_output=True)
        base = run_playbook(baseline, emulators.env, json_output=True)
        mine = play_durations(play.report())[0]
        theirs = play_durations(base.report())[0]
        play_seconds.append(mine)
        baseline_seconds.append(theirs)
        ratios.append(mine / theirs)
        process_ratios.append(play.seconds / base.seconds)
    return {
        "objects": objects,
        "play_s": statistics.median(play_seconds),
        "baseline_s": statistics.median(baseline_seconds),
        "ratio": statistics.median(ratios),
        "process_ratio": statistics.median(process_ratios),
    }


def measure_site(emulators: Emulators, variables: pathlib.Path, runs: int) -> dict[str, Any]:
    seconds = []
    rss = []
    for _run in range(runs):
        emulators.clear_log()
        run = run_playbook(SITE, emulators.env, "-e", "@%s" % variables, *emulators.site_args)
        seconds.append(run.seconds)
        rss.append(run.max_rss_kib)
    return {"wall_s": statistics.median(seconds), "max_rss_mib": max(rss) / 1024.0,
            "requests": emulators.requests_by_method("cloudflare"), "azure": emulators.requests_by_method("azure"),
            "writes": emulators.writes()}


# -- part 4: import cost -----------------------------------------------------------------------

IMPORTS = [
    ("ansible.module_utils.basic", "ansible.module_utils.basic"),
    ("module_utils.cloudflare_api (cloudflare SDK)", "ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api"),
    ("module_utils.azure (azure-identity, azure-mgmt-web)", "ansible_collections.homelab.edge.plugins.module_utils.azure"),
]


def measure_imports(runs: int) -> list[dict[str, Any]]:
    """Return the cumulative import time of each module of IMPORTS in a fresh interpreter (median of runs).

    ``python -X importtime`` reports the time per imported module. The cumulative time of the
    named module includes everything it imports, so the module_utils rows include
    ansible.module_utils.basic.
    """
    rows = []
    for label, name in IMPORTS:
        seconds = []
        for _run in range(runs):
            code = "import sys; sys.path.insert(0, %r); import %s" % (str(ROOT / ".collections"), name)
            completed = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd="/", capture_output=True,
                                       text=True, check=True)
            for line in completed.stderr.splitlines():
                parts = [part.strip() for part in line.split("|")]
                if len(parts) == 3 and parts[2] == name:
                    seconds.append(int(parts[1]) / 1e6)
        rows.append({"label": label, "seconds": statistics.median(seconds)})
    return rows


# -- part 3: scaling ---------------------------------------------------------------------------


def measure_scale(workdir: pathlib.Path, services: int, unrelated_records: int, runs: int) -> dict[str, Any]:
    emulators = Emulators(workdir / ("scale-%d-%d" % (services, unrelated_records)), unrelated_records,
                          sections=("cloudflare",))
    try:
        variables = workdir / ("scale-%d-%d.json" % (services, unrelated_records))
        variables.write_text(json.dumps(edge_variables(services)))
        run_playbook(CLOUDFLARE_PLAY, emulators.env, "-e", "@%s" % variables)
        seconds = []
        rss = []
        requests: dict[str, int] = {}
        for _run in range(runs):
            emulators.clear_log()
            run = run_playbook(CLOUDFLARE_PLAY, emulators.env, "-e", "@%s" % variables)
            seconds.append(run.seconds)
            rss.append(run.max_rss_kib)
            requests = emulators.requests_by_method()
            writes = emulators.writes()
        records = sum(len(zone) for zone in emulators.state()["dns_records"].values())
        return {
            "services": services, "records": records, "objects": managed_objects(services),
            "wall_s": statistics.median(seconds), "max_rss_mib": max(rss) / 1024.0, "requests": requests,
            "writes": writes,
        }
    finally:
        emulators.stop()


# -- report ------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = "unknown"
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    versions = {}
    for package in ("ansible-core", "cloudflare", "azure-mgmt-web", "azure-identity"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load average at the end (1, 5, 15 min)": " ".join("%.2f" % value for value in os.getloadavg()),
        **versions,
    }


def format_requests(requests: dict[str, int]) -> str:
    return ", ".join("%s %d" % (method, count) for method, count in sorted(requests.items())) or "none"


def render(info: dict[str, str], args: argparse.Namespace, modules: list[dict[str, Any]], imports: list[dict[str, Any]],
           play: dict[str, Any], site: dict[str, Any], scale: list[dict[str, Any]], total_s: float) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`scripts/bench`, which runs `python -m tests.bench.bench`). Every number",
        "comes from real `ansible-playbook` processes against the local Cloudflare and Azure emulators on",
        "loopback, so network latency is not part of them. The machine is shared with other jobs, so",
        "single runs vary; the tables give medians.",
        "",
        "## Machine",
        "",
        "| item | value |",
        "| --- | --- |",
    ]
    lines += ["| %s | %s |" % (key, value) for key, value in info.items()]
    lines += [
        "| runs per measurement | %d (median) |" % args.runs,
        "| module/uri task pairs per run | %d |" % args.pairs,
        "| whole benchmark | %.0f s |" % total_s,
        "",
        "## Cost of one module task in a no-change run",
        "",
        "Each module task alternates with an `ansible.builtin.uri` task that sends the module's main",
        "request to the same emulator endpoint, inside one playbook. Durations are per task, from the",
        "`ansible.posix.json` callback, so Ansible's start-up is in neither side. The ratio is the median",
        "over runs of median(module task) / median(uri task) within the run. Target: %.1f or less." % RATIO_TARGET,
        "Ratios of whole ansible-playbook runs, which include Ansible's start-up on both sides, come out",
        "lower than these per-task ratios.",
        "Accounts are given by id, as the `cloudflare_edge` role passes it on after its first lookup;",
        "zones are given by name, because the emulator does not serve `GET /zones/{id}`.",
        "",
        "| module | module task (s) | uri task (s) | ratio | API requests per task | changed tasks | target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in modules:
        lines.append("| %s | %.3f | %.3f | %.2f | %s | %d | %s |" % (
            row["module"], row["module_s"], row["uri_s"], row["ratio"],
            "-" if row["requests"] is None else row["requests"], row["changed"],
            "met" if row["ratio"] <= RATIO_TARGET else "missed"))
    lines += [
        "",
        "Where the extra time of a module task goes: a module runs in a fresh Python process, and the",
        "import of its module_utils costs this much (`python -X importtime`, cumulative, median of %d):" % args.runs,
        "",
        "| import | seconds |",
        "| --- | ---: |",
    ]
    lines += ["| %s | %.3f |" % (row["label"], row["seconds"]) for row in imports]
    lines += [
        "",
        "Most of a Cloudflare module's extra time over `uri` is the import of the `cloudflare` SDK",
        "(with httpx and pydantic), although the modules send raw requests and never touch its resource",
        "namespaces. The Azure modules pay for azure-identity and azure-mgmt-web in the same way. Their",
        "other imports are small next to these (checked with `-X importtime` on cloudflare_access_policy",
        "and azure_webapp_settings_info), so the target is out of reach while the modules import these",
        "SDKs. A transport on `ansible.module_utils.urls.open_url` behind the same `CloudflareAPI`",
        "methods would remove the SDK import; it is not done, because the unit tests of the client",
        "drive the SDK's transport.",
        "",
        "## The Cloudflare play of a no-change run",
        "",
        "`playbooks/cloudflare.yml` with the demo data model: one tunnel, one service with Access, a rate",
        "limit and a firewall rule, and one service token. The baseline is a play of one `uri` GET task per",
        "managed object (%d objects: token, tunnel, ingress, DNS record, policy, application, two WAF rules)."
        % play["objects"],
        "Both playbooks alternate; the ratio is the median of per-pair ratios of the play durations.",
        "Target below 1.0, stretch 0.5.",
        "",
        "| Cloudflare play (s) | uri play (s) | ratio of play durations | ratio of process wall times |",
        "| ---: | ---: | ---: | ---: |",
        "| %.2f | %.2f | %.2f | %.2f |" % (play["play_s"], play["baseline_s"], play["ratio"], play["process_ratio"]),
        "",
        "## The whole site run (no change)",
        "",
        "`ansible-playbook -i inventory/demo site.yml` as `make demo` runs it: Cloudflare, the home stand-in,",
        "the Azure app settings and the end-to-end probe. Requests come from the emulators' request logs;",
        "writes are the requests that the emulators classify as writes (the Azure token request and the",
        "POST that lists app settings are reads). Peak memory is GNU time's maximum resident set size of",
        "ansible-playbook, which covers that process and the processes reaped below it, the module",
        "processes included.",
        "",
        "| wall time (s) | Cloudflare requests | Cloudflare reads allowed (objects + account + zone) | Azure requests "
        "| writes | peak memory (MiB) |",
        "| ---: | --- | ---: | --- | ---: | ---: |",
        "| %.2f | %s | %d | %s | %d | %.0f |" % (
            site["wall_s"], format_requests(site["requests"]), play["objects"] + 2,
            format_requests(site["azure"]), site["writes"], site["max_rss_mib"]),
        "",
        "Of the Cloudflare requests, the verification play at the end sends two: a zone lookup and a read",
        "of the zone's Bot Fight Mode setting (`GET /zones/{id}/bot_management`). The Cloudflare play",
        "sends the rest (see the first row of the scaling table).",
        "",
        "## Scaling",
        "",
        "No-change runs of the Cloudflare play (`playbooks/cloudflare.yml`) after a first run that created",
        "everything. Each service has a DNS record, a policy and an application; the first one also has",
        "the two WAF rules. The unrelated records are TXT records in the same zone.",
        "",
        "| services | records in zone | managed objects | API requests | writes | wall time (s) | peak memory (MiB) |",
        "| ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for row in scale:
        lines.append("| %d | %d | %d | %s | %d | %.2f | %.0f |" % (
            row["services"], row["records"], row["objects"], format_requests(row["requests"]), row["writes"],
            row["wall_s"], row["max_rss_mib"]))
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement; the tables give medians")
    parser.add_argument("--pairs", type=int, default=2, help="module/uri task pairs per module in one playbook run")
    parser.add_argument("--output", type=pathlib.Path, default=ROOT / "docs" / "benchmarks.md",
                        help="Markdown file to write")
    parser.add_argument("--skip-scale", action="store_true", help="leave out the scaling runs")
    args = parser.parse_args(argv)

    if not os.access(GNU_TIME, os.X_OK):
        raise SystemExit("%s (GNU time) not found; it measures peak memory. Install it, for example with "
                         "'apt-get install time' on Debian." % GNU_TIME)
    started = time.perf_counter()
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="homelab-edge-bench-"))
    (ROOT / ".run" / "ansible-tmp").mkdir(parents=True, exist_ok=True)
    try:
        emulators = Emulators(workdir / "main")
        try:
            variables = workdir / "demo.json"
            variables.write_text(json.dumps(edge_variables(1)))
            print("bench: first run creates the demo objects", flush=True)
            run_playbook(CLOUDFLARE_PLAY, emulators.env, "-e", "@%s" % variables)
            print("bench: per-module cost", flush=True)
            modules = measure_modules(emulators, workdir, args.runs, args.pairs)
            print("bench: Cloudflare play against uri tasks", flush=True)
            play = measure_play(emulators, workdir, variables, args.runs, managed_objects(1))
            print("bench: whole site run", flush=True)
            site = measure_site(emulators, variables, args.runs)
        finally:
            emulators.stop()
        scale = []
        if not args.skip_scale:
            for services, records in ((1, 10), (5, 10), (25, 10), (5, 10000)):
                print("bench: scaling, %d services, %d records" % (services, records), flush=True)
                scale.append(measure_scale(workdir, services, records, args.runs))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("bench: import cost", flush=True)
    imports = measure_imports(args.runs)
    text = render(machine(), args, modules, imports, play, site, scale, time.perf_counter() - started)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
