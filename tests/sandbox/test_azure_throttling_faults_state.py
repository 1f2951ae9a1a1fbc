"""Throttling, injected faults, the request log and persisted state of the emulated Azure.

Facts relied on: ARM throttles per subscription and principal with token buckets (reads 250
refilling 25/s, writes 200 refilling 10/s; docs request-limits-and-throttling.md) and answers 429
``TooManyRequests`` with ``Retry-After`` and ``x-ms-ratelimit-remaining-subscription-*`` headers;
azure-core retries 429/503 and connection errors, honouring ``Retry-After``
(research/azure-sdk-local.md, "429 and retries").
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.request
from typing import TYPE_CHECKING, Any

import dns.resolver
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.monitor import MonitorManagementClient

from sandbox.azure.models import AzureState
from sandbox.azure.scenarios import AzureEnvironment, add_environment
from sandbox.azure.throttling import BucketLimits, ThrottleLimits

if TYPE_CHECKING:
    from conftest import RunningAzure


def control(azure: RunningAzure, method: str, path: str, body: Any = None) -> Any:
    """Call a ``/_sandbox/`` endpoint (no token needed)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        azure.arm_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    context = ssl.create_default_context(cafile=azure.ca)
    with urllib.request.urlopen(request, context=context) as response:
        payload = response.read()
        return json.loads(payload) if payload else None


def monitor_client(azure: RunningAzure, **overrides: Any) -> MonitorManagementClient:
    return MonitorManagementClient(
        azure.credential(), azure.environment.subscription_id, **azure.client_kwargs(**overrides)
    )


SMALL_READS = ThrottleLimits(reads=BucketLimits(burst=3, refill_per_second=1))


def test_every_arm_response_reports_the_remaining_reads(azure_sandbox: RunningAzure) -> None:
    env = azure_sandbox.environment
    seen: list[str] = []
    monitor = monitor_client(azure_sandbox)
    monitor.data_collection_endpoints.get(
        env.resource_group,
        env.configuration_dce,
        raw_response_hook=lambda r: seen.append(
            r.http_response.headers["x-ms-ratelimit-remaining-subscription-reads"]
        ),
    )
    assert seen == ["249"]


def test_an_empty_read_bucket_answers_429_with_retry_after_and_the_sdk_waits_and_retries(
    azure_sandbox_factory: Any,
) -> None:
    azure = azure_sandbox_factory(throttle=SMALL_READS)
    env = azure.environment
    monitor = monitor_client(azure)
    for _ in range(3):
        monitor.data_collection_endpoints.get(env.resource_group, env.configuration_dce)
    azure.sandbox.request_log.clear()

    endpoint = monitor.data_collection_endpoints.get(env.resource_group, env.configuration_dce)

    assert endpoint.name == env.configuration_dce
    statuses = [e["status"] for e in azure.sandbox.request_log.since(0)]
    assert statuses[0] == 429
    assert statuses[-1] == 200


def test_with_retries_off_the_429_reaches_the_caller_with_its_headers(
    azure_sandbox_factory: Any,
) -> None:
    azure = azure_sandbox_factory(throttle=SMALL_READS)
    env = azure.environment
    monitor = monitor_client(azure, retry_total=0)
    for _ in range(3):
        monitor.data_collection_endpoints.get(env.resource_group, env.configuration_dce)
    with pytest.raises(HttpResponseError) as caught:
        monitor.data_collection_endpoints.get(env.resource_group, env.configuration_dce)
    assert caught.value.status_code == 429
    assert caught.value.error.code == "TooManyRequests"
    headers = caught.value.response.headers
    assert int(headers["Retry-After"]) >= 1
    assert headers["x-ms-ratelimit-remaining-subscription-reads"] == "0"


def test_writes_have_their_own_bucket(azure_sandbox_factory: Any) -> None:
    limits = ThrottleLimits(writes=BucketLimits(burst=1, refill_per_second=0.1))
    azure = azure_sandbox_factory(throttle=limits)
    env = azure.environment
    monitor = monitor_client(azure, retry_total=0)
    body = {"location": "koreacentral"}
    monitor.data_collection_endpoints.create(env.resource_group, "dce-a", body)
    with pytest.raises(HttpResponseError) as caught:
        monitor.data_collection_endpoints.create(env.resource_group, "dce-b", body)
    assert caught.value.status_code == 429
    assert int(caught.value.response.headers["Retry-After"]) >= 1
    # Reads are still served.
    assert monitor.data_collection_endpoints.get(env.resource_group, "dce-a").name == "dce-a"


def test_injected_503s_hit_the_next_matching_requests_and_the_sdk_retries_them(
    azure_sandbox: RunningAzure,
) -> None:
    env = azure_sandbox.environment
    control(
        azure_sandbox,
        "POST",
        "/_sandbox/faults",
        {"status": 503, "count": 2, "match": "dataCollectionEndpoints"},
    )
    control(azure_sandbox, "DELETE", "/_sandbox/requests")
    monitor = monitor_client(azure_sandbox, retry_backoff_factor=0.01)

    endpoint = monitor.data_collection_endpoints.get(env.resource_group, env.configuration_dce)

    assert endpoint.name == env.configuration_dce
    log = [
        e
        for e in control(azure_sandbox, "GET", "/_sandbox/requests")
        if "dataCollectionEndpoints" in e["path"]
    ]
    assert [e["status"] for e in log] == [503, 503, 200]
    assert all(e["api_version"] == "2023-03-11" for e in log)
    assert control(azure_sandbox, "GET", "/_sandbox/faults") == []  # used up


def test_an_injected_connection_reset_is_survived_by_the_sdk(azure_sandbox: RunningAzure) -> None:
    env = azure_sandbox.environment
    control(
        azure_sandbox,
        "POST",
        "/_sandbox/faults",
        {"reset_rate": 1.0, "count": 1, "match": "dataCollectionEndpoints"},
    )
    monitor = monitor_client(azure_sandbox, retry_backoff_factor=0.01)
    endpoint = monitor.data_collection_endpoints.get(env.resource_group, env.configuration_dce)
    assert endpoint.name == env.configuration_dce
    statuses = [
        e["status"]
        for e in azure_sandbox.sandbox.request_log.since(0)
        if "dataCollection" in e["path"]
    ]
    assert statuses == [0, 200]


def test_faults_are_listed_and_cleared_with_an_empty_post(azure_sandbox: RunningAzure) -> None:
    rules = control(
        azure_sandbox, "POST", "/_sandbox/faults", {"latency_ms": 5, "match": "^/subscriptions"}
    )
    assert rules[0]["latency_ms"] == 5
    assert control(azure_sandbox, "POST", "/_sandbox/faults", {}) == []
    assert control(azure_sandbox, "GET", "/_sandbox/faults") == []


def test_request_log_pages_with_since_and_skips_its_own_endpoints(
    azure_sandbox: RunningAzure,
) -> None:
    env = azure_sandbox.environment
    monitor = monitor_client(azure_sandbox)
    monitor.data_collection_endpoints.get(env.resource_group, env.configuration_dce)
    everything = control(azure_sandbox, "GET", "/_sandbox/requests")
    assert not any(e["path"].startswith("/_sandbox/") for e in everything)
    assert {"time", "method", "path", "status", "api_version"} <= set(everything[-1])
    start = len(everything)
    monitor.data_collection_rules.get(env.resource_group, env.prometheus_dcr)
    newer = control(azure_sandbox, "GET", f"/_sandbox/requests?since={start}")
    assert [e["path"].rsplit("/", 1)[1] for e in newer] == [env.prometheus_dcr]


def test_state_dump_lists_every_resource(azure_sandbox: RunningAzure) -> None:
    dump = control(azure_sandbox, "GET", "/_sandbox/state")
    ids = {r["id"].lower() for r in dump["resources"] if "id" in r}
    assert azure_sandbox.environment.cluster_id.lower() in ids


def test_state_survives_a_restart_and_so_do_issued_tokens(azure_sandbox_factory: Any) -> None:
    azure = azure_sandbox_factory()
    env = azure.environment
    credential = azure.credential()
    monitor = MonitorManagementClient(credential, env.subscription_id, **azure.client_kwargs())
    monitor.data_collection_endpoints.create(
        env.resource_group, "dce-kept", {"location": "koreacentral"}
    )
    kept_id = f"{env.group_id}/providers/Microsoft.Insights/dataCollectionEndpoints/dce-kept"

    azure.restart()

    assert AzureState(state_dir=azure.state.state_dir).get(kept_id) is not None
    # The token cached by the first credential is still accepted by the new process.
    again = MonitorManagementClient(credential, env.subscription_id, **azure.client_kwargs())
    assert again.data_collection_endpoints.get(env.resource_group, "dce-kept").name == "dce-kept"


def test_a_fleet_environment_added_while_running_gets_its_own_resolver(
    azure_sandbox: RunningAzure,
) -> None:
    member = AzureEnvironment.fleet_member(3)
    add_environment(azure_sandbox.state, member, scenario="healthy")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            host, port = azure_sandbox.sandbox.dns_address_of(member.vnet_id)
            break
        except KeyError:
            time.sleep(0.02)
    else:
        pytest.fail("no resolver was started for the new VNet")
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = [host], port
    answer = [
        r.to_text() for r in resolver.resolve("global.handler.control.monitor.azure.com", "A")
    ]
    assert answer[0].startswith("10.100.12.")
    # The seed's VNet is unaffected: its zones are other zones.
    assert not azure_sandbox.state.resolve(
        "global.handler.control.monitor.azure.com", azure_sandbox.environment.vnet_id
    ).private
