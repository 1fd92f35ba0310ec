"""The deployment's Kubernetes cluster, through the operator's kubeconfig.

The kubernetes phase writes the kubeconfig (mode 0600) into the state dir; `sovdeploy
status` reads each node's readiness through it with the Kubernetes Python client.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sovdeploy.errors import SovdeployError

#: Seconds `status` waits for the API before saying it cannot reach it.
TIMEOUT = 5
_ROLE_LABEL = "node-role.kubernetes.io/"


class KubeError(SovdeployError):
    """The cluster's API cannot be reached or refuses the kubeconfig."""


@dataclass(frozen=True)
class Node:
    name: str
    ready: bool
    #: The Ready condition's reason and message when the node is not ready.
    reason: str
    roles: tuple[str, ...]
    kubelet: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _node(item: Any) -> Node:
    conditions = {c.type: c for c in item.status.conditions or []}
    ready = conditions.get("Ready")
    labels = item.metadata.labels or {}
    is_ready = ready is not None and ready.status == "True"
    return Node(
        name=item.metadata.name,
        ready=is_ready,
        reason="" if is_ready or ready is None else f"{ready.reason}: {ready.message}",
        roles=tuple(sorted(k[len(_ROLE_LABEL) :] for k in labels if k.startswith(_ROLE_LABEL))),
        kubelet=item.status.node_info.kubelet_version if item.status.node_info else "",
    )


def nodes(kubeconfig: Path, timeout: float = TIMEOUT) -> list[Node]:
    """Every node of the cluster with its readiness, by name."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError

    try:
        api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    except (ConfigException, OSError, ValueError) as exc:
        raise KubeError(f"cannot use the kubeconfig {kubeconfig}: {exc}") from None
    with api:
        try:
            found = client.CoreV1Api(api).list_node(_request_timeout=timeout)
            listed = [_node(i) for i in found.items]
        except client.ApiException as exc:
            raise KubeError(f"the API refused to list nodes: {exc.status} {exc.reason}") from None
        except (HTTPError, OSError) as exc:  # connection refused, TLS, timeouts
            host = api.configuration.host
            raise KubeError(f"cannot reach the API at {host}: {exc}") from None
        except ValueError as exc:  # a node list this client cannot read
            raise KubeError(f"cannot read the API's node list: {exc}") from None
    return sorted(listed, key=lambda n: n.name)


def touch_configmap(kubeconfig: Path, namespace: str, name: str, timeout: float = 30) -> None:
    """Create the ConfigMap ``name`` and delete it again: two API calls the audit log keeps."""
    from kubernetes import client, config
    from urllib3.exceptions import HTTPError

    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    with api:
        core = client.CoreV1Api(api)
        body = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name=name, labels={"app.kubernetes.io/managed-by": "sovdeploy"}
            ),
            data={
                "purpose": "sovdeploy verify: an API call whose audit event must reach the ledger"
            },
        )
        try:
            core.create_namespaced_config_map(namespace, body, _request_timeout=timeout)
            core.delete_namespaced_config_map(name, namespace, _request_timeout=timeout)
        except client.ApiException as exc:
            raise KubeError(
                f"the API refused the ConfigMap {namespace}/{name}: {exc.status} {exc.reason}"
            ) from None
        except (HTTPError, OSError) as exc:
            raise KubeError(f"cannot reach the API at {api.configuration.host}: {exc}") from None
