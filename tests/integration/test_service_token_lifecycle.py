"""Service token rotation with a grace period, refresh and expiry checks, against the emulator."""

from __future__ import annotations

import httpx

from tests.integration.harness import run_playbook


def create_token(cloudflare, name="azure-backend", duration="8760h"):
    """Create a token through the API, as an earlier run would have, and return its id, client id and secret."""
    account = cloudflare.seed["accounts"][0]["id"]
    response = httpx.post("%s/accounts/%s/access/service_tokens" % (cloudflare.base_url, account),
                          headers={"Authorization": "Bearer %s" % cloudflare.api_token},
                          json={"name": name, "duration": duration}, trust_env=False)
    assert response.status_code == 201
    return response.json()["result"]


def lifecycle_playbook(tmp_path, check_url, tasks):
    """Write a playbook whose secrets stay in memory; it checks them against the emulator's Access check."""
    path = tmp_path / "lifecycle.yml"
    path.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  vars:\n"
        "    check_url: %s\n"
        "  tasks:\n%s" % (check_url, tasks)
    )
    return path


ROTATE = """
    - name: Rotate with a grace period
      homelab.edge.cloudflare_access_service_token:
        account: Homelab
        name: azure-backend
        rotate: true
        grace_period: 1h
      register: rotated
      no_log: true

    - name: Check the new secret
      ansible.builtin.uri:
        url: "{{ check_url }}"
        method: POST
        body_format: json
        body: {client_id: "{{ rotated.service_token.client_id }}", client_secret: "{{ rotated.client_secret }}"}
      register: new_check
      no_log: true

    - name: Report
      ansible.builtin.assert:
        that:
          - rotated is changed
          - new_check.json.valid
          - rotated.service_token.previous_client_secret_expires_at is string
        quiet: true
"""


def test_rotation_keeps_previous_secret_for_grace_period(cloudflare, tmp_path):
    cloudflare.require_emulator()
    token = create_token(cloudflare)
    check_url = cloudflare.admin.admin_url + "/cloudflare/access/check"

    run = run_playbook(lifecycle_playbook(tmp_path, check_url, ROTATE), "-vvv", env=cloudflare.env)

    assert run.returncode == 0, run.explain()
    assert token["client_secret"] not in run.output
    assert "cfast_" not in run.output
    assert cloudflare.admin.service_token_valid(token["client_id"], token["client_secret"])
    cloudflare.admin.advance_clock(2 * 3600)
    assert not cloudflare.admin.service_token_valid(token["client_id"], token["client_secret"])


def test_expire_previous_secret_ends_grace_now(cloudflare, tmp_path):
    cloudflare.require_emulator()
    token = create_token(cloudflare)
    check_url = cloudflare.admin.admin_url + "/cloudflare/access/check"
    tasks = ROTATE + """
    - name: End the grace period
      homelab.edge.cloudflare_access_service_token:
        account: Homelab
        name: azure-backend
        expire_previous_secret: true

    - name: Check the new secret again
      ansible.builtin.uri:
        url: "{{ check_url }}"
        method: POST
        body_format: json
        body: {client_id: "{{ rotated.service_token.client_id }}", client_secret: "{{ rotated.client_secret }}"}
      register: after_check
      no_log: true

    - name: The new secret still passes
      ansible.builtin.assert:
        that: after_check.json.valid
        quiet: true
"""
    run = run_playbook(lifecycle_playbook(tmp_path, check_url, tasks), env=cloudflare.env)

    assert run.returncode == 0, run.explain()
    assert not cloudflare.admin.service_token_valid(token["client_id"], token["client_secret"])


def test_refresh_moves_expiry_and_keeps_secret(cloudflare, tmp_path):
    cloudflare.require_emulator()
    token = create_token(cloudflare)
    before = token["expires_at"]
    tasks = """
    - name: Refresh
      homelab.edge.cloudflare_access_service_token:
        account: Homelab
        name: azure-backend
        refresh: true
      register: refreshed

    - name: Report
      ansible.builtin.assert:
        that:
          - refreshed is changed
          - refreshed.client_secret is not defined
        quiet: true
"""
    cloudflare.admin.clear_log()
    run = run_playbook(lifecycle_playbook(tmp_path, "unused", tasks), env=cloudflare.env)

    assert run.returncode == 0, run.explain()
    writes = cloudflare.writes()
    assert [entry["path"].rsplit("/", 1)[-1] for entry in writes] == ["refresh"]
    state = cloudflare.admin.state()["service_tokens"][token["id"]]
    assert state["expires_at"] > before
    assert cloudflare.admin.service_token_valid(token["client_id"], token["client_secret"])


def test_expiry_threshold_warns_or_fails(cloudflare, tmp_path):
    cloudflare.require_emulator()
    # The module compares expires_at with the controller's clock, so the token is made to expire soon.
    create_token(cloudflare, duration="240h")
    cloudflare.admin.clear_log()
    tasks = """
    - name: Warn
      homelab.edge.cloudflare_access_service_token:
        account: Homelab
        name: azure-backend
        expiry_warning_days: 30

    - name: Fail
      homelab.edge.cloudflare_access_service_token:
        account: Homelab
        name: azure-backend
        expiry_warning_days: 30
        expiry_action: fail
"""
    run = run_playbook(lifecycle_playbook(tmp_path, "unused", tasks), env=cloudflare.env)

    assert run.returncode != 0
    assert "[WARNING]: Service token 'azure-backend' expires on" in run.output, run.explain()
    assert "refresh=true" in run.output
    assert run.recap["localhost"]["failed"] == 1
    assert cloudflare.writes() == []


def test_rotate_without_no_log_fails_before_writing(cloudflare, tmp_path):
    cloudflare.require_emulator()
    create_token(cloudflare)
    cloudflare.admin.clear_log()
    tasks = """
    - name: Rotate in the open
      homelab.edge.cloudflare_access_service_token:
        account: Homelab
        name: azure-backend
        rotate: true
"""
    run = run_playbook(lifecycle_playbook(tmp_path, "unused", tasks), env=cloudflare.env)

    assert run.returncode != 0
    assert "must set 'no_log: true'" in run.output, run.explain()
    assert cloudflare.admin.log() == []
