"""The CA is trusted on the host and the certificate it issued verifies in a TLS handshake."""

import textwrap

# A TLS server with the issued certificate, and a client that trusts only the
# system store and expects the given server name. The client's verdict is the exit
# status: 0 and "hello", or 3 and the verification error. The server's side of a
# refused handshake fails too; it is joined and kept quiet, for a daemon thread that
# writes to stderr while the interpreter shuts down can abort it.
HANDSHAKE = textwrap.dedent("""
    import socket, ssl, sys, threading
    CRT, KEY = "/etc/ssl/sovdeploy/molecule.crt", "/etc/ssl/sovdeploy/private/molecule.key"
    srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv.load_cert_chain(CRT, KEY)
    sock = socket.create_server(("127.0.0.1", 0))
    def serve():
        conn, _ = sock.accept()
        try:
            with srv.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"hello")
        except (ssl.SSLError, OSError):
            pass
    server = threading.Thread(target=serve)
    server.start()
    try:
        with socket.create_connection(sock.getsockname()) as raw:
            with ssl.create_default_context().wrap_socket(raw, server_hostname=sys.argv[1]) as tls:
                print(tls.recv(5).decode())
    except ssl.SSLError as exc:
        print(exc, file=sys.stderr)
        sys.exit(3)
    finally:
        server.join(10)
""")


def test_ca_is_in_the_trust_store(host):
    bundle = host.file("/etc/ssl/certs/ca-certificates.crt").content_string
    ca = host.file("/usr/local/share/ca-certificates/sovdeploy-molecule-ca.crt").content_string
    assert ca.strip().splitlines()[1] in bundle


def test_private_key_stays_private(host):
    key = host.file("/etc/ssl/sovdeploy/private/molecule.key")
    assert key.mode == 0o640
    assert key.user == "root"


def test_tls_handshake_verifies_against_the_system_trust(host):
    result = host.run("python3 -c %s molecule.test", HANDSHAKE)
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "hello"


def test_wrong_name_is_refused(host):
    result = host.run("python3 -c %s other.test", HANDSHAKE)
    assert result.rc == 3, result.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr
