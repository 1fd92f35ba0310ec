"""MariaDB answers SQL on its internal address and backend port, with a durable InnoDB table."""


def test_sql_round_trip(host):
    sql = (
        "CREATE DATABASE IF NOT EXISTS probe; "
        "CREATE TABLE IF NOT EXISTS probe.t (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB; "
        "REPLACE INTO probe.t VALUES (1, 'durable'); "
        "SELECT v FROM probe.t WHERE id = 1;"
    )
    result = host.run("mariadb --batch --skip-column-names -e %s", sql)
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "durable"


def test_listens_on_the_backend_port_of_the_internal_address(host):
    facts = host.ansible("setup", "gather_subset=network")["ansible_facts"]
    addr = facts["ansible_default_ipv4"]["address"]
    assert host.socket(f"tcp://{addr}:13306").is_listening
    assert not host.socket("tcp://0.0.0.0:3306").is_listening


def test_single_node_runs_without_galera(host):
    result = host.run("mariadb --batch --skip-column-names -e %s", "SHOW VARIABLES LIKE 'wsrep_on'")
    assert result.stdout.split() == ["wsrep_on", "OFF"]


def test_state_transfer_user_exists(host):
    result = host.run(
        "mariadb --batch --skip-column-names -e %s",
        "SELECT COUNT(*) FROM mysql.user WHERE user = 'sst'",
    )
    assert result.stdout.strip() == "1"
