# Copyright (c) homelab.edge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the tunnel and remote ingress managers, with a FakeAPI in place of Cloudflare."""

import base64

import pytest

from tests.unit.plugins.modules.utils import ACCOUNT_ID, TUNNEL_ID, TUNNELS, FakeAPI, Sequence, http_error

from ansible_collections.homelab.edge.plugins.module_utils.cloudflare_api import CloudflareError
from ansible_collections.homelab.edge.plugins.module_utils.tunnels import IngressManager, TunnelManager, tunnel_view

OTHER_ID = "1c8b4d2f-2e3a-4d6c-8b9f-7a8e9d0c1b2f"
CONFIG_PATH = "%s/%s/configurations" % (TUNNELS, TUNNEL_ID)


def tunnel(name="home", tunnel_id=TUNNEL_ID, config_src="cloudflare", deleted_at=None, **extra):
    item = {"id": tunnel_id, "name": name, "config_src": config_src, "status": "healthy",
            "created_at": "2026-01-01T00:00:00Z", "deleted_at": deleted_at, "connections": [{"id": "c1"}]}
    item.update(extra)
    return item


def created_tunnel(body):
    """Return a created tunnel as Cloudflare does: the request body, secret included, plus server fields."""
    return dict(body, id=TUNNEL_ID, status="inactive", created_at="2026-01-02T00:00:00Z", connections=[])


# tunnel_view


def test_view_counts_connections():
    assert tunnel_view(tunnel()) == {"id": TUNNEL_ID, "name": "home", "config_src": "cloudflare", "status": "healthy",
                                     "created_at": "2026-01-01T00:00:00Z", "connections": 1}


def test_view_derives_config_src_from_remote_config():
    assert tunnel_view({"id": "t", "remote_config": True})["config_src"] == "cloudflare"
    assert tunnel_view({"id": "t", "remote_config": False})["config_src"] == "local"
    assert tunnel_view(None) is None


# TunnelManager.find


def test_find_ignores_soft_deleted_tunnels():
    api = FakeAPI(lists={TUNNELS: [tunnel(tunnel_id=OTHER_ID, deleted_at="2026-01-01T00:00:00Z"), tunnel()]})
    assert TunnelManager(api, ACCOUNT_ID).find("home")["id"] == TUNNEL_ID
    assert api.calls[0].params == {"name": "home", "is_deleted": "false"}


def test_find_ignores_other_names():
    api = FakeAPI(lists={TUNNELS: [tunnel(name="home-2")]})
    assert TunnelManager(api, ACCOUNT_ID).find("home") is None


def test_find_rejects_duplicate_live_names():
    api = FakeAPI(lists={TUNNELS: [tunnel(), tunnel(tunnel_id=OTHER_ID)]})
    with pytest.raises(CloudflareError) as error:
        TunnelManager(api, ACCOUNT_ID).find("home")
    assert "More than one live tunnel is named 'home'" in str(error.value)
    assert TUNNEL_ID in str(error.value)
    assert OTHER_ID in str(error.value)


# TunnelManager.ensure_present


def test_create_posts_name_config_src_and_secret():
    api = FakeAPI(routes={("POST", TUNNELS): created_tunnel})
    outcome = TunnelManager(api, ACCOUNT_ID).ensure_present("home")
    assert outcome.action == "create"
    assert outcome.before is None
    assert outcome.after["id"] == TUNNEL_ID
    [write] = api.writes()
    assert (write.method, write.path, write.retry_writes) == ("POST", TUNNELS, False)
    assert write.body["name"] == "home"
    assert write.body["config_src"] == "cloudflare"
    assert len(base64.b64decode(write.body["tunnel_secret"])) == 32
    assert "tunnel_secret" not in outcome.after


def test_create_secret_differs_per_tunnel():
    api = FakeAPI(routes={("POST", TUNNELS): created_tunnel})
    TunnelManager(api, ACCOUNT_ID).ensure_present("home")
    TunnelManager(api, ACCOUNT_ID).ensure_present("home")
    first, second = [call.body["tunnel_secret"] for call in api.writes()]
    assert first != second


def test_existing_tunnel_left_alone():
    api = FakeAPI(lists={TUNNELS: [tunnel()]})
    outcome = TunnelManager(api, ACCOUNT_ID).ensure_present("home")
    assert outcome.action == "none"
    assert outcome.result["id"] == TUNNEL_ID
    assert api.writes() == []


def test_config_src_mismatch_rejected():
    api = FakeAPI(lists={TUNNELS: [tunnel(config_src="local")]})
    with pytest.raises(CloudflareError) as error:
        TunnelManager(api, ACCOUNT_ID).ensure_present("home", "cloudflare")
    message = str(error.value)
    assert "Tunnel 'home' exists with config_src 'local', but 'cloudflare' was requested" in message
    assert "set config_src to 'local'" in message
    assert api.writes() == []


def test_create_in_check_mode_sends_no_write():
    api = FakeAPI()
    outcome = TunnelManager(api, ACCOUNT_ID, check_mode=True).ensure_present("home", "local")
    assert outcome.action == "create"
    assert outcome.after == {"id": None, "name": "home", "config_src": "local", "status": "inactive",
                             "created_at": None, "connections": 0}
    assert api.writes() == []


def test_lost_create_response_finds_tunnel():
    api = FakeAPI(lists={TUNNELS: Sequence([], [tunnel()])}, routes={("POST", TUNNELS): http_error(502)})
    outcome = TunnelManager(api, ACCOUNT_ID).ensure_present("home")
    assert outcome.action == "create"
    assert outcome.result["id"] == TUNNEL_ID
    assert api.methods() == [("GET", TUNNELS), ("POST", TUNNELS), ("GET", TUNNELS)]


def test_lost_create_not_found_raises():
    api = FakeAPI(routes={("POST", TUNNELS): http_error(502)})
    with pytest.raises(CloudflareError) as error:
        TunnelManager(api, ACCOUNT_ID).ensure_present("home")
    assert error.value.status == 502


def test_rejected_create_not_looked_up_again():
    api = FakeAPI(routes={("POST", TUNNELS): http_error(400, 1003, "invalid tunnel name")})
    with pytest.raises(CloudflareError):
        TunnelManager(api, ACCOUNT_ID).ensure_present("home")
    assert api.methods() == [("GET", TUNNELS), ("POST", TUNNELS)]


def test_conflicting_create_adopts_tunnel():
    # 409 with error 1013: another run created the tunnel between the lookup and the create.
    api = FakeAPI(lists={TUNNELS: Sequence([], [tunnel()])},
                  routes={("POST", TUNNELS): http_error(409, 1013, "already exists")})
    outcome = TunnelManager(api, ACCOUNT_ID).ensure_present("home")
    assert outcome.result["id"] == TUNNEL_ID
    assert api.methods() == [("GET", TUNNELS), ("POST", TUNNELS), ("GET", TUNNELS)]


# TunnelManager.ensure_absent


def test_delete_clears_connections_first():
    api = FakeAPI(lists={TUNNELS: [tunnel()]})
    outcome = TunnelManager(api, ACCOUNT_ID).ensure_absent("home")
    assert outcome.action == "delete"
    assert outcome.before["id"] == TUNNEL_ID
    assert [(call.method, call.path) for call in api.writes()] == [
        ("DELETE", "%s/%s/connections" % (TUNNELS, TUNNEL_ID)),
        ("DELETE", "%s/%s" % (TUNNELS, TUNNEL_ID)),
    ]


def test_delete_tolerates_already_deleted():
    path = "%s/%s" % (TUNNELS, TUNNEL_ID)
    api = FakeAPI(lists={TUNNELS: [tunnel()]}, routes={("DELETE", path): http_error(404)})
    assert TunnelManager(api, ACCOUNT_ID).ensure_absent("home").action == "delete"


def test_delete_raises_other_errors():
    path = "%s/%s" % (TUNNELS, TUNNEL_ID)
    api = FakeAPI(lists={TUNNELS: [tunnel()]}, routes={("DELETE", path): http_error(400, 1022, "active")})
    with pytest.raises(CloudflareError):
        TunnelManager(api, ACCOUNT_ID).ensure_absent("home")


def test_delete_in_check_mode_sends_no_write():
    api = FakeAPI(lists={TUNNELS: [tunnel()]})
    assert TunnelManager(api, ACCOUNT_ID, check_mode=True).ensure_absent("home").action == "delete"
    assert api.writes() == []


def test_absent_tunnel_needs_nothing():
    api = FakeAPI(lists={TUNNELS: [tunnel(deleted_at="2026-01-01T00:00:00Z")]})
    assert TunnelManager(api, ACCOUNT_ID).ensure_absent("home").action == "none"
    assert api.writes() == []


def test_token_and_connections_read():
    api = FakeAPI(routes={("GET", "%s/%s/token" % (TUNNELS, TUNNEL_ID)): "eyJhIjoi",
                          ("GET", "%s/%s/connections" % (TUNNELS, TUNNEL_ID)): None})
    manager = TunnelManager(api, ACCOUNT_ID)
    assert manager.token(TUNNEL_ID, "home") == "eyJhIjoi"
    assert manager.connections(TUNNEL_ID, "home") == []


# IngressManager

RULES = [{"hostname": "chat.example.com", "service": "http://127.0.0.1:11434"}, {"service": "http_status:404"}]


def test_read_without_tunnel_sends_nothing():
    api = FakeAPI()
    assert IngressManager(api, ACCOUNT_ID).read(None, "home") == {}
    assert api.calls == []


def test_read_missing_configuration_is_empty():
    api = FakeAPI(routes={("GET", CONFIG_PATH): http_error(404)})
    assert IngressManager(api, ACCOUNT_ID).read(TUNNEL_ID, "home") == {}


def test_same_ingress_not_written():
    api = FakeAPI(routes={("GET", CONFIG_PATH): {"config": {"ingress": RULES}, "version": 3}})
    outcome = IngressManager(api, ACCOUNT_ID).ensure(TUNNEL_ID, "home", RULES)
    assert outcome.action == "none"
    assert api.writes() == []


def test_changed_ingress_keeps_other_config_keys():
    current = {"ingress": [{"service": "http_status:404"}], "warp-routing": {"enabled": True}}
    api = FakeAPI()
    outcome = IngressManager(api, ACCOUNT_ID).ensure(TUNNEL_ID, "home", RULES, current_config=current)
    assert outcome.action == "update"
    assert outcome.before == {"ingress": [{"service": "http_status:404"}]}
    [write] = api.writes()
    assert (write.method, write.path) == ("PUT", CONFIG_PATH)
    assert write.body == {"config": {"ingress": RULES, "warp-routing": {"enabled": True}}}


def test_first_ingress_is_create():
    api = FakeAPI()
    outcome = IngressManager(api, ACCOUNT_ID).ensure(TUNNEL_ID, "home", RULES, current_config={})
    assert outcome.action == "create"
    assert outcome.before is None


def test_ingress_in_check_mode_sends_no_write():
    api = FakeAPI(routes={("GET", CONFIG_PATH): {"config": {"ingress": []}}})
    outcome = IngressManager(api, ACCOUNT_ID, check_mode=True).ensure(TUNNEL_ID, "home", RULES)
    assert outcome.action == "create"
    assert api.writes() == []
