"""Reading, applying and waiting for Kubernetes objects: the plumbing of the Kubernetes-plane tasks.

Every object we manage is written by server-side apply with our field manager
(:data:`~aksmetrics.environment.FIELD_MANAGER`), and only after :func:`ensure_object` has read the
actual object and found a difference on the fields we own; so a second run on a healthy cluster
sends no write at all. An object counts as ours when it carries the environment label or our field
manager has applied to it; a difference on an object that is not ours is refused unless the run
allows adopting it.

Waits follow ``kubectl rollout status`` and ``kubectl wait --for=condition=Established``.
"""

from __future__ import annotations

from typing import Any

from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

from aksmetrics.changes import Change, kubernetes_id, outcome
from aksmetrics.desired import diff, environment_labels
from aksmetrics.environment import ENVIRONMENT_LABEL, FIELD_MANAGER, Environment
from tasks.clients import discovery_lock, dynamic_client, get_settings, kube_request_options
from tasks.retries import Observation, StepFailed, poll, service_errors


def api_resource(env: Environment, api_version: str, kind: str) -> Any | None:
    """The API resource serving ``kind`` in ``api_version``, or None when the server has none (for
    example a custom resource whose CRD is not installed yet). A missing kind makes the discovery
    cache refresh once, so a CRD installed a moment ago is found."""
    with discovery_lock:
        try:
            return dynamic_client(env).resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            return None


def read_object(
    env: Environment, api_version: str, kind: str, namespace: str | None, name: str
) -> dict[str, Any] | None:
    """The object as the API server returns it, or None when it (or its kind) does not exist."""
    resource = api_resource(env, api_version, kind)
    if resource is None:
        return None
    identity = kubernetes_id(api_version, kind, namespace, name)
    with service_errors(identity, doing=f"reading {kind} {name}"):
        try:
            found = dynamic_client(env).get(
                resource,
                name=name,
                namespace=namespace if resource.namespaced else None,
                **kube_request_options(),
            )
        except NotFoundError:
            return None
    return found.to_dict()  # type: ignore[no-any-return]


def list_objects(
    env: Environment,
    api_version: str,
    kind: str,
    *,
    namespace: str | None = None,
    label_selector: str | None = None,
) -> list[dict[str, Any]]:
    """Objects of a kind, optionally in one namespace and matching a label selector."""
    resource = api_resource(env, api_version, kind)
    if resource is None:
        return []
    identity = kubernetes_id(api_version, kind, namespace, label_selector or "*")
    with service_errors(identity, doing=f"listing {kind}"):
        found = dynamic_client(env).get(
            resource, namespace=namespace, label_selector=label_selector, **kube_request_options()
        )
    return [item for item in found.to_dict().get("items") or []]


def apply_object(env: Environment, manifest: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply ``manifest`` with our field manager; returns the object as stored.

    Conflicts with other field managers are forced: we only get here for objects that are ours or
    that the run was allowed to adopt.
    """
    metadata = manifest["metadata"]
    identity = object_id(manifest)
    resource = api_resource(env, manifest["apiVersion"], manifest["kind"])
    if resource is None:
        raise StepFailed(
            identity,
            f"the API server serves no {manifest['kind']} in {manifest['apiVersion']}",
            hint="install the CRD that defines it first",
        )
    with service_errors(identity, doing=f"applying {manifest['kind']} {metadata['name']}"):
        applied = dynamic_client(env).server_side_apply(
            resource,
            body=manifest,
            namespace=metadata.get("namespace") if resource.namespaced else None,
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
            **kube_request_options(),
        )
    return applied.to_dict()  # type: ignore[no-any-return]


def patch_object(
    env: Environment,
    api_version: str,
    kind: str,
    namespace: str | None,
    name: str,
    patch: dict[str, Any],
) -> dict[str, Any]:
    """A strategic-merge patch (what ``kubectl patch`` and ``kubectl rollout restart`` send)."""
    resource = api_resource(env, api_version, kind)
    identity = kubernetes_id(api_version, kind, namespace, name)
    if resource is None:
        raise StepFailed(identity, f"the API server serves no {kind} in {api_version}")
    with service_errors(identity, doing=f"patching {kind} {name}"):
        patched = dynamic_client(env).patch(
            resource,
            body=patch,
            name=name,
            namespace=namespace,
            content_type="application/strategic-merge-patch+json",
            field_manager=FIELD_MANAGER,
            **kube_request_options(),
        )
    return patched.to_dict()  # type: ignore[no-any-return]


def object_id(manifest: dict[str, Any]) -> str:
    metadata = manifest.get("metadata") or {}
    return kubernetes_id(
        manifest["apiVersion"], manifest["kind"], metadata.get("namespace"), metadata["name"]
    )


def is_owned(actual: dict[str, Any], env: Environment) -> bool:
    """True when the object carries our environment label or our field manager applied to it."""
    metadata = actual.get("metadata") or {}
    if (metadata.get("labels") or {}).get(ENVIRONMENT_LABEL) == env.name:
        return True
    return any(
        entry.get("manager") == FIELD_MANAGER for entry in metadata.get("managedFields") or []
    )


def ensure_object(
    env: Environment,
    manifest: dict[str, Any],
    *,
    plan: bool,
    allow_adopt: bool,
    redact: tuple[str, ...] = (),
) -> Change:
    """Read, diff and (in apply mode, when they differ) server-side apply one object.

    ``redact`` names fields whose values must not appear in the change record (a Secret's ``data``).
    """
    metadata = manifest["metadata"]
    identity = object_id(manifest)
    kind = manifest["kind"]
    namespace = metadata.get("namespace")
    actual = read_object(env, manifest["apiVersion"], kind, namespace, metadata["name"])

    if actual is None:
        if not plan:
            apply_object(env, manifest)
        return Change(
            action=outcome("create", plan=plan), plane="kubernetes", kind=kind, resource_id=identity
        )

    fields = tuple(diff(actual, manifest, redact=redact))
    if not fields:
        return Change(action="unchanged", plane="kubernetes", kind=kind, resource_id=identity)
    owned = is_owned(actual, env)
    if not owned and not allow_adopt:
        return Change(
            action="refused",
            plane="kubernetes",
            kind=kind,
            resource_id=identity,
            fields=fields,
            note=f"exists without the label {ENVIRONMENT_LABEL}={env.name} and was not applied by "
            f"{FIELD_MANAGER}; rerun with allow_adopt to take it over",
        )
    if not plan:
        apply_object(env, manifest)
    return Change(
        action=outcome("update", plan=plan),
        plane="kubernetes",
        kind=kind,
        resource_id=identity,
        fields=fields,
        note="" if owned else "adopted: it was not created by this project",
    )


def with_environment_label(manifest: dict[str, Any], env: Environment) -> dict[str, Any]:
    """A copy of ``manifest`` whose metadata carries the environment label."""
    metadata = dict(manifest.get("metadata") or {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **environment_labels(env)}
    return {**manifest, "metadata": metadata}


# -- conditions ---------------------------------------------------------------------------------


def crd_established(crd: dict[str, Any] | None) -> Observation[None]:
    """Whether a CRD's ``Established`` condition is True (its kind is served)."""
    if crd is None:
        return Observation(False, "the CRD does not exist")
    for condition in (crd.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Established":
            done = condition.get("status") == "True"
            return Observation(
                done,
                f"Established={condition.get('status')} {condition.get('message') or ''}".strip(),
            )
    return Observation(False, "no Established condition yet")


def deployment_rolled_out(deployment: dict[str, Any] | None) -> Observation[None]:
    """``kubectl rollout status`` for a Deployment: every replica updated and available."""
    if deployment is None:
        return Observation(False, "the Deployment does not exist")
    metadata, spec = deployment.get("metadata") or {}, deployment.get("spec") or {}
    status = deployment.get("status") or {}
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "Progressing"
            and condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            raise StepFailed(
                _workload_id(deployment),
                f"rollout stopped: {condition.get('message')}",
                hint="look at the pods' events (image pull, scheduling, probes)",
            )
    wanted = spec.get("replicas", 1)
    updated = status.get("updatedReplicas") or 0
    total = status.get("replicas") or 0
    available = status.get("availableReplicas") or 0
    if (status.get("observedGeneration") or 0) < (metadata.get("generation") or 0):
        return Observation(False, "the controller has not seen the latest spec yet")
    done = updated == wanted and total == updated and available == updated
    return Observation(done, f"{updated}/{wanted} updated, {total} total, {available} available")


def daemonset_rolled_out(daemonset: dict[str, Any] | None) -> Observation[None]:
    """``kubectl rollout status`` for a DaemonSet: a current, available pod on every node."""
    if daemonset is None:
        return Observation(False, "the DaemonSet does not exist")
    metadata, status = daemonset.get("metadata") or {}, daemonset.get("status") or {}
    if (status.get("observedGeneration") or 0) < (metadata.get("generation") or 0):
        return Observation(False, "the controller has not seen the latest spec yet")
    desired = status.get("desiredNumberScheduled") or 0
    updated = status.get("updatedNumberScheduled") or 0
    available = status.get("numberAvailable") or 0
    done = updated == desired and available == desired
    return Observation(done, f"{updated}/{desired} updated, {available} available")


def statefulset_rolled_out(statefulset: dict[str, Any] | None) -> Observation[None]:
    """``kubectl rollout status`` for a StatefulSet: every replica current and ready."""
    if statefulset is None:
        return Observation(False, "the StatefulSet does not exist")
    metadata, spec = statefulset.get("metadata") or {}, statefulset.get("spec") or {}
    status = statefulset.get("status") or {}
    if (status.get("observedGeneration") or 0) < (metadata.get("generation") or 0):
        return Observation(False, "the controller has not seen the latest spec yet")
    wanted = spec.get("replicas", 1)
    updated = status.get("updatedReplicas") or 0
    ready = status.get("readyReplicas") or 0
    return Observation(
        updated == wanted and ready == wanted, f"{updated}/{wanted} updated, {ready} ready"
    )


def _workload_id(workload: dict[str, Any]) -> str:
    metadata = workload.get("metadata") or {}
    return kubernetes_id(
        workload.get("apiVersion", "apps/v1"),
        workload.get("kind", "Deployment"),
        metadata.get("namespace"),
        metadata.get("name", "?"),
    )


def wait_for_rollout(
    env: Environment, kind: str, namespace: str, name: str, *, timeout: float | None = None
) -> str:
    """Wait until a Deployment, DaemonSet or StatefulSet has rolled out; returns what was seen."""
    settings = get_settings()
    check = {
        "Deployment": deployment_rolled_out,
        "DaemonSet": daemonset_rolled_out,
        "StatefulSet": statefulset_rolled_out,
    }[kind]
    observation = poll(
        lambda: check(read_object(env, "apps/v1", kind, namespace, name)),
        what=f"rollout of {kind} {namespace}/{name}",
        timeout=timeout or settings.rollout_timeout,
        initial_delay=min(0.2, settings.wait_initial_delay),
        max_delay=settings.wait_max_delay,
    )
    return observation.detail


def pod_ready(pod: dict[str, Any]) -> bool:
    """True when a pod is Running and its Ready condition is True."""
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return any(
        condition.get("type") == "Ready" and condition.get("status") == "True"
        for condition in status.get("conditions") or []
    )


def selector_string(match_labels: dict[str, str]) -> str:
    """A label selector (``a=b,c=d``) from a ``matchLabels`` mapping."""
    return ",".join(f"{key}={value}" for key, value in sorted(match_labels.items()))
