"""The CA is trusted on the host and the certificate it issued verifies in a TLS handshake."""

import textwrap


def test_ca_is_in_the_trust_store(host):
    bundle = host.file("/etc/ssl/certs/ca-certificates.crt").content_string
    ca = host.file("/usr/local/share/ca-certificates/sovdeploy-molecule-ca.crt").content_string
    assert ca.strip().splitlines()[1] in bundle


def test_private_key_stays_private(host):
    key = host.file("/etc/ssl/sovdeploy/private/molecule.key")
    assert key.mode == 0o640
    assert key.user == "root"


def test_tls_handshake_verifies_against_the_system_trust(host):
    # A TLS server with the issued certificate, a client that trusts only the system store.
    script = textwrap.dedent("""
        import socket, ssl, threading
        CRT, KEY = "/etc/ssl/sovdeploy/molecule.crt", "/etc/ssl/sovdeploy/private/molecule.key"
        srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        srv.load_cert_chain(CRT, KEY)
        sock = socket.create_server(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        def serve():
            conn, _ = sock.accept()
            with srv.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"hello")
        threading.Thread(target=serve, daemon=True).start()
        cli = ssl.create_default_context()
        with socket.create_connection(("127.0.0.1", port)) as raw:
            with cli.wrap_socket(raw, server_hostname="molecule.test") as tls:
                print(tls.recv(5).decode(), tls.getpeercert()["subject"])
    """)
    result = host.run("python3 -c %s", script)
    assert result.rc == 0, result.stderr
    assert result.stdout.startswith("hello")


def test_wrong_name_is_refused(host):
    script = textwrap.dedent("""
        import socket, ssl, threading
        CRT, KEY = "/etc/ssl/sovdeploy/molecule.crt", "/etc/ssl/sovdeploy/private/molecule.key"
        srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        srv.load_cert_chain(CRT, KEY)
        sock = socket.create_server(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        accept = lambda: srv.wrap_socket(sock.accept()[0], server_side=True)
        threading.Thread(target=accept, daemon=True).start()
        with socket.create_connection(("127.0.0.1", port)) as raw:
            ssl.create_default_context().wrap_socket(raw, server_hostname="other.test")
    """)
    result = host.run("python3 -c %s", script)
    assert result.rc != 0
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr
