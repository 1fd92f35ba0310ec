"""Horizon serves its login page and its compressed static files from Apache on the
internal address, keeps sessions in memcached, and sends logins to Keystone."""

import re


def test_login_page_is_served(address, http_get):
    code, body = http_get(f"http://{address}:18080/horizon/auth/login/")
    assert code == 200
    assert "csrfmiddlewaretoken" in body
    assert 'name="password"' in body


def test_static_files_are_compressed_and_served(address, http_get):
    _, body = http_get(f"http://{address}:18080/horizon/auth/login/")
    stylesheets = re.findall(r'href="(/horizon/static/dashboard/css/[^"]+\.css)"', body)
    assert stylesheets, "the login page links no compressed stylesheet"
    code, css = http_get(f"http://{address}:18080{stylesheets[0]}")
    assert code == 200 and len(css) > 1000


def test_the_root_sends_users_to_the_dashboard(host, address):
    script = (
        f"import http.client as h; c = h.HTTPConnection('{address}', 18080); "
        "c.request('GET', '/'); r = c.getresponse(); print(r.status, r.getheader('Location'))"
    )
    result = host.run("python3 -c %s", script)
    status, location = result.stdout.split()
    assert status == "302" and location.endswith("/horizon/")


def test_settings_point_at_keystone_and_memcached(host):
    settings = host.file("/etc/openstack-dashboard/local_settings.d/_50_sovdeploy.py")
    assert settings.mode == 0o640
    content = settings.content_string
    assert "PyMemcacheCache" in content
    assert ":5000/v3" in content


def test_not_listening_on_the_public_port(host):
    # HAProxy owns :80/:443 on the endpoint; Horizon only its backend port.
    assert not host.socket("tcp://0.0.0.0:80").is_listening
