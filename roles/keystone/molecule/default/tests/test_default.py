"""Keystone issues tokens through HAProxy's TLS endpoint and lists the registered services."""


def test_token_is_issued_over_tls(openstack):
    token = openstack("token", "issue")
    assert token["id"].startswith("gAAAAA")  # a fernet token


def test_catalog_lists_identity_and_the_registered_service(openstack):
    services = {s["Type"]: s["Name"] for s in openstack("service", "list")}
    assert services["identity"] == "keystone"
    assert services["probe"] == "probe"
    urls = {e["Interface"]: e["URL"] for e in openstack("endpoint", "list", "--service", "probe")}
    assert set(urls) == {"public", "internal"}


def test_service_user_can_log_in(openstack):
    probe = {"OS_USERNAME": "probe", "OS_PASSWORD": "probe-ks-pw", "OS_PROJECT_NAME": "service"}
    token = openstack("token", "issue", as_user=probe)
    assert token["user_id"]


def test_fernet_keys_are_private(host):
    keys = host.file("/etc/keystone/fernet-keys")
    assert keys.user == "keystone"
    assert host.file("/etc/keystone/fernet-keys/0").mode == 0o600
