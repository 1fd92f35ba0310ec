"""Keystone issues tokens through HAProxy's TLS endpoint and lists the registered services."""

import json

AUTH = {
    "OS_AUTH_URL": None,
    "OS_USERNAME": "admin",
    "OS_PASSWORD": "molecule-admin",
    "OS_PROJECT_NAME": "admin",
    "OS_USER_DOMAIN_NAME": "Default",
    "OS_PROJECT_DOMAIN_NAME": "Default",
    "OS_IDENTITY_API_VERSION": "3",
}


def _openstack(host, *args):
    vip = host.ansible("setup", "gather_subset=network")["ansible_facts"]["ansible_default_ipv4"][
        "address"
    ]
    env = " ".join(f"{k}={v}" for k, v in {**AUTH, "OS_AUTH_URL": f"https://{vip}:5000/v3"}.items())
    result = host.run(f"env {env} openstack " + " ".join(args) + " -f json")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def test_token_is_issued_over_tls(host):
    token = _openstack(host, "token", "issue")
    assert token["id"].startswith("gAAAAA")  # a fernet token


def test_catalog_lists_identity_and_the_registered_service(host):
    services = {s["Type"]: s["Name"] for s in _openstack(host, "service", "list")}
    assert services["identity"] == "keystone"
    assert services["probe"] == "probe"
    urls = {
        e["Interface"]: e["URL"] for e in _openstack(host, "endpoint", "list", "--service", "probe")
    }
    assert set(urls) == {"public", "internal"}


def test_service_user_can_log_in(host):
    env = {
        **AUTH,
        "OS_USERNAME": "probe",
        "OS_PASSWORD": "probe-ks-pw",
        "OS_PROJECT_NAME": "service",
    }
    vip = host.ansible("setup", "gather_subset=network")["ansible_facts"]["ansible_default_ipv4"][
        "address"
    ]
    env["OS_AUTH_URL"] = f"https://{vip}:5000/v3"
    result = host.run(
        "env " + " ".join(f"{k}={v}" for k, v in env.items()) + " openstack token issue"
    )
    assert result.rc == 0, result.stderr


def test_fernet_keys_are_private(host):
    keys = host.file("/etc/keystone/fernet-keys")
    assert keys.user == "keystone"
    assert host.file("/etc/keystone/fernet-keys/0").mode == 0o600
