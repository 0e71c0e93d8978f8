# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared fixtures of the unit tests."""

import pytest


@pytest.fixture(autouse=True)
def module_warnings_isolated(request, monkeypatch):
    """Run every module unit test with an empty warning list, as a module runs on a managed host.

    ansible-core 2.19 collects module warnings in a process-wide dict that nothing empties, so
    a warning of one test would show up in the result of the next. Importing a controller-side
    module such as ``ansible.errors`` (the filter tests do) also sets ``is_controller``, after
    which ``AnsibleModule.warn`` writes to the display and the result has no warnings at all.
    """
    path = request.node.path.as_posix()
    if "/plugins/modules/" not in path and "/plugins/module_utils/" not in path:
        return
    from ansible.module_utils import _internal
    from ansible.module_utils.common import warnings

    monkeypatch.setattr(_internal, "is_controller", False)
    monkeypatch.setattr(warnings, "_global_warnings", {})
    monkeypatch.setattr(warnings, "_global_deprecations", {})
