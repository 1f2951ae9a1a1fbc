"""The emulated Azure: ARM over HTTPS, the token endpoint, throttling, faults and per-VNet DNS.

State (``models``, ``resource_types``, ``privatelink``, ``dnsview``) is kept apart from the wire
format (``responses``) and the routes (``urls``); ``server`` puts them on sockets.
"""
