# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a Molecule scenario's converge playbook again and print a JSON summary of the run.

    python3 run_converge.py EXTRA_VARS_JSON [ANSIBLE_PLAYBOOK_OPTION...]

The summary has rc, changed_tasks (names of the tasks with a changed result, in order) and
messages (messages of the failed results). Molecule's environment names the inventory and the
scenario directory.
"""

import json
import os
import subprocess
import sys


def summarize(output):
    changed_tasks = []
    messages = []
    for play in output.get("plays", []):
        for task in play.get("tasks", []):
            for result in task.get("hosts", {}).values():
                items = result.get("results") or [result]
                if any(item.get("changed") for item in items if isinstance(item, dict)):
                    changed_tasks.append(task["task"]["name"])
                for item in items:
                    if isinstance(item, dict) and item.get("failed") and item.get("msg"):
                        messages.append(item["msg"])
    return changed_tasks, messages


def main():
    extra_vars = sys.argv[1]
    ansible_playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    command = [
        ansible_playbook,
        "--inventory", os.environ["MOLECULE_INVENTORY_FILE"],
        "--extra-vars", extra_vars,
        *sys.argv[2:],
        os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "converge.yml"),
    ]
    environment = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    try:
        output = json.loads(completed.stdout)
    except ValueError:
        print(json.dumps({"rc": completed.returncode, "changed_tasks": [],
                          "messages": ["ansible-playbook printed no JSON: " + completed.stderr[-2000:]]}))
        return 0
    changed_tasks, messages = summarize(output)
    print(json.dumps({"rc": completed.returncode, "changed_tasks": changed_tasks, "messages": messages}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
