"""The sandbox's ARM front door, judged by azure-identity and the azure-mgmt SDKs over HTTPS.

Facts relied on: MSAL reads ``/{tenant}/v2.0/.well-known/openid-configuration`` then posts the
client-credentials grant to ``/{tenant}/oauth2/v2.0/token`` (research/azure-sdk-local.md); a wrong
secret is ``invalid_client`` AADSTS7000215; ARM answers 401 ``AuthenticationFailed`` without a
bearer token and 400 ``MissingApiVersionParameter`` without ``api-version``.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.identity import ClientSecretCredential
from azure.mgmt.monitor import MonitorManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

if TYPE_CHECKING:
    from conftest import RunningAzure


def raw(
    azure: RunningAzure,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: Any = None,
) -> tuple[int, dict[str, str], Any]:
    """One HTTPS request with the standard library, trusting only the sandbox CA."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        azure.arm_url + path, data=data, method=method, headers=headers
    )
    context = ssl.create_default_context(cafile=azure.ca)
    try:
        with urllib.request.urlopen(request, context=context) as response:
            payload = response.read()
            return response.status, dict(response.headers), json.loads(payload) if payload else None
    except urllib.error.HTTPError as error:
        payload = error.read()
        return error.code, dict(error.headers), json.loads(payload) if payload else None


def test_client_secret_credential_gets_a_token_that_arm_accepts(
    azure_sandbox: RunningAzure,
) -> None:
    credential = azure_sandbox.credential()
    token = credential.get_token("https://management.azure.com/.default")
    assert token.token and token.expires_on > 0

    status, _, body = raw(
        azure_sandbox,
        "GET",
        f"/subscriptions/{azure_sandbox.environment.subscription_id}?api-version=2022-12-01",
        token=token.token,
    )
    assert status == 200
    assert body["subscriptionId"] == azure_sandbox.environment.subscription_id
    assert body["state"] == "Enabled"


def test_wrong_client_secret_is_refused_with_aadsts7000215(azure_sandbox: RunningAzure) -> None:
    credential = ClientSecretCredential(
        azure_sandbox.sandbox.tenant_id,
        azure_sandbox.sandbox.client_id,
        "not-the-secret",
        authority=azure_sandbox.arm_url,
        disable_instance_discovery=True,
        connection_verify=azure_sandbox.ca,
    )
    with pytest.raises(ClientAuthenticationError) as caught:
        credential.get_token("https://management.azure.com/.default")
    assert "AADSTS7000215" in str(caught.value)
    token_calls = [
        entry
        for entry in azure_sandbox.sandbox.request_log.since(0)
        if entry["path"].endswith("/oauth2/v2.0/token")
    ]
    assert token_calls and token_calls[-1]["status"] == 401


def test_arm_answers_401_authentication_failed_without_a_bearer_token(
    azure_sandbox: RunningAzure,
) -> None:
    status, headers, body = raw(
        azure_sandbox,
        "GET",
        f"/subscriptions/{azure_sandbox.environment.subscription_id}/resourcegroups?api-version=2022-09-01",
    )
    assert status == 401
    assert body["error"]["code"] == "AuthenticationFailed"
    assert headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")


def test_arm_refuses_a_token_it_did_not_issue(azure_sandbox: RunningAzure) -> None:
    status, _, body = raw(
        azure_sandbox,
        "GET",
        f"/subscriptions/{azure_sandbox.environment.subscription_id}?api-version=2022-12-01",
        token="made-up",
    )
    assert status == 401
    assert body["error"]["code"] == "InvalidAuthenticationToken"


def test_arm_answers_400_missing_api_version_parameter(azure_sandbox: RunningAzure) -> None:
    token = azure_sandbox.credential().get_token("https://management.azure.com/.default").token
    status, _, body = raw(
        azure_sandbox,
        "GET",
        f"/subscriptions/{azure_sandbox.environment.subscription_id}/resourcegroups",
        token=token,
    )
    assert status == 400
    assert body["error"]["code"] == "MissingApiVersionParameter"


def test_an_api_version_the_provider_never_published_is_refused(
    azure_sandbox: RunningAzure,
) -> None:
    env = azure_sandbox.environment
    resources = ResourceManagementClient(
        azure_sandbox.credential(), env.subscription_id, **azure_sandbox.client_kwargs()
    )
    with pytest.raises(HttpResponseError) as caught:
        resources.resources.get_by_id(env.configuration_dce_id, api_version="2020-01-01")
    assert caught.value.status_code == 400
    assert caught.value.error.code == "NoRegisteredProviderFound"


@pytest.mark.parametrize("api_version", ["2021-04-01", "2022-06-01", "2023-03-11", "2024-03-11"])
def test_every_published_data_collection_api_version_is_accepted(
    azure_sandbox: RunningAzure, api_version: str
) -> None:
    """Spec folders stable/2021-04-01 … 2024-03-11 of Microsoft.Insights data collection."""
    env = azure_sandbox.environment
    resources = ResourceManagementClient(
        azure_sandbox.credential(), env.subscription_id, **azure_sandbox.client_kwargs()
    )
    endpoint = resources.resources.get_by_id(env.configuration_dce_id, api_version=api_version)
    assert endpoint.type == "Microsoft.Insights/dataCollectionEndpoints"


def test_resource_groups_are_read_and_listed_and_a_missing_one_is_resource_group_not_found(
    azure_sandbox: RunningAzure,
) -> None:
    env = azure_sandbox.environment
    resources = ResourceManagementClient(
        azure_sandbox.credential(), env.subscription_id, **azure_sandbox.client_kwargs()
    )
    # azure-mgmt-resource 26 only ships the ``resources`` operations; groups go through by-id.
    group = resources.resources.get_by_id(env.group_id, api_version="2022-09-01")
    assert group.location == "koreacentral"
    assert resources.resources.check_existence_by_id(env.group_id, api_version="2022-09-01")
    assert not resources.resources.check_existence_by_id(
        f"/subscriptions/{env.subscription_id}/resourceGroups/nope", api_version="2022-09-01"
    )
    monitor = MonitorManagementClient(
        azure_sandbox.credential(), env.subscription_id, **azure_sandbox.client_kwargs()
    )
    with pytest.raises(ResourceNotFoundError) as caught:
        monitor.data_collection_endpoints.get("rg-missing", "x")
    assert caught.value.error.code == "ResourceGroupNotFound"

    token = azure_sandbox.credential().get_token("https://management.azure.com/.default").token
    status, _, body = raw(
        azure_sandbox,
        "GET",
        f"/subscriptions/{env.subscription_id}/resourcegroups?api-version=2022-09-01",
        token=token,
    )
    assert status == 200
    assert {g["name"] for g in body["value"]} == {env.resource_group, env.managed_resource_group}


def test_the_private_cluster_reads_as_aks_describes_it(azure_sandbox: RunningAzure) -> None:
    env = azure_sandbox.environment
    resources = ResourceManagementClient(
        azure_sandbox.credential(), env.subscription_id, **azure_sandbox.client_kwargs()
    )
    cluster = resources.resources.get_by_id(env.cluster_id, api_version="2025-01-01")
    assert cluster.properties["apiServerAccessProfile"]["enablePrivateCluster"] is True
    assert cluster.properties["azureMonitorProfile"]["metrics"]["enabled"] is True
    subnets = {pool["vnetSubnetID"] for pool in cluster.properties["agentPoolProfiles"]}
    assert subnets == {env.aks_subnet_id}
    vnet = resources.resources.get_by_id(env.vnet_id, api_version="2024-05-01")
    assert vnet.properties["addressSpace"]["addressPrefixes"] == ["10.2.0.0/16"]
    assert {s["name"] for s in vnet.properties["subnets"]} == {"aks-subnet", "pe-subnet"}


def test_read_only_types_refuse_writes_with_405(azure_sandbox: RunningAzure) -> None:
    env = azure_sandbox.environment
    resources = ResourceManagementClient(
        azure_sandbox.credential(),
        env.subscription_id,
        **azure_sandbox.client_kwargs(retry_total=0),
    )
    with pytest.raises(HttpResponseError) as caught:
        resources.resources.begin_create_or_update_by_id(
            env.cluster_id, api_version="2025-01-01", parameters={"location": "koreacentral"}
        )
    assert caught.value.status_code == 405


def test_tls_verification_stays_on_a_client_without_the_ca_is_refused(
    azure_sandbox: RunningAzure,
) -> None:
    credential = ClientSecretCredential(
        azure_sandbox.sandbox.tenant_id,
        azure_sandbox.sandbox.client_id,
        azure_sandbox.sandbox.client_secret,
        authority=azure_sandbox.arm_url,
        disable_instance_discovery=True,
        retry_total=0,
    )
    with pytest.raises((ServiceRequestError, ClientAuthenticationError)) as caught:
        credential.get_token("https://management.azure.com/.default")
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)


def test_provider_metadata_lists_types_and_their_api_versions(azure_sandbox: RunningAzure) -> None:
    token = azure_sandbox.credential().get_token("https://management.azure.com/.default").token
    status, _, body = raw(
        azure_sandbox,
        "GET",
        f"/subscriptions/{azure_sandbox.environment.subscription_id}/providers/Microsoft.Insights"
        "?api-version=2021-04-01",
        token=token,
    )
    assert status == 200
    types = {t["resourceType"]: t["apiVersions"] for t in body["resourceTypes"]}
    assert "2021-07-01-preview" in types["privateLinkScopes"]
    assert "2023-03-11" in types["dataCollectionRules"]
