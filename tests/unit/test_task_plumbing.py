"""The pure parts of the tasks: exec statuses, busybox output, rollout status, ownership, the
webhook certificate, and how credentials find their secret. No server is involved."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path

import pytest

from aksmetrics.environment import Environment, load_environment
from tasks import clients
from tasks.ama_metrics import _exec_result, is_private_address, parse_nslookup
from tasks.kubernetes_objects import (
    crd_established,
    daemonset_rolled_out,
    deployment_rolled_out,
    is_owned,
)
from tasks.kubernetes_operator import _usable_ca, generate_webhook_certificate
from tasks.retries import StepFailed

NAMES = [
    "opentelemetry-operator-webhook-service.opentelemetry-operator-system.svc",
    "opentelemetry-operator-webhook-service.opentelemetry-operator-system.svc.cluster.local",
]


@pytest.fixture(scope="module")
def env() -> Environment:
    return load_environment("rubicon-krc-01")


# -- exec and busybox --------------------------------------------------------------------------


def test_exec_status_success_and_exit_codes_are_read_from_channel_three() -> None:
    assert _exec_result("out", "", '{"status":"Success"}').exit_code == 0
    failed = _exec_result(
        "",
        "cat: can't open 'x': No such file or directory",
        '{"status":"Failure","reason":"NonZeroExitCode",'
        '"details":{"causes":[{"reason":"ExitCode","message":"1"}]}}',
    )
    assert failed.exit_code == 1 and not failed.ok


def test_a_command_that_never_ran_has_no_exit_code_but_the_servers_message() -> None:
    result = _exec_result(
        "",
        "",
        '{"status":"Failure","reason":"InternalError",'
        '"message":"executable file not found in $PATH"}',
    )

    assert result.exit_code is None
    assert result.error == "executable file not found in $PATH"
    assert _exec_result("", "", "").error is not None, "a dropped connection is not a success"


def test_busybox_nslookup_addresses_follow_the_name_not_the_server() -> None:
    output = (
        "Server:\t\t10.0.0.10\n"
        "Address:\t10.0.0.10:53\n\n"
        "Non-authoritative answer:\n"
        "global.handler.control.monitor.azure.com\tcanonical name = "
        "global.handler.control.privatelink.monitor.azure.com\n"
        "Name:\tglobal.handler.control.privatelink.monitor.azure.com\n"
        "Address: 10.2.0.14\n"
        "Address 2: 10.2.0.15\n"
    )

    assert parse_nslookup(output) == ["10.2.0.14", "10.2.0.15"]
    assert parse_nslookup("** server can't find x: NXDOMAIN\n") == []


@pytest.mark.parametrize(
    ("address", "private"),
    [("10.2.0.6", True), ("20.41.64.1", False), ("127.0.0.1", False), ("not-an-ip", False)],
)
def test_private_addresses_are_the_private_ranges_only(address: str, private: bool) -> None:
    assert is_private_address(address) is private


# -- waits -------------------------------------------------------------------------------------


def test_a_deployment_has_rolled_out_when_every_replica_is_new_and_available() -> None:
    rolling = {
        "metadata": {"generation": 2},
        "spec": {"replicas": 1},
        "status": {
            "observedGeneration": 2,
            "updatedReplicas": 1,
            "replicas": 2,
            "availableReplicas": 1,
        },
    }
    done = {**rolling, "status": {**rolling["status"], "replicas": 1}}
    unseen = {**done, "metadata": {"generation": 3}}

    assert not deployment_rolled_out(rolling).done, "an old pod is still there"
    assert deployment_rolled_out(done).done
    assert not deployment_rolled_out(unseen).done
    assert not deployment_rolled_out(None).done


def test_a_stuck_deployment_fails_the_wait_at_once() -> None:
    stuck = {
        "metadata": {"name": "x", "namespace": "ns", "generation": 1},
        "status": {
            "conditions": [
                {"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "too slow"}
            ]
        },
    }

    with pytest.raises(StepFailed, match="too slow"):
        deployment_rolled_out(stuck)


def test_a_daemonset_has_rolled_out_when_every_node_runs_an_available_new_pod() -> None:
    status = {"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2}

    assert not daemonset_rolled_out(
        {"metadata": {"generation": 1}, "status": {**status, "numberAvailable": 1}}
    ).done
    assert daemonset_rolled_out(
        {"metadata": {"generation": 1}, "status": {**status, "numberAvailable": 2}}
    ).done


def test_a_crd_is_ready_when_established() -> None:
    established = {"status": {"conditions": [{"type": "Established", "status": "True"}]}}
    pending = {"status": {"conditions": [{"type": "NamesAccepted", "status": "True"}]}}

    assert crd_established(established).done
    assert not crd_established(pending).done
    assert not crd_established(None).done


# -- ownership ---------------------------------------------------------------------------------


def test_an_object_is_ours_by_its_label_or_our_field_manager(env: Environment) -> None:
    labelled = {"metadata": {"labels": {"aks-metrics-pipeline/environment": env.name}}}
    applied = {"metadata": {"managedFields": [{"manager": "aks-metrics-pipeline"}]}}
    other_environment = {"metadata": {"labels": {"aks-metrics-pipeline/environment": "other"}}}
    foreign = {"metadata": {"managedFields": [{"manager": "kubectl-client-side-apply"}]}}

    assert is_owned(labelled, env) and is_owned(applied, env)
    assert not is_owned(other_environment, env) and not is_owned(foreign, env)


# -- the webhook certificate -------------------------------------------------------------------


def secret_of(ca: str, certificate: str, key: str) -> dict[str, object]:
    encode = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
    return {"data": {"ca.crt": encode(ca), "tls.crt": encode(certificate), "tls.key": encode(key)}}


@pytest.fixture(scope="module")
def certificate() -> tuple[str, str, str]:
    return generate_webhook_certificate(NAMES, owner="rubicon-krc-01")


def test_a_generated_certificate_serves_the_webhook_names_and_is_kept(
    certificate: tuple[str, str, str],
) -> None:
    ca, cert, key = certificate

    assert _usable_ca(secret_of(ca, cert, key), NAMES) == ca


def test_a_certificate_for_other_names_or_another_key_is_replaced(
    certificate: tuple[str, str, str],
) -> None:
    ca, cert, key = certificate
    _, _, other_key = generate_webhook_certificate(NAMES, owner="x")

    assert _usable_ca(secret_of(ca, cert, key), [*NAMES, "extra.svc"]) is None
    assert _usable_ca(secret_of(ca, cert, other_key), NAMES) is None
    assert _usable_ca(secret_of("garbage", cert, key), NAMES) is None
    assert _usable_ca(None, NAMES) is None


def test_a_certificate_close_to_expiry_is_renewed(
    certificate: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, cert, key = certificate
    import tasks.kubernetes_operator as operator

    monkeypatch.setattr(operator, "RENEW_BEFORE", datetime.timedelta(days=10_000))

    assert _usable_ca(secret_of(ca, cert, key), NAMES) is None


# -- credentials -------------------------------------------------------------------------------


def with_auth(env: Environment, **auth: object) -> Environment:
    return env.model_copy(
        update={"auth": env.auth.model_copy(update={"method": "client_secret", **auth})}
    )


def test_the_client_secret_is_read_from_its_file_when_needed(
    env: Environment, tmp_path: Path
) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text("s3cret\n")

    assert clients.read_client_secret(with_auth(env, client_secret_file=secret)) == "s3cret"


def test_a_missing_secret_says_where_it_was_looked_for_without_a_value(
    env: Environment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AKS_METRICS_TEST_SECRET", raising=False)

    with pytest.raises(RuntimeError, match="AKS_METRICS_TEST_SECRET"):
        clients.read_client_secret(with_auth(env, client_secret_env="AKS_METRICS_TEST_SECRET"))
    with pytest.raises(RuntimeError, match="cannot be read"):
        clients.read_client_secret(with_auth(env, client_secret_file=tmp_path / "absent"))


def test_arm_clients_use_the_clouds_endpoint_scope_ca_and_our_tunables(
    env: Environment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = tmp_path / "ca.pem"
    cloud = env.cloud.model_copy(
        update={
            "name": "custom",
            "arm_endpoint": "https://127.0.0.1:1",
            "authority_host": "https://127.0.0.1:1",
            "ca_bundle": ca,
        }
    )
    monkeypatch.setenv("AKS_METRICS_POLLING_INTERVAL", "0.25")
    monkeypatch.setenv("AKS_METRICS_ARM_RETRY_TOTAL", "1")

    options = clients.arm_options(env.model_copy(update={"cloud": cloud}))

    assert options["base_url"] == "https://127.0.0.1:1"
    assert options["credential_scopes"] == ["https://management.azure.com/.default"]
    assert options["connection_verify"] == str(ca)
    assert options["polling_interval"] == 0.25 and options["retry_total"] == 1
    assert "connection_verify" not in clients.arm_options(env), "the system trust store by default"


# -- the ensure decision -----------------------------------------------------------------------


class FakeCluster:
    """Stands in for the API server behind ``read_object``/``apply_object``: one object, or none."""

    def __init__(self, actual: dict[str, object] | None) -> None:
        self.actual = actual
        self.applied: list[dict[str, object]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import tasks.kubernetes_objects as objects

        monkeypatch.setattr(objects, "read_object", lambda *args: self.actual)
        monkeypatch.setattr(
            objects, "apply_object", lambda env, manifest: self.applied.append(manifest)
        )


MANIFEST = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "c", "namespace": "ns"},
    "data": {"a": "1"},
}


@pytest.mark.parametrize(
    ("actual", "plan", "allow_adopt", "action", "writes"),
    [
        (None, False, False, "created", 1),
        (None, True, False, "would create", 0),
        (
            {**MANIFEST, "metadata": {**MANIFEST["metadata"], "uid": "u"}},
            False,
            False,
            "unchanged",
            0,
        ),
        (
            {
                **MANIFEST,
                "metadata": {
                    **MANIFEST["metadata"],
                    "managedFields": [{"manager": "aks-metrics-pipeline"}],
                },
                "data": {"a": "2"},
            },
            False,
            False,
            "updated",
            1,
        ),
        ({**MANIFEST, "data": {"a": "2"}}, False, False, "refused", 0),
        ({**MANIFEST, "data": {"a": "2"}}, True, False, "refused", 0),
        ({**MANIFEST, "data": {"a": "2"}}, False, True, "updated", 1),
        ({**MANIFEST, "data": {"a": "2"}}, True, True, "would update", 0),
    ],
    ids=[
        "absent",
        "absent-plan",
        "same",
        "ours-differs",
        "foreign-differs",
        "foreign-differs-plan",
        "foreign-adopted",
        "foreign-adopted-plan",
    ],
)
def test_an_ensure_writes_only_a_difference_and_only_to_what_it_may_change(
    env: Environment,
    monkeypatch: pytest.MonkeyPatch,
    actual: dict[str, object] | None,
    plan: bool,
    allow_adopt: bool,
    action: str,
    writes: int,
) -> None:
    from tasks.kubernetes_objects import ensure_object

    cluster = FakeCluster(actual)
    cluster.install(monkeypatch)

    change = ensure_object(env, MANIFEST, plan=plan, allow_adopt=allow_adopt)

    assert change.action == action
    assert len(cluster.applied) == writes
    if action in ("updated", "would update", "refused"):
        assert [field.path for field in change.fields] == ["data.a"]
