"""The provision flow's steps: one vocabulary for the flow, the diagnoses and the drift reports.

A diagnosis names the steps that repair its cause, and a drift repair runs exactly those steps, so
all three must spell them the same way; they do by importing them from here.
"""

from __future__ import annotations

from typing import Literal, get_args

Step = Literal[
    "preflight",
    "operator",
    "collector",
    "pod-monitor",
    "private-link-scope",
    "scoped-resources",
    "private-endpoint",
    "private-dns",
    "rule-endpoints",
    "configuration-association",
    "restart",
    "wait-healthy",
    "verify",
]

# In the order the provision flow runs them.
STEPS: tuple[Step, ...] = get_args(Step)

PREFLIGHT: Step = "preflight"
OPERATOR: Step = "operator"
COLLECTOR: Step = "collector"
POD_MONITOR: Step = "pod-monitor"
PRIVATE_LINK_SCOPE: Step = "private-link-scope"
SCOPED_RESOURCES: Step = "scoped-resources"
PRIVATE_ENDPOINT: Step = "private-endpoint"
PRIVATE_DNS: Step = "private-dns"
RULE_ENDPOINTS: Step = "rule-endpoints"
CONFIGURATION_ASSOCIATION: Step = "configuration-association"
RESTART: Step = "restart"
WAIT_HEALTHY: Step = "wait-healthy"
VERIFY: Step = "verify"

AZURE_STEPS: frozenset[Step] = frozenset(
    {
        PRIVATE_LINK_SCOPE,
        SCOPED_RESOURCES,
        PRIVATE_ENDPOINT,
        PRIVATE_DNS,
        RULE_ENDPOINTS,
        CONFIGURATION_ASSOCIATION,
    }
)
