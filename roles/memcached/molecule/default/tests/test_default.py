"""memcached stores and returns a value on the internal address, and nowhere else."""


def test_set_and_get_on_the_internal_address(host, address):
    script = (
        "import socket\n"
        f"s = socket.create_connection(('{address}', 11211))\n"
        "s.sendall(b'set probe 0 60 5\\r\\nhello\\r\\nget probe\\r\\n')\n"
        "data = b''\n"
        "while b'END' not in data: data += s.recv(100)\n"
        "print(data.decode())\n"
    )
    result = host.run("python3 -c %s", script)
    assert result.rc == 0, result.stderr
    assert "STORED" in result.stdout
    assert "hello" in result.stdout


def test_not_listening_on_loopback(host):
    assert not host.socket("tcp://127.0.0.1:11211").is_listening
