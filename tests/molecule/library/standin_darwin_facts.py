# Test-only module: replaces the gathered platform facts so that a Debian test host is treated as
# macOS, with the brew and launchctl stand-ins in place of Homebrew and launchd.

DOCUMENTATION = r"""
module: standin_darwin_facts
short_description: Make a Linux test host report macOS platform facts (tests only)
description:
  - Returns C(ansible_facts) for macOS on Apple silicon, which replace the gathered C(system), C(os_family),
    C(distribution), C(distribution_version), C(distribution_release) and C(machine) facts for the rest of the play.
  - For Molecule scenarios that exercise a role's macOS tasks on a Linux test host; never use it elsewhere.
version_added: 0.1.0
options: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - Only the facts listed above change; everything else the host reports stays Linux.
author: homelab.edge maintainers
"""

EXAMPLES = r"""
- name: Treat the test host as macOS
  standin_darwin_facts:
"""

RETURN = r"""
ansible_facts:
  description: The replaced platform facts.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    module.exit_json(changed=False, ansible_facts={
        "system": "Darwin",
        "os_family": "Darwin",
        "distribution": "MacOSX",
        "distribution_version": "15.5",
        "distribution_major_version": "15",
        "distribution_release": "24.5.0",
        "machine": "arm64",
    })


if __name__ == "__main__":
    main()
