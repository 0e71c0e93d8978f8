"""Rotating a service token while the backend keeps calling: no refused request, then the old secret dies."""

from __future__ import annotations

import threading

import httpx

from tests.integration.harness import ROOT, run_playbook

SITE = ROOT / "site.yml"
ROTATE = ROOT / "playbooks" / "rotate_service_token.yml"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"


class Backend:
    """Calls the chatbot through the edge in a loop with whatever credentials the web app's settings hold now."""

    def __init__(self, demo):
        self.demo = demo
        self.statuses = []
        self.secrets_seen = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def credentials(self):
        settings = self.demo.azure.app_settings(SUBSCRIPTION, "rg-shop", "shop-web")
        return settings["CF_ACCESS_CLIENT_ID"], settings["CF_ACCESS_CLIENT_SECRET"]

    def call(self, client_id, client_secret):
        response = httpx.get(self.demo.info["edge"]["url"] + "/api/tags", trust_env=False, timeout=10,
                             headers={"Host": "chat.example.com", "CF-Access-Client-Id": client_id,
                                      "CF-Access-Client-Secret": client_secret, "User-Agent": "shop-web/1.0"})
        return response.status_code

    def _loop(self):
        # Bounded: at most 2,000 requests, and it stops once the test sets the stop event.
        for request_number in range(2000):
            # Two requests a second stay under the demo's rate limit of 30 requests in 10 seconds.
            if self.stop.wait(0.5):
                return
            client_id, client_secret = self.credentials()
            self.secrets_seen.add(client_secret)
            self.statuses.append(self.call(client_id, client_secret))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)


def test_rotation_refuses_no_request(demo_edge):
    site = run_playbook(SITE, *demo_edge.site_args(), env=demo_edge.env)
    assert site.returncode == 0, site.explain()
    backend = Backend(demo_edge)
    old_id, old_secret = backend.credentials()
    assert backend.call(old_id, old_secret) == 200

    with backend:
        rotation = run_playbook(ROTATE, "-e", "edge_rotate_token=azure-backend", "-e", "edge_rotate_end_grace=false",
                                "-e", "edge_rotate_grace_period=1h", *demo_edge.site_args(), env=demo_edge.env)

    assert rotation.returncode == 0, rotation.explain()
    new_id, new_secret = backend.credentials()
    assert new_id == old_id
    assert new_secret != old_secret
    assert backend.statuses, "the backend loop sent no request"
    assert set(backend.statuses) == {200}, backend.statuses
    assert len(backend.secrets_seen) == 2, "the loop never saw the consumer switch secrets"
    for output in (site.output, rotation.output):
        assert old_secret not in output
        assert new_secret not in output

    # Both secrets pass until the grace period ends. After it, only the new secret passes.
    assert backend.call(old_id, old_secret) == 200
    demo_edge.cloudflare.advance_clock(2 * 3600)
    assert backend.call(old_id, old_secret) != 200
    assert backend.call(new_id, new_secret) == 200


def test_rotation_ends_grace_when_asked(demo_edge):
    site = run_playbook(SITE, *demo_edge.site_args(), env=demo_edge.env)
    assert site.returncode == 0, site.explain()
    backend = Backend(demo_edge)
    old_id, old_secret = backend.credentials()

    rotation = run_playbook(ROTATE, "-e", "edge_rotate_token=azure-backend", *demo_edge.site_args(), env=demo_edge.env)

    assert rotation.returncode == 0, rotation.explain()
    new_id, new_secret = backend.credentials()
    assert backend.call(old_id, old_secret) != 200
    assert backend.call(new_id, new_secret) == 200


def test_rotation_failure_says_where_it_stopped(demo_edge):
    site = run_playbook(SITE, *demo_edge.site_args(), env=demo_edge.env)
    assert site.returncode == 0, site.explain()
    backend = Backend(demo_edge)
    old_id, old_secret = backend.credentials()

    env = dict(demo_edge.env, AZURE_CLIENT_SECRET="not-the-secret")
    rotation = run_playbook(ROTATE, "-e", "edge_rotate_token=azure-backend", *demo_edge.site_args(), env=env)

    assert rotation.returncode != 0
    assert "Step 2 of 4" in rotation.output, rotation.explain()
    assert "keeps working until" in rotation.output
    assert backend.call(old_id, old_secret) == 200
    assert "not-the-secret" not in rotation.output


def test_site_heals_a_consumer_that_lost_the_secret(demo_edge):
    first = run_playbook(SITE, *demo_edge.site_args(), env=demo_edge.env)
    assert first.returncode == 0, first.explain()
    backend = Backend(demo_edge)
    client_id, old_secret = backend.credentials()
    with demo_edge.azure.lock:
        holder = demo_edge.azure.holder(SUBSCRIPTION, "rg-shop", "shop-web")
        del holder.app_settings["CF_ACCESS_CLIENT_SECRET"]

    healed = run_playbook(SITE, *demo_edge.site_args(), env=demo_edge.env)

    assert healed.returncode == 0, healed.explain()
    assert "holds no working client secret" in " ".join(healed.output.split())
    new_id, new_secret = backend.credentials()
    assert new_id == client_id
    assert new_secret != old_secret
    assert demo_edge.cloudflare.service_token_valid(new_id, new_secret)
    assert backend.call(new_id, new_secret) == 200
    assert new_secret not in healed.output

    again = run_playbook(SITE, *demo_edge.site_args(), env=demo_edge.env)
    assert again.returncode == 0, again.explain()
    assert again.changed == 0, again.explain()


def test_first_site_check_run_writes_nothing(demo_edge):
    demo_edge.cloudflare.clear_log()

    check = run_playbook(SITE, "--check", "--diff", *demo_edge.site_args(), env=demo_edge.env)

    assert check.returncode == 0, check.explain()
    assert demo_edge.cloudflare.log(writes_only=True) == []
    assert "tunnel home" in check.output
    assert "do not exist yet, so there is nothing" in " ".join(check.output.split())


def test_rotation_resumes_from_vault_file(demo_edge, tmp_path):
    site = run_playbook(SITE, *demo_edge.site_args(), env=demo_edge.env)
    assert site.returncode == 0, site.explain()
    backend = Backend(demo_edge)
    old_id, old_secret = backend.credentials()
    vault_file = tmp_path / "rotation.vault"
    vault_args = ["-e", "edge_rotate_token=azure-backend", "-e", "edge_rotate_vault_file=%s" % vault_file,
                  "-e", "edge_rotate_vault_password=rotation-test-password", *demo_edge.site_args()]

    broken = run_playbook(ROTATE, *vault_args, env=dict(demo_edge.env, AZURE_CLIENT_SECRET="not-the-secret"))

    assert broken.returncode != 0
    assert "resume with -e edge_rotate_resume=true" in " ".join(broken.output.split()), broken.explain()
    stored = vault_file.read_text()
    assert stored.startswith("$ANSIBLE_VAULT;")
    assert "cfast_" not in stored
    assert backend.call(old_id, old_secret) == 200

    resumed = run_playbook(ROTATE, *vault_args, "-e", "edge_rotate_resume=true", env=demo_edge.env)

    assert resumed.returncode == 0, resumed.explain()
    new_id, new_secret = backend.credentials()
    assert new_secret != old_secret
    assert demo_edge.cloudflare.service_token_valid(new_id, new_secret)
    assert backend.call(new_id, new_secret) == 200
    assert not vault_file.exists()
