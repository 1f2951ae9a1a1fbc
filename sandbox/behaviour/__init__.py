"""What runs on the sandbox cluster: the OpenTelemetry operator, the collector's data path,
ama-metrics (agent, exec answers, PodMonitor scraping), the workspaces' query API, and the
Kubernetes half of the scenarios. Engineer A's `sandbox.azure` and engineer B's `sandbox.kube`
provide the state these read and write.
"""
