"""RabbitMQ runs as a named node on the internal address, without the guest user."""


def test_node_runs(host):
    result = host.run("rabbitmqctl status --formatter json")
    assert result.rc == 0, result.stderr
    assert '"is_running":true' in result.stdout.replace(" ", "") or "rabbit" in result.stdout


def test_guest_user_is_gone(host):
    users = host.run("rabbitmqctl list_users --formatter json").stdout
    assert '"guest"' not in users


def test_amqp_listens_on_the_internal_address_only(host):
    facts = host.ansible("setup", "gather_subset=network")["ansible_facts"]
    addr = facts["ansible_default_ipv4"]["address"]
    assert host.socket(f"tcp://{addr}:5672").is_listening
    assert not host.socket("tcp://127.0.0.1:5672").is_listening


def test_cookie_is_the_shared_one(host):
    cookie = host.file("/var/lib/rabbitmq/.erlang.cookie")
    assert cookie.mode == 0o400
    assert cookie.user == "rabbitmq"
