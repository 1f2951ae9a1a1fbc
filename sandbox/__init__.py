"""An emulated closed-network Azure + AKS that the real clients can talk to.

The sandbox runs in one Python process: an ARM server over HTTPS with an OAuth token endpoint and
a DNS resolver per virtual network (``sandbox.azure``), a Kubernetes API server (``sandbox.kube``)
and the behaviour of the workloads on it (``sandbox.behaviour``). It never imports the project's
own packages; it only writes an environment file for them.
"""
