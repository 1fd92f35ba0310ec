"""The database and vhost entry points give a service working, confined credentials."""


def test_service_user_reaches_its_database_over_tcp(host, address):
    result = host.run(
        "mariadb -h %s -P 13306 -u probe -pprobe-db-pw --batch --skip-column-names -e %s",
        address,
        "SELECT DATABASE(); USE probe; CREATE TABLE IF NOT EXISTS t (i INT); SELECT 1;",
    )
    assert result.rc == 0, result.stderr


def test_service_user_cannot_read_other_databases(host, address):
    result = host.run(
        "mariadb -h %s -P 13306 -u probe -pprobe-db-pw -e %s", address, "SELECT * FROM mysql.user"
    )
    assert result.rc != 0
    assert "denied" in result.stderr


def test_rabbitmq_user_authenticates_and_owns_its_vhost(host):
    assert host.run("rabbitmqctl authenticate_user probe probe-mq-pw").rc == 0
    assert host.run("rabbitmqctl authenticate_user probe wrong").rc != 0
    perms = host.run("rabbitmqctl list_user_permissions probe --formatter json").stdout
    assert '"vhost":"probe"' in perms.replace(" ", "")


def test_a_unit_that_does_not_start_fails_with_host_unit_and_journal(host):
    message = host.file("/root/probe-broken.failure").content_string
    hostname = host.ansible.get_variables()["inventory_hostname"]
    assert f"sovdeploy-probe-broken on {hostname} is failed" in message
    assert "last lines of its journal" in message
    assert "probe-broken: no such configuration" in message
