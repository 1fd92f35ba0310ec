"""Placement's WSGI application with keystonemiddleware's audit filter.

Placement builds its middleware in code (placement.deploy), not from a paste
pipeline, so the audit filter cannot be added in a configuration file. This entry
point wraps placement.auth.filter_factory, which deploy() calls for its
authentication middleware, so that every request passes authtoken first and then
the audit filter (which needs the identity authtoken sets), as in the other APIs'
paste pipelines. The events go with the settings of placement.conf's
[audit_middleware_notifications].
"""

from keystonemiddleware import audit
from placement import auth
from placement.wsgi import init_application

AUDIT_MAP = "/etc/placement/api_audit_map.conf"
_authtoken_factory = auth.filter_factory


def _audited_auth_factory(global_conf, **local_conf):
    authenticate = _authtoken_factory(global_conf, **local_conf)
    audited = audit.filter_factory(global_conf, audit_map_file=AUDIT_MAP, **local_conf)

    def auth_filter(app):
        return authenticate(audited(app))

    return auth_filter


auth.filter_factory = _audited_auth_factory
application = init_application()
